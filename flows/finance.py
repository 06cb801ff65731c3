"""What finance does by hand: record a payment, resend an invoice, suspend or
reinstate a license, send a statement. Each is idempotent by its request key."""
from __future__ import annotations

from sqlalchemy import select

from flows.deals import Deal
from flows.errors import InvalidInput, NotFound
from flows.invoices import Invoice, InvoiceStatus
from flows.ledger import Tx
from flows.licenses import License, LicenseStatus
from flows.parties import Customer
from flows.money import Money
from flows.outbox import OutboxMessage
from flows.billing import Payment
from flows.steps import Done, announce


def record_payment(tx: Tx, *, invoice_number: str, amount: int, method: str, reference: str, actor: str) -> Done:
    """A payment received outside a gateway (bank transfer, cheque), recorded by finance.
    The bank's reference makes it idempotent: the same transfer is never counted twice."""
    invoice = _invoice(tx, invoice_number)
    earlier = tx.session.scalar(select(Payment).where(Payment.reference == reference))
    if earlier is not None:
        if earlier.invoice_id == invoice.id and earlier.amount == amount:
            return Done.ALREADY
        raise InvalidInput(f"reference {reference} was already recorded for "
                           f"{Money(earlier.amount, earlier.currency)} on another payment; "
                           "check the bank statement and use that transfer's own reference")
    if invoice.status not in (InvoiceStatus.ISSUED,):
        raise InvalidInput(f"invoice {invoice_number} is {invoice.status.value}; only issued invoices take payments")
    if type(amount) is not int or amount <= 0:
        raise InvalidInput("a payment is a positive amount")
    if amount > invoice.balance:
        raise InvalidInput(f"{Money(amount, invoice.currency)} is more than the open balance "
                           f"{Money(invoice.balance, invoice.currency)} of {invoice_number}")
    tx.session.add(Payment(invoice_id=invoice.id, amount=amount, currency=invoice.currency, method=method,
                           reference=reference, received_at=tx.now, recorded_by=actor))
    invoice.amount_paid += amount
    if invoice.balance == 0:
        invoice.status = InvoiceStatus.PAID
    deal = tx.get(Deal, invoice.deal_id) if invoice.deal_id else None
    text = (f"Payment of {Money(amount, invoice.currency)} on {invoice_number} recorded by {actor}"
            + (" — paid in full" if invoice.status is InvoiceStatus.PAID else
               f" — {Money(invoice.balance, invoice.currency)} still open"))
    if deal is not None:
        announce(tx, deal, "payment.recorded", text, actor=actor, invoice=invoice_number, amount=amount,
                 method=method, reference=reference)
    else:
        tx.record("payment.recorded", deal_id=None, customer_id=invoice.customer_id, actor=actor,
                  invoice=invoice_number, amount=amount, method=method, reference=reference)
    from flows.collections import payment_settled  # the receipt, and reinstatement (collections imports us)
    payment_settled(tx, [(invoice, amount)], currency=invoice.currency, reference=reference, method=method)
    return Done.ACTED


def resend_invoice(tx: Tx, *, invoice_number: str, actor: str, request_key: str) -> Done:
    """Send an issued invoice again. `request_key` identifies the click or command, so a
    double click sends it once."""
    invoice = _invoice(tx, invoice_number)
    if invoice.status is InvoiceStatus.DRAFT:
        raise InvalidInput(f"invoice {invoice_number} is a draft; it has not been issued")
    key = f"invoice.deliver:{invoice_number}:resend:{request_key}"
    if _already_requested(tx, key):
        return Done.ALREADY
    tx.enqueue("invoice.deliver", {"invoice": invoice_number, "resend": True}, key=key, deal_id=invoice.deal_id)
    _note(tx, invoice.deal_id, invoice.customer_id, "invoice.resent", f"Invoice {invoice_number} resent by {actor}",
          actor=actor, invoice=invoice_number)
    return Done.ACTED


def suspend_license(tx: Tx, license_id: int, *, reason: str, actor: str) -> Done:
    return _set_license(tx, license_id, LicenseStatus.SUSPENDED, reason=reason, actor=actor)


def reinstate_license(tx: Tx, license_id: int, *, reason: str, actor: str) -> Done:
    return _set_license(tx, license_id, LicenseStatus.ACTIVE, reason=reason, actor=actor)


def send_statement(tx: Tx, customer_id: int, *, actor: str, request_key: str) -> Done:
    """Ask for a statement of account (open invoices, aging) to be sent to the customer."""
    # Locked (and NotFound for an unknown customer): a double click waits here for the
    # first request to commit, then sees its outbox row and answers "already done".
    tx.get(Customer, customer_id)
    key = f"collect.statement:{customer_id}:{request_key}"
    if _already_requested(tx, key):
        return Done.ALREADY
    tx.enqueue("collect.statement", {"customer_id": customer_id}, key=key, deal_id=None,
               stream=f"customer:{customer_id}")
    tx.record("statement.requested", deal_id=None, customer_id=customer_id, actor=actor)
    return Done.ACTED


def _set_license(tx: Tx, license_id: int, status: LicenseStatus, *, reason: str, actor: str) -> Done:
    license = tx.get(License, license_id)
    if license.status is status:
        return Done.ALREADY
    if license.status is LicenseStatus.REVOKED:
        raise InvalidInput(f"license {license_id} is revoked; it cannot be {status.value} again")
    if not reason.strip():
        raise InvalidInput("say why, for the customer's timeline")
    license.status, license.status_changed_at = status, tx.now
    verb = "suspended" if status is LicenseStatus.SUSPENDED else "reinstated"
    uid = _note(tx, license.deal_id, license.customer_id, f"license.{verb}",
                f"License {license.product} × {license.seats} {verb} by {actor}: {reason}",
                actor=actor, product=license.product, reason=reason)
    # Keyed by the change's own event: each suspension or reinstatement is provisioned once.
    tx.enqueue("license.provision", {"deal_id": license.deal_id, "product": license.product,
                                     "status": status.value},
               key=f"license.provision:{license.deal_id}:{license.product}:{uid}", deal_id=license.deal_id)
    return Done.ACTED


def _invoice(tx: Tx, number: str) -> Invoice:
    invoice = tx.session.scalar(select(Invoice).where(Invoice.number == number).with_for_update())
    if invoice is None:
        raise NotFound("invoice", number)
    return invoice


def _already_requested(tx: Tx, key: str) -> bool:
    return tx.session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)) is not None


def _note(tx: Tx, deal_id: int | None, customer_id: int, kind: str, text: str, **data: object) -> str:
    """On the deal's timeline (and its thread) when there is a deal; else the customer's."""
    if deal_id is not None:
        return announce(tx, tx.get(Deal, deal_id, lock=False), kind, text, **data)  # type: ignore[arg-type]
    return tx.record(kind, deal_id=None, customer_id=customer_id, **data)  # type: ignore[arg-type]
