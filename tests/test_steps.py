"""The steps of the loop: each one twice changes nothing the second time; illegal
transitions raise and change nothing; business refusals say what to fix."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from flows.catalog_file import read_catalog
from flows.deals import Deal, EnvelopeStatus, SignatureEnvelope, Stage
from flows.errors import IllegalTransition, InvalidInput
from flows.invoices import Invoice, InvoiceStatus
from flows.outbox import OutboxMessage
from flows.parties import ContactRole
from flows.steps import (ContactRequest, Done, LineRequest, add_customer, decline_quote, draft_quote,
                         expire_quote, issue_invoice, issue_license, load_catalog, record_signature,
                         revise_quote, send_quote, start_billing, void_quote, win_deal)
from tests.factories import CATALOG, deal_at, quoted_deal, row_counts, seed, stage_of


def _sign(ledger, deal, version=1):
    return ledger.run(record_signature, deal, version=version, signer="ada@acme.example", evidence={"m": "t"})


# step name -> (the stage it starts from, how to run it)
STEPS = {
    "send_quote": (Stage.QUOTED, lambda l, d: l.run(send_quote, d, provider="email", actor="U_REP")),
    "record_signature": (Stage.SENT, _sign),
    "win_deal": (Stage.SIGNED, lambda l, d: l.run(win_deal, d)),
    "issue_invoice": (Stage.WON, lambda l, d: l.run(issue_invoice, d)),
    "issue_license": (Stage.INVOICED, lambda l, d: l.run(issue_license, d)),
    "start_billing": (Stage.LICENSED, lambda l, d: l.run(start_billing, d)),
    "void_quote": (Stage.SENT, lambda l, d: l.run(void_quote, d, reason="lost to a competitor", actor="U_REP")),
    "decline_quote": (Stage.SENT, lambda l, d: l.run(decline_quote, d, reason="too expensive")),
    "revise_quote": (Stage.SENT, lambda l, d: l.run(revise_quote, d, key="revision-1", actor="U_REP",
                                                    lines=[LineRequest("SEAT", Decimal(12))])),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_run_twice_changes_nothing_the_second_time(services, step):
    ledger = services.ledger
    start, run = STEPS[step]
    deal = deal_at(ledger, seed(ledger), start)
    assert run(ledger, deal) is Done.ACTED
    after_first = row_counts(ledger)
    stage = stage_of(ledger, deal)
    assert run(ledger, deal) is Done.ALREADY
    assert row_counts(ledger) == after_first
    assert stage_of(ledger, deal) is stage


def test_expiring_twice_changes_nothing(services, clock):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    clock.advance(timedelta(days=31))
    assert ledger.run(expire_quote, deal) is Done.ACTED
    counts = row_counts(ledger)
    assert ledger.run(expire_quote, deal) is Done.ALREADY
    assert row_counts(ledger) == counts
    assert stage_of(ledger, deal) is Stage.EXPIRED


def test_replaying_every_pipeline_step_on_a_finished_deal_changes_nothing(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.BILLING_ACTIVE)
    counts = row_counts(ledger)
    for step in ("send_quote", "record_signature", "win_deal", "issue_invoice", "issue_license", "start_billing"):
        assert STEPS[step][1](ledger, deal) is Done.ALREADY, step
    assert row_counts(ledger) == counts


def test_the_same_quote_request_twice_opens_one_deal(services):
    ledger = services.ledger
    customer = seed(ledger)
    request = dict(key="slack:trigger:1", customer_id=customer, owner="U_REP", currency="EUR",
                   lines=[LineRequest("SEAT", Decimal(5))])
    first = ledger.run(draft_quote, **request)
    counts = row_counts(ledger)
    assert ledger.run(draft_quote, **request) == first
    assert row_counts(ledger) == counts


def test_adding_the_same_customer_or_catalog_again_changes_nothing(services):
    ledger = services.ledger
    customer = seed(ledger)
    counts = row_counts(ledger)
    assert ledger.run(add_customer, name="ACME GmbH ", country="DE", currency="EUR") == customer
    result = ledger.run(load_catalog, read_catalog(CATALOG), source="again")
    assert result == {"added": 0, "updated": 0, "unchanged": 3, "deactivated": 0}
    assert row_counts(ledger) == counts


ILLEGAL = [
    ("win_deal", Stage.QUOTED), ("win_deal", Stage.SENT),
    ("issue_invoice", Stage.SENT), ("issue_invoice", Stage.SIGNED),
    ("issue_license", Stage.WON), ("start_billing", Stage.INVOICED),
    ("record_signature", Stage.QUOTED),
    ("void_quote", Stage.WON), ("void_quote", Stage.BILLING_ACTIVE),
    ("decline_quote", Stage.QUOTED), ("decline_quote", Stage.INVOICED),
    ("revise_quote", Stage.SIGNED),
]


@pytest.mark.parametrize("step,stage", ILLEGAL, ids=[f"{s}-from-{g.value}" for s, g in ILLEGAL])
def test_illegal_transitions_raise_and_change_nothing(services, step, stage):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), stage)
    counts = row_counts(ledger)
    with pytest.raises(IllegalTransition) as refused:
        STEPS[step][1](ledger, deal)
    assert stage.value in str(refused.value)
    assert row_counts(ledger) == counts
    assert stage_of(ledger, deal) is stage


@pytest.mark.parametrize("step", ["send_quote", "record_signature", "win_deal", "revise_quote", "decline_quote"])
def test_a_voided_deal_accepts_nothing_further(services, step):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    ledger.run(void_quote, deal, reason="duplicate", actor="U_REP")
    counts = row_counts(ledger)
    with pytest.raises(IllegalTransition):
        STEPS[step][1](ledger, deal)
    assert row_counts(ledger) == counts


def test_a_signature_on_an_old_version_is_refused_with_the_current_version_named(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    STEPS["revise_quote"][1](ledger, deal)
    ledger.run(send_quote, deal, provider="email", actor="U_REP")
    counts = row_counts(ledger)
    with pytest.raises(InvalidInput, match="this is version 1 of Q-2026-0001; version 2 is the current one"):
        _sign(ledger, deal, version=1)
    assert row_counts(ledger) == counts
    assert _sign(ledger, deal, version=2) is Done.ACTED


def test_revising_a_sent_quote_withdraws_its_envelope(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    STEPS["revise_quote"][1](ledger, deal)
    assert stage_of(ledger, deal) is Stage.QUOTED
    with ledger.sessions() as session:
        envelope = session.scalars(select(SignatureEnvelope)).one()
        assert envelope.status is EnvelopeStatus.VOIDED
        kinds = [m.kind for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
        assert "esign.void" in kinds
        quote = session.get(Deal, deal).quote
        assert [v.version for v in quote.versions] == [1, 2]
        assert quote.versions[0].content_hash != quote.versions[1].content_hash


def test_an_expired_quote_cannot_be_sent_and_a_valid_one_cannot_be_expired(services, clock):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger))
    with pytest.raises(InvalidInput, match="has not expired"):
        ledger.run(expire_quote, deal)
    clock.advance(timedelta(days=31))
    counts = row_counts(ledger)
    with pytest.raises(InvalidInput, match="expired on 2026-04-09; revise it"):
        ledger.run(send_quote, deal, provider="email", actor="U_REP")
    assert row_counts(ledger) == counts


def test_a_quote_cannot_be_sent_to_a_customer_without_a_signer(services):
    ledger = services.ledger
    seed(ledger)
    lonely = ledger.run(add_customer, name="Solo Ltd", country="GB", currency="EUR", contacts=(
        ContactRequest("Only Billing", "ap@solo.example", ContactRole.BILLING),))
    deal = quoted_deal(ledger, lonely)
    with pytest.raises(InvalidInput, match="Solo Ltd has no signer contact"):
        ledger.run(send_quote, deal, provider="email", actor="U_REP")
    assert stage_of(ledger, deal) is Stage.QUOTED


@pytest.mark.parametrize("lines,currency,message", [
    ([LineRequest("NOPE", Decimal(1))], "EUR", "there is no SKU 'NOPE'"),
    ([LineRequest("SEAT", Decimal(1))], "GBP", "SEAT has no GBP price"),
    ([LineRequest("SEAT", Decimal("2.5"))], "EUR", "2.5 is not a whole number"),
    ([LineRequest("SEAT", Decimal(0))], "EUR", "quantity must be positive"),
    ([], "EUR", "at least one line"),
    ([LineRequest("SEAT", Decimal(1))], "eur", "not an ISO 4217 currency"),
])
def test_a_bad_quote_is_refused_and_consumes_no_number(services, lines, currency, message):
    ledger = services.ledger
    customer = seed(ledger)
    counts = row_counts(ledger)
    with pytest.raises(InvalidInput, match=message):
        ledger.run(draft_quote, key="bad", customer_id=customer, owner="U_REP", currency=currency, lines=lines)
    assert row_counts(ledger) == counts
    deal = quoted_deal(ledger, customer)
    assert ledger.read(lambda s: s.get(Deal, deal).quote.number) == "Q-2026-0001"


def test_bad_customer_details_are_refused(services):
    with pytest.raises(InvalidInput, match="two-letter ISO code"):
        services.ledger.run(add_customer, name="X", country="Germany", currency="EUR")
    with pytest.raises(InvalidInput, match="not an email address"):
        services.ledger.run(add_customer, name="X", country="DE", currency="EUR", contacts=(
            ContactRequest("Eve", "alice@example.org)<bob@evil.example>", ContactRole.SIGNER),))


def test_the_invoice_carries_the_signed_lines_totals_terms_and_first_period(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.INVOICED, discount_bp=1000)
    with ledger.sessions() as session:
        invoice = session.scalars(select(Invoice)).one()
        assert invoice.number == "INV-2026-000001" and invoice.status is InvoiceStatus.ISSUED
        assert invoice.deal_id == deal
        # 10 seats x 40.00 - 10 % = 360.00; setup 1500.00 - 10 % = 1350.00; 20 % tax on 1710.00
        assert [line.net for line in invoice.lines] == [36000, 135000]
        assert (invoice.net, invoice.tax, invoice.gross) == (171000, 34200, 205200)
        assert invoice.due_on == date(2026, 4, 9)
        seat, setup = invoice.lines
        assert (seat.period_start, seat.period_end) == (date(2026, 3, 10), date(2026, 4, 10))
        assert setup.period_start is None


def test_a_yen_quote_is_priced_in_whole_yen(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.INVOICED, currency="JPY",
                   lines=[LineRequest("SEAT", Decimal(3))], discount_bp=333)
    with ledger.sessions() as session:
        invoice = session.scalars(select(Invoice).where(Invoice.deal_id == deal)).one()
        # 3 x 6000 = 18000 yen, less 3.33 % = 17400.6 -> 17401 (half-up); tax 20 % = 3480.2 -> 3480
        assert (invoice.lines[0].net, invoice.tax, invoice.gross) == (17401, 3480, 20881)
