"""External accounting mode: an invoice from the accounting system is linked to its
deal by reference, customer and amount, posted to the deal thread; one that fits no
deal is kept as unmatched (a gap)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from closeloop.bootstrap import build
from flows.deals import Deal, Stage
from flows.external_invoices import (ExternalInvoice, ExternalInvoiceRecord, ExternalInvoiceStatus,
                                     link_external_invoice)
from flows.outbox import OutboxMessage
from flows.parties import Customer
from flows.quotes import Quote
from tests.factories import deal_at, seed


def _external(settings, clock):
    return build(settings.model_copy(update={"invoicing": "external"}), clock)


def test_an_invoice_naming_the_quote_is_linked_and_posted_to_the_deal_thread(settings, clock):
    services = _external(settings, clock)
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.BILLING_ACTIVE)
    quote, amount = ledger.read(lambda s: (s.scalar(select(Quote.number).where(Quote.deal_id == deal)),
                                           s.get(Deal, deal).amount))
    extracted = ExternalInvoice(source="<m1@acct.example>/RE-1001.pdf", number="RE-1001", customer_name="ACME GmbH",
                                gross=amount + 1, currency="EUR", issue_date=date(2026, 3, 11),
                                text=f"Rechnung RE-1001\nIhr Angebot {quote}\n")
    link = ledger.run(link_external_invoice, extracted)
    assert link.deal_id == deal and "reference" in link.reason
    assert ledger.run(link_external_invoice, extracted) == link  # the same mail again: nothing new
    posts = ledger.read(lambda s: [m.payload["text"] for m in s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "slack.deal_thread", OutboxMessage.payload["kind"].as_string() == "invoice.external_linked"))])
    assert len(posts) == 1 and "RE-1001" in posts[0] and f"D-{deal}" in posts[0]
    services.close()


def test_customer_by_vat_id_and_amount_link_without_a_reference(settings, clock):
    services = _external(settings, clock)
    ledger = services.ledger
    customer = seed(ledger)
    ledger.run(lambda tx: setattr(tx.get(Customer, customer), "tax_id", "DE 123 456 789"))
    deal = deal_at(ledger, customer, Stage.BILLING_ACTIVE)
    amount = ledger.read(lambda s: s.get(Deal, deal).amount)
    link = ledger.run(link_external_invoice, ExternalInvoice(source="m2", number="RE-1002", vat_id="de123456789",
                                                             gross=amount, currency="EUR"))
    assert (link.deal_id, link.reason) == (deal, "customer and amount")
    services.close()


def test_an_invoice_that_fits_no_deal_is_recorded_unmatched_for_the_gap_rules(settings, clock):
    services = _external(settings, clock)
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.BILLING_ACTIVE)
    amount = ledger.read(lambda s: s.get(Deal, deal).amount)
    wrong_amount = ledger.run(link_external_invoice, ExternalInvoice(
        source="m3", number="RE-1003", customer_name="Acme GmbH", gross=amount + 999, currency="EUR"))
    stranger = ledger.run(link_external_invoice, ExternalInvoice(
        source="m4", number="RE-1004", customer_name="Globex Ltd", gross=amount, currency="EUR"))
    assert wrong_amount.deal_id is None and "none with this amount" in wrong_amount.reason
    assert stranger.deal_id is None and "no customer" in stranger.reason
    unmatched = ledger.read(lambda s: sorted(s.scalars(select(ExternalInvoiceRecord.number).where(
        ExternalInvoiceRecord.status == ExternalInvoiceStatus.UNMATCHED))))
    assert unmatched == ["RE-1003", "RE-1004"]
    services.close()
