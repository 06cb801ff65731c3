"""Collections on the manual gateway (bank transfer), day by day with a moving clock
across months: the reminder and each overdue rung exactly once per invoice, with the
aging report and every unpaid invoice attached; partial payments; the suspension
policy per currency and reinstatement on payment; remittance emails; one payment link
for several invoices with one receipt; the optional late fee."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from closeloop.bootstrap import build
from closeloop.money import money_tick
from flows.billing import Payment
from flows.collections import DunningNotice, PolicySuspension, open_payment_link, record_payment_claim, \
    settle_payment_link
from flows.deals import Stage
from flows.errors import InvalidInput
from flows.finance import record_payment
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License, LicenseStatus
from flows.outbox import OutboxMessage
from flows.parties import ContactRole
from flows.steps import ContactRequest, Done, LineRequest, add_customer
from flows.timeline import Event
from tests.factories import deal_at, seed


@pytest.fixture
def office(settings, clock):
    """closeloop on the manual gateway with a suspension policy and a late fee."""
    built = build(settings.model_copy(update={
        "suspend_over": "EUR=500.00,USD=5000.00", "suspend_after_days": 14,
        "bank_details": "IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX"}), clock)
    yield built
    built.close()


def _today(clock) -> date:
    return clock.now().date()


def _invoice_of(ledger, deal_id):
    return ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.deal_id == deal_id)))


def _rows(ledger, model, *where):
    return ledger.read(lambda s: list(s.scalars(select(model).where(*where).order_by(model.id))))


def _emails(ledger, template=None):
    return [m for m in _rows(ledger, OutboxMessage, OutboxMessage.kind == "email.send")
            if template is None or m.payload["template"] == template]


def _days(clock, start: date, end: date, money):
    """Run the beat once (twice, to prove re-runs send nothing) on every day in [start, end]."""
    day = start
    while day <= end:
        clock.set(clock.now().replace(year=day.year, month=day.month, day=day.day))
        money_tick(money)
        money_tick(money)
        day += timedelta(days=1)


def test_the_reminder_and_each_overdue_rung_go_out_once_with_the_attachments(services, clock):
    ledger = services.ledger
    customer = seed(ledger)
    invoice = _invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE))
    assert invoice.due_on == date(2026, 4, 9)
    _days(clock, date(2026, 3, 11), date(2026, 5, 20), services.money)

    notices = _rows(ledger, DunningNotice)
    assert [(n.rung, n.as_of, n.skipped) for n in notices] == [
        ("reminder", date(2026, 4, 4), False), ("overdue+1", date(2026, 4, 10), False),
        ("overdue+7", date(2026, 4, 16), False), ("overdue+14", date(2026, 4, 23), False),
        ("overdue+30", date(2026, 5, 9), False)]
    emails = _emails(ledger)
    assert [m.payload["template"] for m in emails] == ["payment_reminder"] + ["payment_overdue"] * 4
    assert {m.payload["locale"] for m in emails} == {"de"} and {tuple(m.payload["to"]) for m in emails} == {
        ("billing@acme.example",)}
    overdue = emails[2].payload
    assert overdue["context"]["days_late"] == 7 and overdue["context"]["balance"] == 228000
    assert [(a["render"], a["filename"]) for a in overdue["attachments"]] == [
        ("aging_report", "aging-2026-04-16.pdf"), ("invoice", f"{invoice.number}.pdf")]
    assert emails[0].payload["attachments"] == [] and emails[0].payload["context"]["days_left"] == 5


def test_an_invoice_first_seen_late_gets_only_the_rung_it_has_reached(services, clock):
    ledger = services.ledger
    customer = seed(ledger)
    invoice = _invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE))
    counts = money_tick(services.money, invoice.due_on + timedelta(days=20))
    assert (counts["overdue"], counts["skipped"], counts["reminders"]) == (1, 2, 0)
    assert [(n.rung, n.skipped) for n in _rows(ledger, DunningNotice)] == [
        ("overdue+1", True), ("overdue+7", True), ("overdue+14", False)]
    assert money_tick(services.money, invoice.due_on + timedelta(days=21))["overdue"] == 0


def test_partial_payments_keep_the_invoice_open_with_its_balance_and_each_gets_a_receipt(services, clock):
    ledger = services.ledger
    customer = seed(ledger)
    invoice = _invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE))
    ledger.run(record_payment, invoice_number=invoice.number, amount=100000, method="bank_transfer",
               reference="BANK-1", actor="U_FIN")
    money_tick(services.money, invoice.due_on + timedelta(days=1))
    [overdue] = _emails(ledger, "payment_overdue")
    assert overdue.payload["context"]["balance"] == 128000
    ledger.run(record_payment, invoice_number=invoice.number, amount=128000, method="bank_transfer",
               reference="BANK-2", actor="U_FIN")
    assert ledger.read(lambda s: s.get(Invoice, invoice.id)).status is InvoiceStatus.PAID
    receipts = _emails(ledger, "receipt")
    assert [(r.payload["context"]["amount"], r.payload["context"]["invoices"][0]["balance"]) for r in receipts] == [
        (100000, 128000), (128000, 0)]
    assert money_tick(services.money, invoice.due_on + timedelta(days=40))["overdue"] == 0  # paid: the ladder stops


def test_licenses_are_suspended_per_currency_threshold_and_reinstated_on_payment(office, clock):
    ledger = office.ledger
    eur = seed(ledger)
    usd = ledger.run(add_customer, name="Yankee Inc", country="US", currency="USD", contacts=(
        ContactRequest("Yan", "ap@yankee.example", ContactRole.BILLING),
        ContactRequest("Yan Signer", "sign@yankee.example", ContactRole.SIGNER)))
    eur_invoice = _invoice_of(ledger, deal_at(ledger, eur, Stage.BILLING_ACTIVE))  # 2,280.00 EUR ≥ 500.00
    usd_deal = deal_at(ledger, usd, Stage.BILLING_ACTIVE, currency="USD",
                       lines=[LineRequest("SEAT", Decimal(10)), LineRequest("SETUP", Decimal(1))])
    assert _invoice_of(ledger, usd_deal).gross == 252000  # 2,520.00 USD < 5,000.00: never suspended

    def on_day(days):
        clock.set(clock.now() + (eur_invoice.due_on + timedelta(days=days) - _today(clock)))
        return money_tick(office.money)["suspended"]

    assert on_day(13) == 0  # not old enough yet
    assert on_day(14) == 1
    assert on_day(15) == 0
    licenses = {lic.customer_id: lic for lic in _rows(ledger, License)}
    assert (licenses[eur].status, licenses[usd].status) == (LicenseStatus.SUSPENDED, LicenseStatus.ACTIVE)
    [held] = _rows(ledger, PolicySuspension)
    assert (held.currency, held.overdue_amount, held.oldest_days, held.reinstated_at) == ("EUR", 228000, 14, None)
    thread = [m.payload["text"] for m in _rows(ledger, OutboxMessage, OutboxMessage.kind == "slack.deal_thread")
              if m.payload["kind"] == "license.suspended"]
    assert len(thread) == 1 and "oldest invoice 14 days past due" in thread[0]
    assert _rows(ledger, Event, Event.kind == "collections.suspended")

    ledger.run(record_payment, invoice_number=eur_invoice.number, amount=100000, method="bank_transfer",
               reference="BANK-P1", actor="U_FIN")
    assert ledger.read(lambda s: s.get(License, licenses[eur].id)).status is LicenseStatus.SUSPENDED  # still owes
    ledger.run(record_payment, invoice_number=eur_invoice.number, amount=128000, method="bank_transfer",
               reference="BANK-P2", actor="U_FIN")
    assert ledger.read(lambda s: s.get(License, licenses[eur].id)).status is LicenseStatus.ACTIVE
    assert _rows(ledger, PolicySuspension)[0].reinstated_at is not None
    assert _rows(ledger, Event, Event.kind == "collections.reinstated")


def test_a_remittance_email_from_a_known_contact_records_the_transfer_once(services):
    ledger = services.ledger
    customer = seed(ledger)
    invoice = _invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE))
    claim = dict(invoice_number=invoice.number, amount=228000, reference=None, message_id="<r1@acme.example>")
    with pytest.raises(InvalidInput, match="not a contact"):
        ledger.run(record_payment_claim, sender="mallory@evil.example", **claim)
    assert ledger.run(record_payment_claim, sender="Billing@Acme.example", **claim) is Done.ACTED
    assert ledger.run(record_payment_claim, sender="billing@acme.example", **claim) is Done.ALREADY
    [payment] = _rows(ledger, Payment)
    assert (payment.reference, payment.amount) == ("remittance:<r1@acme.example>", 228000)
    assert ledger.read(lambda s: s.get(Invoice, invoice.id)).status is InvoiceStatus.PAID


def test_a_bank_transfer_payment_link_settles_every_invoice_with_one_receipt(office):
    ledger = office.ledger
    customer = seed(ledger)
    invoices = [_invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE)) for _ in range(3)]
    ledger.run(record_payment, invoice_number=invoices[0].number, amount=28000, method="bank_transfer",
               reference="BANK-EARLY", actor="U_FIN")  # a partial payment earlier: the link asks for the rest
    link = open_payment_link(ledger, office.money.gateway, customer, "EUR")
    assert link.amount == 200000 + 2 * 228000 and link.url == "" and link.gateway == "manual"
    [email] = _emails(ledger, "payment_link")
    assert link.reference in email.payload["context"]["instructions"]
    assert "IBAN DE89" in email.payload["context"]["instructions"]

    assert ledger.run(settle_payment_link, amount=link.amount, payment_ref="BANK-777",
                      link_reference=link.reference, actor="U_FIN") is Done.ACTED
    assert ledger.run(settle_payment_link, amount=link.amount, payment_ref="BANK-777",
                      link_reference=link.reference, actor="U_FIN") is Done.ALREADY
    assert {ledger.read(lambda s, i=i: s.get(Invoice, i.id)).status for i in invoices} == {InvoiceStatus.PAID}
    link_receipts = [r for r in _emails(ledger, "receipt") if r.payload["context"]["reference"] == "BANK-777"]
    assert len(link_receipts) == 1 and link_receipts[0].payload["context"]["amount"] == 656000
    with pytest.raises(InvalidInput, match="owes nothing"):
        open_payment_link(ledger, office.money.gateway, customer, "EUR")


def test_the_optional_late_fee_is_invoiced_once_at_the_first_overdue_rung(settings, clock):
    built = build(settings.model_copy(update={"late_fee_percent": "2"}), clock)
    try:
        ledger = built.ledger
        customer = seed(ledger)
        invoice = _invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE))
        for days in (1, 2, 7, 14):
            money_tick(built.money, invoice.due_on + timedelta(days=days))
        [fee] = _rows(ledger, Invoice, Invoice.purpose_key == f"late_fee:{invoice.id}")
        assert (fee.status, fee.gross, fee.number is not None) == (InvoiceStatus.ISSUED, 4560, True)
    finally:
        built.close()


def test_the_money_views_show_what_the_gap_rules_need(office, clock):
    from flows.money_views import overdue_with_active_license, suspended_although_paid
    ledger = office.ledger
    customer = seed(ledger)
    invoice = _invoice_of(ledger, deal_at(ledger, customer, Stage.BILLING_ACTIVE))
    late = invoice.due_on + timedelta(days=20)
    [gap] = ledger.read(overdue_with_active_license, late, office.money.collections)
    assert (gap.kind, gap.customer_id) == ("collections.overdue_license_active", customer)
    clock.set(clock.now() + (late - _today(clock)))
    money_tick(office.money)
    assert ledger.read(overdue_with_active_license, late, office.money.collections) == []
    assert ledger.read(suspended_although_paid, late) == []
