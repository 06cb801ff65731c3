"""What finance does by hand: record a bank payment, resend an invoice, suspend or
reinstate a license, send a statement. Each is idempotent by its request; refusals
say what to fix and change nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from flows.billing import Payment
from flows.deals import Stage
from flows.errors import InvalidInput, NotFound
from flows.finance import reinstate_license, record_payment, resend_invoice, send_statement, suspend_license
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License, LicenseStatus
from flows.outbox import OutboxMessage
from flows.steps import Done, finalize_invoice
from flows.timeline import Event
from tests.factories import deal_at, row_counts, seed

FINANCE = "U0FINANCE"


@pytest.fixture
def billed(services):
    """A customer whose deal is billing: its invoice is issued and its license active."""
    ledger = services.ledger
    customer = seed(ledger)
    deal = deal_at(ledger, customer, Stage.BILLING_ACTIVE)
    return customer, deal, _invoice_of(ledger, deal)


def _invoice_of(ledger, deal_id):
    return ledger.read(lambda s: s.scalar(select(Invoice.number).where(Invoice.deal_id == deal_id)))


def _invoice(ledger, number):
    return ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.number == number)))


def _license_of(ledger, deal_id):
    return ledger.read(lambda s: s.scalars(select(License).where(License.deal_id == deal_id)).one())


def _payments(ledger):
    return ledger.read(lambda s: list(s.scalars(select(Payment).order_by(Payment.id))))


def _events(ledger, kind, **where):
    query = select(Event).where(Event.kind == kind).order_by(Event.id)
    for column, value in where.items():
        query = query.where(getattr(Event, column) == value)
    return ledger.read(lambda s: list(s.scalars(query)))


def _outbox(ledger, kind, *, thread_kind=None):
    rows = ledger.read(lambda s: list(s.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id))))
    return [r for r in rows if thread_kind is None or r.payload["kind"] == thread_kind]


def _pay(ledger, number, amount, reference, method="bank_transfer"):
    return ledger.run(record_payment, invoice_number=number, amount=amount, method=method,
                      reference=reference, actor=FINANCE)


# --- payments ---------------------------------------------------------------------------

def test_a_partial_then_a_final_payment_settle_the_invoice(services, billed, clock):
    ledger = services.ledger
    _, deal, number = billed
    gross = _invoice(ledger, number).gross
    assert gross == 228000  # 10 seats at 40.00 + 1500.00 onboarding, plus 20 % VAT

    assert _pay(ledger, number, 100000, "BANK-2026-03-0001") is Done.ACTED
    invoice = _invoice(ledger, number)
    assert (invoice.status, invoice.amount_paid, invoice.balance) == (InvoiceStatus.ISSUED, 100000, 128000)

    clock.advance(timedelta(days=3))
    assert _pay(ledger, number, 128000, "BANK-2026-03-0002") is Done.ACTED
    invoice = _invoice(ledger, number)
    assert (invoice.status, invoice.amount_paid, invoice.balance) == (InvoiceStatus.PAID, 228000, 0)

    payments = _payments(ledger)
    assert [(p.amount, p.reference, p.method, p.currency, p.recorded_by) for p in payments] == [
        (100000, "BANK-2026-03-0001", "bank_transfer", "EUR", FINANCE),
        (128000, "BANK-2026-03-0002", "bank_transfer", "EUR", FINANCE)]
    assert payments[1].received_at == clock.now()
    recorded = _events(ledger, "payment.recorded", deal_id=deal)
    assert [(e.actor, e.data["amount"], e.data["reference"]) for e in recorded] == [
        (FINANCE, 100000, "BANK-2026-03-0001"), (FINANCE, 128000, "BANK-2026-03-0002")]
    posts = _outbox(ledger, "slack.deal_thread", thread_kind="payment.recorded")
    assert [p.deal_id for p in posts] == [deal, deal]
    assert posts[0].payload["text"] == (f"Payment of 1,000.00 EUR on {number} recorded by {FINANCE}"
                                        " — 1,280.00 EUR still open")
    assert posts[1].payload["text"] == f"Payment of 1,280.00 EUR on {number} recorded by {FINANCE} — paid in full"


def test_the_same_bank_reference_twice_is_one_payment(services, billed):
    ledger = services.ledger
    _, _, number = billed
    _pay(ledger, number, 50000, "BANK-REF-42")
    after_first = row_counts(ledger)

    assert _pay(ledger, number, 50000, "BANK-REF-42") is Done.ALREADY

    assert row_counts(ledger) == after_first
    assert len(_payments(ledger)) == 1
    assert _invoice(ledger, number).amount_paid == 50000


def test_replaying_the_final_payment_of_a_paid_invoice_changes_nothing(services, billed):
    ledger = services.ledger
    _, _, number = billed
    _pay(ledger, number, 228000, "BANK-FULL")
    before = row_counts(ledger)
    assert _pay(ledger, number, 228000, "BANK-FULL") is Done.ALREADY
    assert row_counts(ledger) == before


def test_a_new_payment_on_a_paid_invoice_is_refused(services, billed):
    ledger = services.ledger
    _, _, number = billed
    _pay(ledger, number, 228000, "BANK-FULL")
    before = row_counts(ledger)

    with pytest.raises(InvalidInput, match=f"invoice {number} is paid; only issued invoices take payments"):
        _pay(ledger, number, 100, "BANK-EXTRA")

    assert row_counts(ledger) == before


def test_an_overpayment_is_refused_and_changes_nothing(services, billed):
    ledger = services.ledger
    _, _, number = billed
    _pay(ledger, number, 28000, "BANK-FIRST")
    before = row_counts(ledger)

    with pytest.raises(InvalidInput) as refusal:
        _pay(ledger, number, 200001, "BANK-TOO-MUCH")

    assert "more than the open balance" in str(refusal.value) and number in str(refusal.value)
    assert row_counts(ledger) == before
    assert _invoice(ledger, number).amount_paid == 28000


@pytest.mark.parametrize("amount", [0, -500], ids=["zero", "negative"])
def test_a_payment_must_be_a_positive_amount(services, billed, amount):
    ledger = services.ledger
    _, _, number = billed
    before = row_counts(ledger)
    with pytest.raises(InvalidInput, match="a payment is a positive amount"):
        _pay(ledger, number, amount, "BANK-ODD")
    assert row_counts(ledger) == before


def test_a_draft_invoice_takes_no_payment_until_it_is_issued(services, billed):
    """A draft has no number yet: finance cannot name it, so nothing can be paid on it;
    once issued, it takes payments."""
    ledger = services.ledger
    customer, _, issued = billed

    def stage_draft(tx):
        invoice = Invoice(customer_id=customer, purpose_key="manual:credit-top-up", status=InvoiceStatus.DRAFT,
                          currency="EUR", net=10000, tax=0, amount_paid=0, payment_terms_days=14,
                          created_at=tx.now)
        tx.session.add(invoice)
        tx.session.flush()
        return invoice.id
    draft = ledger.run(stage_draft)
    next_number = issued[:-6] + f"{int(issued[-6:]) + 1:06d}"
    before = row_counts(ledger)

    with pytest.raises(NotFound, match=f"invoice {next_number} does not exist"):
        _pay(ledger, next_number, 100, "BANK-EARLY")

    assert row_counts(ledger) == before
    ledger.run(finalize_invoice, draft)
    assert _invoice(ledger, next_number).status is InvoiceStatus.ISSUED


def test_a_payment_on_an_unknown_invoice_is_refused(services, billed):
    ledger = services.ledger
    before = row_counts(ledger)
    with pytest.raises(NotFound, match="invoice INV-1999-000001 does not exist"):
        _pay(ledger, "INV-1999-000001", 100, "BANK-NOWHERE")
    assert row_counts(ledger) == before


# --- resending invoices ----------------------------------------------------------------

def test_resending_with_the_same_request_key_sends_once(services, billed):
    ledger = services.ledger
    _, deal, number = billed
    deliveries_before = len(_outbox(ledger, "invoice.deliver"))

    assert ledger.run(resend_invoice, invoice_number=number, actor=FINANCE, request_key="click-1") is Done.ACTED
    after_first = row_counts(ledger)
    assert ledger.run(resend_invoice, invoice_number=number, actor=FINANCE, request_key="click-1") is Done.ALREADY

    assert row_counts(ledger) == after_first
    resends = _outbox(ledger, "invoice.deliver")[deliveries_before:]
    assert [(r.payload, r.deal_id) for r in resends] == [({"invoice": number, "resend": True}, deal)]
    [resent] = _events(ledger, "invoice.resent", deal_id=deal)
    assert resent.actor == FINANCE and resent.data["invoice"] == number
    assert len(_outbox(ledger, "slack.deal_thread", thread_kind="invoice.resent")) == 1


def test_resending_with_different_request_keys_sends_each(services, billed):
    ledger = services.ledger
    _, _, number = billed
    deliveries_before = len(_outbox(ledger, "invoice.deliver"))

    for key in ("click-1", "click-2"):
        assert ledger.run(resend_invoice, invoice_number=number, actor=FINANCE, request_key=key) is Done.ACTED

    assert len(_outbox(ledger, "invoice.deliver")) == deliveries_before + 2
    assert len(_events(ledger, "invoice.resent")) == 2


def test_resending_an_unknown_invoice_is_refused(services, billed):
    ledger = services.ledger
    before = row_counts(ledger)
    with pytest.raises(NotFound):
        ledger.run(resend_invoice, invoice_number="INV-1999-000009", actor=FINANCE, request_key="k")
    assert row_counts(ledger) == before


# --- licenses ----------------------------------------------------------------------------

def test_suspending_and_reinstating_a_license(services, billed, clock):
    ledger = services.ledger
    _, deal, _ = billed
    license = _license_of(ledger, deal)
    provisions_before = len(_outbox(ledger, "license.provision"))

    assert ledger.run(suspend_license, license.id, reason="invoice 60 days overdue", actor=FINANCE) is Done.ACTED
    suspended = _license_of(ledger, deal)
    assert (suspended.status, suspended.status_changed_at) == (LicenseStatus.SUSPENDED, clock.now())

    clock.advance(timedelta(days=2))
    assert ledger.run(reinstate_license, license.id, reason="paid in full", actor=FINANCE) is Done.ACTED
    reinstated = _license_of(ledger, deal)
    assert (reinstated.status, reinstated.status_changed_at) == (LicenseStatus.ACTIVE, clock.now())

    provisions = _outbox(ledger, "license.provision")[provisions_before:]
    assert [(p.payload, p.deal_id) for p in provisions] == [
        ({"deal_id": deal, "product": "SEAT", "status": "suspended"}, deal),
        ({"deal_id": deal, "product": "SEAT", "status": "active"}, deal)]
    [suspension] = _events(ledger, "license.suspended", deal_id=deal)
    [reinstatement] = _events(ledger, "license.reinstated", deal_id=deal)
    assert (suspension.actor, suspension.data["reason"]) == (FINANCE, "invoice 60 days overdue")
    assert (reinstatement.actor, reinstatement.data["reason"]) == (FINANCE, "paid in full")
    posts = _outbox(ledger, "slack.deal_thread", thread_kind="license.suspended")
    assert len(posts) == 1 and "invoice 60 days overdue" in posts[0].payload["text"]


@pytest.mark.parametrize("reason", ["", "   "], ids=["empty", "blank"])
def test_suspending_needs_a_reason(services, billed, reason):
    ledger = services.ledger
    _, deal, _ = billed
    license = _license_of(ledger, deal)
    before = row_counts(ledger)

    with pytest.raises(InvalidInput, match="say why"):
        ledger.run(suspend_license, license.id, reason=reason, actor=FINANCE)

    assert row_counts(ledger) == before
    assert _license_of(ledger, deal).status is LicenseStatus.ACTIVE


def test_reinstating_needs_a_reason(services, billed):
    ledger = services.ledger
    _, deal, _ = billed
    license = _license_of(ledger, deal)
    ledger.run(suspend_license, license.id, reason="overdue", actor=FINANCE)
    before = row_counts(ledger)

    with pytest.raises(InvalidInput, match="say why"):
        ledger.run(reinstate_license, license.id, reason=" ", actor=FINANCE)

    assert row_counts(ledger) == before
    assert _license_of(ledger, deal).status is LicenseStatus.SUSPENDED


def test_suspending_a_suspended_license_changes_nothing(services, billed, clock):
    ledger = services.ledger
    _, deal, _ = billed
    license = _license_of(ledger, deal)
    ledger.run(suspend_license, license.id, reason="overdue", actor=FINANCE)
    after_first = row_counts(ledger)
    clock.advance(timedelta(hours=1))

    assert ledger.run(suspend_license, license.id, reason="still overdue", actor=FINANCE) is Done.ALREADY

    assert row_counts(ledger) == after_first


def test_reinstating_an_active_license_changes_nothing(services, billed):
    ledger = services.ledger
    _, deal, _ = billed
    license = _license_of(ledger, deal)
    before = row_counts(ledger)
    assert ledger.run(reinstate_license, license.id, reason="just in case", actor=FINANCE) is Done.ALREADY
    assert row_counts(ledger) == before


def test_a_license_suspended_again_after_reinstatement_is_provisioned_again(services, billed, clock):
    ledger = services.ledger
    _, deal, _ = billed
    license = _license_of(ledger, deal)
    provisions_before = len(_outbox(ledger, "license.provision"))
    ledger.run(suspend_license, license.id, reason="overdue", actor=FINANCE)
    clock.advance(timedelta(days=1))
    ledger.run(reinstate_license, license.id, reason="paid", actor=FINANCE)
    clock.advance(timedelta(days=30))

    assert ledger.run(suspend_license, license.id, reason="overdue again", actor=FINANCE) is Done.ACTED

    statuses = [p.payload["status"] for p in _outbox(ledger, "license.provision")[provisions_before:]]
    assert statuses == ["suspended", "active", "suspended"]


def test_suspending_an_unknown_license_is_refused(services, billed):
    ledger = services.ledger
    before = row_counts(ledger)
    with pytest.raises(NotFound):
        ledger.run(suspend_license, 999_999, reason="overdue", actor=FINANCE)
    assert row_counts(ledger) == before


# --- statements ---------------------------------------------------------------------------

def test_a_statement_is_sent_once_per_request(services, billed):
    ledger = services.ledger
    customer, _, _ = billed

    assert ledger.run(send_statement, customer, actor=FINANCE, request_key="click-1") is Done.ACTED
    after_first = row_counts(ledger)
    assert ledger.run(send_statement, customer, actor=FINANCE, request_key="click-1") is Done.ALREADY

    assert row_counts(ledger) == after_first
    [statement] = _outbox(ledger, "collect.statement")
    assert (statement.payload, statement.stream, statement.deal_id) == (
        {"customer_id": customer}, f"customer:{customer}", None)
    [requested] = _events(ledger, "statement.requested")
    assert (requested.actor, requested.customer_id, requested.deal_id) == (FINANCE, customer, None)


def test_statements_for_different_requests_are_each_sent(services, billed):
    ledger = services.ledger
    customer, _, _ = billed
    for key in ("click-1", "click-2"):
        assert ledger.run(send_statement, customer, actor=FINANCE, request_key=key) is Done.ACTED
    assert len(_outbox(ledger, "collect.statement")) == 2
    assert len(_events(ledger, "statement.requested")) == 2



def test_suspending_reinstating_and_suspending_again_provisions_each_change_once(services):
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.BILLING_ACTIVE)
    license_id = ledger.read(lambda s: s.scalars(select(License.id).where(License.deal_id == deal)).first())
    # the clock does not move between the three changes
    assert ledger.run(suspend_license, license_id, reason="overdue", actor="U0FIN") is Done.ACTED
    assert ledger.run(reinstate_license, license_id, reason="paid", actor="U0FIN") is Done.ACTED
    assert ledger.run(suspend_license, license_id, reason="overdue again", actor="U0FIN") is Done.ACTED
    changes = ledger.read(lambda s: [m.payload.get("status") for m in s.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "license.provision").order_by(OutboxMessage.id))])
    assert changes[-3:] == ["suspended", "active", "suspended"]


def test_a_statement_for_an_unknown_customer_is_refused_plainly(services):
    with pytest.raises(NotFound, match="customer 99999 does not exist"):
        services.ledger.run(send_statement, 99999, actor="U0FIN", request_key="k")


def test_a_bank_reference_already_used_for_another_payment_is_refused_not_dropped(services):
    ledger = services.ledger
    customer = seed(ledger)
    deals = [deal_at(ledger, customer, Stage.BILLING_ACTIVE) for _ in range(2)]
    first, second = (ledger.read(lambda s, d=d: s.scalars(select(Invoice.number).where(Invoice.deal_id == d)).one())
                     for d in deals)
    ledger.run(record_payment, invoice_number=first, amount=5000, method="bank_transfer", reference="R1",
               actor="U0FIN")
    with pytest.raises(InvalidInput, match="reference R1 was already recorded"):
        ledger.run(record_payment, invoice_number=second, amount=5000, method="bank_transfer", reference="R1",
                   actor="U0FIN")
