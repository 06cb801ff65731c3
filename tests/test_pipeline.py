"""The pipeline: a verified signature carries a deal to billing on its own — in the
same transaction when all goes well, through the outbox when a following step fails —
and a duplicate delivery of any continuation changes nothing."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import select, update

from closeloop.bootstrap import Embedded
from flows.billing import Subscription, SubscriptionPeriod, SubscriptionStatus
from flows.deals import Deal, Stage
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License, LicenseStatus
from flows.outbox import OutboxMessage, OutboxStatus
from flows.queries import timeline
from flows.steps import LineRequest, record_signature
from tests.factories import deal_at, row_counts, seed, stage_of


def _sign(ledger, deal):
    ledger.run(record_signature, deal, version=1, signer="ada@acme.example", evidence={"method": "test"})


def test_a_signature_lands_with_its_won_deal_invoice_license_and_subscription(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT,
                   lines=[LineRequest("SEAT", Decimal(25)), LineRequest("SETUP", Decimal(1))])
    _sign(ledger, deal)
    assert stage_of(ledger, deal) is Stage.BILLING_ACTIVE  # one transaction, before any relay ran
    services.relay.drain()

    kinds = [e.kind for e in ledger.read(timeline, deal)]
    assert kinds == ["quote.drafted", "quote.sent", "quote.signed", "deal.won", "invoice.issued",
                     "license.issued", "subscription.started", "license.key_minted"]  # minted when provisioned
    # payment.collect is delivered by the charges route (the manual gateway: the invoice waits).
    for kind in ("license.provision", "esign.send"):
        assert len(services.sink.read(kind)) == 1, kind
    # invoice.deliver rendered the PDF and queued its email (no SMTP configured: kept in the sink)
    [email] = [m for m in services.sink.read("email.send") if m["payload"]["template"] == "invoice"]
    number = email["payload"]["context"]["number"]
    assert (services.settings.documents_dir / f"{number}.pdf").is_file()
    assert len(services.sink.read("slack.deal_thread")) == len(kinds) - 1  # the key is not posted
    assert ledger.read(lambda s: {m.status for m in s.scalars(select(OutboxMessage))}) == {OutboxStatus.DONE}


def test_the_license_and_subscription_follow_the_signed_lines(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.BILLING_ACTIVE,
                   lines=[LineRequest("SEAT", Decimal(25)), LineRequest("SETUP", Decimal(1)),
                          LineRequest("ANNUAL", Decimal(1))])
    with ledger.sessions() as session:
        licenses = {l.product: l for l in session.scalars(select(License).where(License.deal_id == deal))}
        assert set(licenses) == {"SEAT", "ANNUAL"}  # SETUP is not licensable
        seat = licenses["SEAT"]
        assert (seat.seats, seat.features, seat.status) == (25, ["sso"], LicenseStatus.ACTIVE)
        assert seat.valid_until == datetime(2026, 4, 10, tzinfo=timezone.utc)
        assert licenses["ANNUAL"].valid_until == datetime(2027, 3, 10, tzinfo=timezone.utc)
        invoice = session.scalars(select(Invoice).where(Invoice.deal_id == deal)).one()
        subscriptions = session.scalars(select(Subscription).order_by(Subscription.id)).all()
        assert [(s.interval.value, s.quantity, s.status) for s in subscriptions] == [
            ("month", Decimal(25), SubscriptionStatus.ACTIVE), ("year", Decimal(1), SubscriptionStatus.ACTIVE)]
        periods = session.scalars(select(SubscriptionPeriod).order_by(SubscriptionPeriod.id)).all()
        assert [(p.index, p.invoice_id) for p in periods] == [(0, invoice.id), (0, invoice.id)]


def test_a_one_off_deal_needs_no_license_and_no_subscription(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.BILLING_ACTIVE, lines=[LineRequest("SETUP", Decimal(1))])
    kinds = [e.kind for e in ledger.read(timeline, deal)]
    assert "license.not_needed" in kinds and "billing.not_needed" in kinds
    counts = row_counts(ledger)
    assert counts["licenses"] == 0 and counts["subscriptions"] == 0 and counts["invoices"] == 1


def test_a_continuation_delivered_again_after_a_crash_changes_nothing(services):
    """The signature was recorded alone, its follower queued; the relay ran the
    follower and committed it, then died before marking the message done."""
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SIGNED)
    services.relay.drain()
    assert stage_of(ledger, deal) is Stage.BILLING_ACTIVE
    counts = row_counts(ledger)
    ledger.run(lambda tx: tx.session.execute(
        update(OutboxMessage).where(OutboxMessage.kind == "pipeline.step")
        .values(status=OutboxStatus.PENDING, lease_owner=None)))
    assert services.relay.drain() == 1
    assert row_counts(ledger) == counts
    assert [m["payload"]["template"] for m in services.sink.read("email.send")] == ["invoice"]  # emailed once


def test_a_follower_that_fails_does_not_lose_the_signature(services):
    """An invoice for this deal already exists (say, imported by hand), so invoicing
    hits the database's one-invoice-per-deal rule: the signature and the won deal
    still land, and the invoicing step waits on the outbox with the reason."""
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    ledger.run(lambda tx: tx.session.add(Invoice(
        customer_id=ledger.read(lambda s: s.get(Deal, deal).customer_id), purpose_key=f"deal:{deal}",
        status=InvoiceStatus.DRAFT, currency="EUR", net=0, tax=0, amount_paid=0, payment_terms_days=30,
        created_at=tx.now)))

    _sign(ledger, deal)
    assert stage_of(ledger, deal) is Stage.SIGNED
    services.relay.drain()
    assert stage_of(ledger, deal) is Stage.WON
    waiting = ledger.read(lambda s: s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "pipeline.step", OutboxMessage.status == OutboxStatus.PENDING)).one())
    assert waiting.payload["step"] == "issue_invoice"
    assert "unique" in waiting.last_error.lower() and waiting.attempts == 1
    kinds = [e.kind for e in ledger.read(timeline, deal)]
    assert kinds.count("quote.signed") == 1 and kinds.count("deal.won") == 1 and "invoice.issued" not in kinds


def test_the_embedded_process_drains_the_outbox_on_its_own(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    with Embedded(services):
        _sign(ledger, deal)
        deadline = time.monotonic() + 20
        while stage_of(ledger, deal) is not Stage.BILLING_ACTIVE and time.monotonic() < deadline:
            time.sleep(0.02)
    assert stage_of(ledger, deal) is Stage.BILLING_ACTIVE
