"""A customer's "we paid" email (intent payment_sent), after flows.mail recorded the
claim for finance: when it comes from the expected, authenticated contact (checked
before this is called) and names one of the deal's open invoices together with that
invoice's exact open balance, it is billing-money's remittance step
(flows.collections.record_payment_claim: a bank-transfer payment, keyed by the
email's Message-ID). Anything less certain stays a claim for finance to confirm."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import select

from flows.billing import Payment
from flows.invoices import Invoice, InvoiceStatus
from flows.ledger import Tx
from flows.money import exponent

if TYPE_CHECKING:
    from flows.mail import InboundFacts, InboundMail, PaymentClaim


def _written_forms(minor: int, currency: str) -> set[str]:
    """1234.56 as customers write it: 1234.56, 1,234.56, 1.234,56, 1 234,56, 1234,56."""
    digits = exponent(currency)
    whole, cents = divmod(minor, 10 ** digits) if digits else (minor, 0)
    grouped = f"{whole:,}"
    forms = set()
    for thousands in ("", ",", ".", " ", "\xa0"):
        body = grouped.replace(",", thousands)
        if not digits:
            forms.add(body)
            continue
        for point in (".", ","):
            if point == thousands:
                continue
            forms.add(f"{body}{point}{cents:0{digits}d}")
    return forms


def names_amount(text: str, minor: int, currency: str) -> bool:
    numbers = set(re.findall(r"\d[\d.,\s\xa0]*\d|\d", text))
    numbers |= {n.strip() for n in numbers}
    return bool(numbers & _written_forms(minor, currency))


def apply_remittance(tx: Tx, mail: InboundMail, claim: PaymentClaim, facts: InboundFacts) -> str | None:
    """Returns the invoice number recorded as paid, or None (the claim waits for finance)."""
    from flows.collections import record_payment_claim

    wanted = {n.upper() for n in facts.numbers}
    invoices = [i for i in tx.session.scalars(select(Invoice).where(
        Invoice.deal_id == claim.deal_id, Invoice.status == InvoiceStatus.ISSUED).order_by(Invoice.id))
        if i.balance > 0 and (i.number or "").upper() in wanted]
    matches = [i for i in invoices if names_amount(facts.text, i.balance, i.currency)]
    if len(matches) != 1:
        return None
    invoice = matches[0]
    reference = f"remittance:{mail.message_id}"
    if tx.session.scalar(select(Payment.id).where(Payment.reference == reference)) is not None:
        return None
    record_payment_claim(tx, invoice_number=invoice.number or "", amount=invoice.balance,
                         sender=claim.from_address, reference=reference, message_id=mail.message_id)
    claim.confirmed = 1
    return invoice.number
