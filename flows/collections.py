"""Collections, day by day from the beat: the reminder before the due date, the
overdue ladder (each rung once per invoice: a unique (invoice, rung) row), the
suspension policy and reinstatement on payment, optional late fees, receipts, the
payment link that settles all of a customer's open invoices in one payment, and the
remittance email a customer sends for a bank transfer.

Emails are `email.send` outbox rows shaped like the mailer's (`queue_money_email`);
attachments that must be rendered first are listed as {"render": …} entries."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from flows.base import Base, Id, enum_column
from flows.deals import Deal
from flows.errors import InvalidInput, NotFound
from flows.gateway import Checkout, CheckoutRequest, CheckoutState, PaymentGateway
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus
from flows.ledger import Ledger, Tx
from flows.licenses import License, LicenseStatus
from flows.money import Money
from flows.parties import ContactRole, Customer
from flows.steps import Done, announce, finalize_invoice, today

REMINDER = "reminder"


def overdue_rung(days: int) -> str:
    return f"overdue+{days}"


@dataclass(frozen=True)
class CollectionsPolicy:
    reminder_days_before: int = 5
    ladder: tuple[int, ...] = (1, 7, 14, 30)          # days past due
    suspend_over: dict[str, int] = field(default_factory=dict)  # currency -> minor units; empty: never suspend
    suspend_after_days: int = 30
    late_fee_percent: Decimal | None = None           # charged once per invoice at the first overdue rung
    bank_details: str = "Bank transfer details: ask finance"  # the manual gateway's account text

    def past_suspension(self, currency: str, amount: int, oldest_days: int) -> bool:
        """The suspension policy, in one place (flows/gaps.py overdue_license_active says it in SQL)."""
        limit = self.suspend_over.get(currency)
        return limit is not None and amount >= limit and oldest_days >= self.suspend_after_days


class DunningNotice(Base):
    """One row per (invoice, rung) sent — or skipped because a later rung was already due
    when collections first saw the invoice. The unique pair makes each rung at most once."""

    __tablename__ = "dunning_notices"
    __table_args__ = (UniqueConstraint("invoice_id", "rung"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    rung: Mapped[str] = mapped_column(String(16))      # "reminder", "overdue+1", "overdue+7", …
    as_of: Mapped[date]                               # the collections day that sent it
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class PolicySuspension(Base):
    """A license suspended by the overdue policy (not by hand), open until reinstated."""

    __tablename__ = "policy_suspensions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    overdue_amount: Mapped[int] = mapped_column(BigInteger)
    oldest_days: Mapped[int]
    suspended_at: Mapped[datetime]
    reinstated_at: Mapped[datetime | None] = mapped_column(index=True)


class LinkStatus(enum.Enum):
    OPEN = "open"
    PAID = "paid"
    SUPERSEDED = "superseded"  # a newer link for the same customer and currency replaced it


class PaymentLink(Base):
    __tablename__ = "payment_links"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)   # PL-<customer>-<n>: also the transfer reference
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    invoices: Mapped[list[Any]]                       # [{"invoice_id", "number", "amount"}] at creation
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_ref: Mapped[str | None] = mapped_column(String(120), unique=True)  # cs_…
    url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[LinkStatus] = mapped_column(enum_column(LinkStatus), index=True)
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    payment_ref: Mapped[str | None] = mapped_column(String(120))


# --- email ---------------------------------------------------------------------------------

def queue_money_email(tx: Tx, *, key: str, deal_id: int | None, to: list[str], template: str, locale: str,
                      subject: str, context: dict[str, Any], attachments: tuple[dict[str, Any], ...] = ()) -> None:
    """An `email.send` row in the mailer's payload shape (flows.mail.queue_email of the
    email issue takes the same arguments: at merge this body becomes a call to it)."""
    from flows.mail import queue_email  # recorded as our outbound mail: bounces and failures find their deal
    queue_email(tx, key=key, deal_id=deal_id, to=to, template=template, locale=locale, subject=subject,
                context=context, attachments=attachments, stream=None if deal_id else "email.money")


def _billing_address(customer: Customer) -> list[str]:
    contact = customer.contact(ContactRole.BILLING) or customer.contact(ContactRole.SIGNER)
    return [contact.email] if contact else []


# --- payments: receipt and reinstatement -----------------------------------------------------

def payment_settled(tx: Tx, paid: list[tuple[Invoice, int]], *, currency: str, reference: str, method: str) -> None:
    """Every successful payment ends here (bank transfer, card, payment link): ONE receipt
    for the payment, whatever number of invoices it paid, and policy suspensions lifted
    once the customer owes nothing overdue in that currency."""
    if not paid:
        return
    customer = tx.get(Customer, paid[0][0].customer_id, lock=False)
    total = sum(amount for _, amount in paid)
    lines = [{"invoice": inv.number, "amount": amount, "balance": inv.balance,
              "status": inv.status.value} for inv, amount in paid]
    to = _billing_address(customer)
    if to:
        queue_money_email(tx, key=f"receipt:{reference}", deal_id=paid[0][0].deal_id, to=to, template="receipt",
                          locale=customer.language,
                          subject=f"Receipt: {Money(total, currency)} received",
                          context={"kind": "receipt", "customer": customer.name, "amount": total,
                                   "currency": currency, "method": method, "reference": reference,
                                   "received_at": tx.now.isoformat(), "invoices": lines})
    _reinstate_if_clear(tx, customer.id, currency)


def _reinstate_if_clear(tx: Tx, customer_id: int, currency: str) -> None:
    from flows.finance import reinstate_license

    if _overdue(tx, customer_id, today(tx)).get(currency, (0, 0))[0] > 0:
        return
    for held in tx.session.scalars(select(PolicySuspension).where(
            PolicySuspension.customer_id == customer_id, PolicySuspension.currency == currency,
            PolicySuspension.reinstated_at.is_(None)).with_for_update()):
        held.reinstated_at = tx.now
        license = tx.get(License, held.license_id)
        if license.status is LicenseStatus.SUSPENDED:
            reinstate_license(tx, license.id, reason=f"overdue {currency} balance paid", actor="closeloop")
        tx.record("collections.reinstated", deal_id=license.deal_id, customer_id=customer_id,
                  license_id=license.id, product=license.product, currency=currency)


def _overdue(tx: Tx, customer_id: int, as_of: date) -> dict[str, tuple[int, int]]:
    """currency -> (overdue balance, days the oldest overdue invoice is past due)."""
    result: dict[str, tuple[int, int]] = {}
    for invoice in tx.session.scalars(select(Invoice).where(
            Invoice.customer_id == customer_id, Invoice.status == InvoiceStatus.ISSUED, Invoice.due_on < as_of)):
        if invoice.balance <= 0:
            continue
        total, oldest = result.get(invoice.currency, (0, 0))
        result[invoice.currency] = (total + invoice.balance, max(oldest, (as_of - invoice.due_on).days))
    return result


# --- the daily tick ------------------------------------------------------------------------

def collections_tick(tx: Tx, policy: CollectionsPolicy, as_of: date | None = None) -> dict[str, int]:
    """Everything collections does for one day. Re-running a day sends nothing twice."""
    as_of = as_of or today(tx)
    counts = {"reminders": 0, "overdue": 0, "skipped": 0, "suspended": 0, "late_fees": 0}
    open_invoices = list(tx.session.scalars(select(Invoice).where(
        Invoice.status == InvoiceStatus.ISSUED, Invoice.due_on.is_not(None)).order_by(Invoice.id)))
    sent = {(n.invoice_id, n.rung) for n in tx.session.scalars(select(DunningNotice).where(
        DunningNotice.invoice_id.in_([i.id for i in open_invoices])))} if open_invoices else set()
    for invoice in open_invoices:
        if invoice.balance <= 0 or invoice.due_on is None:
            continue
        days_late = (as_of - invoice.due_on).days
        if -policy.reminder_days_before <= days_late < 0 and (invoice.id, REMINDER) not in sent:
            _notice(tx, invoice, REMINDER, as_of, policy, days_late)
            counts["reminders"] += 1
        reached = [d for d in policy.ladder if days_late >= d]
        if not reached:
            continue
        top = overdue_rung(reached[-1])
        if (invoice.id, top) in sent:
            continue
        for lower in reached[:-1]:  # first seen late: the earlier rungs are not sent any more
            if (invoice.id, overdue_rung(lower)) not in sent:
                tx.session.add(DunningNotice(invoice_id=invoice.id, customer_id=invoice.customer_id,
                                             rung=overdue_rung(lower), as_of=as_of, skipped=True, created_at=tx.now))
                counts["skipped"] += 1
        if policy.late_fee_percent and _late_fee(tx, invoice, policy.late_fee_percent):
            counts["late_fees"] += 1
        _notice(tx, invoice, top, as_of, policy, days_late)
        counts["overdue"] += 1
    tx.session.flush()
    if policy.suspend_over:
        for customer_id in sorted({i.customer_id for i in open_invoices}):
            counts["suspended"] += _apply_suspension_policy(tx, customer_id, as_of, policy)
    return counts


def _notice(tx: Tx, invoice: Invoice, rung: str, as_of: date, policy: CollectionsPolicy, days_late: int) -> None:
    customer = tx.get(Customer, invoice.customer_id, lock=False)
    tx.session.add(DunningNotice(invoice_id=invoice.id, customer_id=customer.id, rung=rung, as_of=as_of,
                                 created_at=tx.now))
    unpaid = list(tx.session.scalars(select(Invoice).where(
        Invoice.customer_id == customer.id, Invoice.status == InvoiceStatus.ISSUED).order_by(Invoice.id)))
    unpaid = [i for i in unpaid if i.balance > 0]
    balance = Money(invoice.balance, invoice.currency)
    context = {"kind": rung, "customer": customer.name, "invoice": invoice.number, "balance": invoice.balance,
               "currency": invoice.currency, "due_on": invoice.due_on.isoformat() if invoice.due_on else None,
               "days_late": max(days_late, 0), "days_left": max(-days_late, 0), "as_of": as_of.isoformat(),
               "open_invoices": [{"invoice": i.number, "balance": i.balance, "currency": i.currency,
                                  "due_on": i.due_on.isoformat() if i.due_on else None} for i in unpaid],
               "bank_details": policy.bank_details}
    attachments: tuple[dict[str, Any], ...] = ()
    if rung == REMINDER:
        template, subject = "payment_reminder", f"{invoice.number}: {balance} due on {invoice.due_on}"
    else:
        template, subject = "payment_overdue", f"{invoice.number}: {balance} overdue since {invoice.due_on}"
        # Rendered by the documents issue before sending: the aging report and every unpaid invoice.
        attachments = ({"render": "aging_report", "customer_id": customer.id, "as_of": as_of.isoformat(),
                        "filename": f"aging-{as_of.isoformat()}.pdf", "content_type": "application/pdf"},
                       *({"render": "invoice", "invoice": i.number, "filename": f"{i.number}.pdf",
                          "content_type": "application/pdf"} for i in unpaid))
    to = _billing_address(customer)
    if to:
        queue_money_email(tx, key=f"dunning:{invoice.id}:{rung}", deal_id=invoice.deal_id, to=to, template=template,
                          locale=customer.language, subject=subject, context=context, attachments=attachments)
    kind = "collections.reminder_sent" if rung == REMINDER else "collections.overdue_sent"
    tx.record(kind, deal_id=invoice.deal_id, customer_id=customer.id, invoice=invoice.number, rung=rung,
              balance=invoice.balance, to=to, attachments=[a["filename"] for a in attachments])


def _late_fee(tx: Tx, invoice: Invoice, percent: Decimal) -> bool:
    """A late-fee invoice, once per invoice (its purpose key), at the first overdue rung."""
    key = f"late_fee:{invoice.id}"
    if tx.session.scalar(select(Invoice.id).where(Invoice.purpose_key == key)) is not None:
        return False
    amount = int((Decimal(invoice.balance) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if amount <= 0:
        return False
    fee = Invoice(deal_id=invoice.deal_id, customer_id=invoice.customer_id, purpose_key=key,
                  status=InvoiceStatus.DRAFT, currency=invoice.currency, net=0, tax=0, amount_paid=0,
                  payment_terms_days=invoice.payment_terms_days, created_at=tx.now)
    fee.lines.append(InvoiceLine(position=1, description=f"Late fee {percent} % on {invoice.number}",
                                 quantity=Decimal(1), unit_amount=amount, tax_rate_bp=0, net=amount))
    tx.session.add(fee)
    tx.session.flush()
    finalize_invoice(tx, fee.id)
    tx.enqueue("invoice.deliver", {"invoice": fee.number}, key=f"invoice.deliver:{fee.number}",
               deal_id=fee.deal_id)
    tx.record("collections.late_fee", deal_id=invoice.deal_id, customer_id=invoice.customer_id,
              invoice=invoice.number, fee_invoice=fee.number, amount=amount)
    return True


def _apply_suspension_policy(tx: Tx, customer_id: int, as_of: date, policy: CollectionsPolicy) -> int:
    from flows.finance import suspend_license

    suspended = 0
    for currency, (amount, oldest) in sorted(_overdue(tx, customer_id, as_of).items()):
        if not policy.past_suspension(currency, amount, oldest):
            continue
        limit = policy.suspend_over[currency]
        reason = (f"overdue {Money(amount, currency)} (policy: {Money(limit, currency)}), oldest invoice "
                  f"{oldest} days past due (policy: {policy.suspend_after_days})")
        for license in tx.session.scalars(select(License).where(
                License.customer_id == customer_id, License.status == LicenseStatus.ACTIVE).order_by(License.id)):
            suspend_license(tx, license.id, reason=reason, actor="closeloop")
            tx.session.add(PolicySuspension(license_id=license.id, customer_id=customer_id, currency=currency,
                                            overdue_amount=amount, oldest_days=oldest, suspended_at=tx.now))
            # For the digest (customer timeline); the deal thread got the suspension itself.
            tx.record("collections.suspended", deal_id=license.deal_id, customer_id=customer_id,
                      license_id=license.id, product=license.product, currency=currency, overdue=amount,
                      oldest_days=oldest)
            suspended += 1
    return suspended


# --- remittance email (bank transfer) ---------------------------------------------------------

def record_payment_claim(tx: Tx, *, invoice_number: str, amount: int, sender: str, reference: str | None,
                         message_id: str) -> Done:
    """A customer's remittance email ("we paid INV-… today, ref …") for the manual gateway.
    Recorded as a payment only from a known contact of the invoice's customer; the bank
    reference, or else the email's Message-ID, keeps it from being counted twice."""
    from flows.finance import record_payment

    invoice = tx.session.scalar(select(Invoice).where(Invoice.number == invoice_number))
    if invoice is None:
        raise NotFound("invoice", invoice_number)
    customer = tx.get(Customer, invoice.customer_id, lock=False)
    if sender.strip().lower() not in {c.email.lower() for c in customer.contacts}:
        raise InvalidInput(f"{sender} is not a contact of {customer.name}; finance must confirm this payment")
    return record_payment(tx, invoice_number=invoice_number, amount=amount, method="bank_transfer",
                          reference=reference or f"remittance:{message_id}", actor=f"remittance email from {sender}")


# --- the payment link -------------------------------------------------------------------------

def create_payment_link(tx: Tx, customer_id: int, currency: str, *, gateway: str) -> int:
    """One link for everything the customer owes in a currency (overdue or not yet due).
    The same open invoices and balances give the same link; a change replaces it."""
    customer = tx.get(Customer, customer_id)
    invoices = [i for i in tx.session.scalars(select(Invoice).where(
        Invoice.customer_id == customer_id, Invoice.currency == currency,
        Invoice.status == InvoiceStatus.ISSUED).order_by(Invoice.id)) if i.balance > 0]
    if not invoices:
        raise InvalidInput(f"{customer.name} owes nothing in {currency}")
    snapshot = [{"invoice_id": i.id, "number": i.number, "amount": i.balance} for i in invoices]
    current = tx.session.scalar(select(PaymentLink).where(
        PaymentLink.customer_id == customer_id, PaymentLink.currency == currency,
        PaymentLink.status == LinkStatus.OPEN))
    if current is not None:
        if current.invoices == snapshot and current.gateway == gateway:
            return current.id
        current.status = LinkStatus.SUPERSEDED
    count = tx.session.scalar(select(func.count()).select_from(PaymentLink).where(
        PaymentLink.customer_id == customer_id)) or 0
    link = PaymentLink(reference=f"PL-{customer_id}-{count + 1}", customer_id=customer_id, currency=currency,
                       amount=sum(s["amount"] for s in snapshot), invoices=snapshot, gateway=gateway,
                       status=LinkStatus.OPEN, created_at=tx.now)
    tx.session.add(link)
    tx.session.flush()
    tx.record("payment_link.created", deal_id=None, customer_id=customer_id, reference=link.reference,
              amount=link.amount, currency=currency, invoices=[s["number"] for s in snapshot])
    return link.id


def checkout_request(tx: Tx, link_id: int, gateway: str) -> CheckoutRequest | None:
    """None when the link already has its checkout (a re-run)."""
    from flows.charges import GatewayAccount

    link = tx.get(PaymentLink, link_id, lock=False)
    if link.url is not None or link.gateway_ref is not None:
        return None
    account = tx.session.scalar(select(GatewayAccount).where(GatewayAccount.customer_id == link.customer_id,
                                                             GatewayAccount.gateway == gateway))
    numbers = tuple(s["number"] for s in link.invoices)
    return CheckoutRequest(link.id, link.reference, account.customer_ref if account else None, link.amount,
                           link.currency, f"Invoices {', '.join(numbers)}", numbers)


def record_checkout(tx: Tx, link_id: int, checkout: Checkout) -> Done:
    """Keep the checkout URL (or the bank details) and email it to the customer."""
    link = tx.get(PaymentLink, link_id)
    if link.url is not None or link.gateway_ref is not None or link.status is not LinkStatus.OPEN:
        return Done.ALREADY
    link.gateway_ref, link.url = checkout.gateway_ref, checkout.url or ""
    customer = tx.get(Customer, link.customer_id, lock=False)
    to = _billing_address(customer)
    if to:
        queue_money_email(tx, key=f"payment_link:{link.reference}", deal_id=None, to=to, template="payment_link",
                          locale=customer.language,
                          subject=f"Pay {Money(link.amount, link.currency)} for {len(link.invoices)} invoice(s)",
                          context={"kind": "payment_link", "customer": customer.name, "url": checkout.url,
                                   "instructions": checkout.instructions, "reference": link.reference,
                                   "amount": link.amount, "currency": link.currency, "invoices": link.invoices})
    return Done.ACTED


def open_payment_link(ledger: Ledger, gateway: PaymentGateway, customer_id: int, currency: str) -> PaymentLink:
    link_id = ledger.run(create_payment_link, customer_id, currency, gateway=gateway.name)
    request = ledger.run(checkout_request, link_id, gateway.name)
    if request is not None:
        ledger.run(record_checkout, link_id, gateway.checkout(request))
    return ledger.read(lambda s: s.get(PaymentLink, link_id))


def settle_payment_link(tx: Tx, *, amount: int, payment_ref: str, link_reference: str | None = None,
                        gateway_ref: str | None = None, actor: str = "closeloop") -> Done:
    """The link was paid (Checkout completed, or the transfer with its reference arrived):
    every invoice it covers gets its payment, and the customer ONE receipt."""
    query = select(PaymentLink).with_for_update()
    query = query.where(PaymentLink.gateway_ref == gateway_ref) if gateway_ref else \
        query.where(PaymentLink.reference == link_reference)
    link = tx.session.scalar(query)
    if link is None:
        raise NotFound("payment link", gateway_ref or link_reference)
    if link.status is LinkStatus.PAID:
        return Done.ALREADY
    if type(amount) is not int or amount <= 0:
        raise InvalidInput("a payment is a positive amount")
    from flows.billing import Payment

    left, paid = amount, []
    for entry in link.invoices:
        invoice = tx.get(Invoice, int(entry["invoice_id"]))
        share = min(left, int(entry["amount"]), max(invoice.balance, 0))
        if share <= 0 or invoice.status is not InvoiceStatus.ISSUED:
            continue
        tx.session.add(Payment(invoice_id=invoice.id, amount=share, currency=link.currency,
                               method="card" if link.gateway_ref else "bank_transfer",
                               reference=f"{payment_ref}:{invoice.number}"[:120], received_at=tx.now,
                               recorded_by=f"payment link {link.reference} ({actor})"))
        invoice.amount_paid += share
        if invoice.balance == 0:
            invoice.status = InvoiceStatus.PAID
        left -= share
        paid.append((invoice, share))
        if invoice.deal_id is not None:
            announce(tx, tx.get(Deal, invoice.deal_id, lock=False), "payment.recorded",
                     f"Payment of {Money(share, link.currency)} on {invoice.number} through payment link "
                     f"{link.reference}" + (" — paid in full" if invoice.balance == 0 else ""),
                     actor=actor, invoice=invoice.number, amount=share, reference=link.reference)
    link.status, link.paid_at, link.payment_ref = LinkStatus.PAID, tx.now, payment_ref
    tx.record("payment_link.paid", deal_id=None, customer_id=link.customer_id, reference=link.reference,
              amount=amount, unapplied=left, invoices=[i.number for i, _ in paid])
    payment_settled(tx, paid, currency=link.currency, reference=payment_ref, method="payment link")
    return Done.ACTED


def checkout_paid(ledger: Ledger, state: CheckoutState) -> Done | None:
    if not state.paid:
        return None
    return ledger.run(settle_payment_link, amount=state.amount, payment_ref=state.payment_ref or state.gateway_ref,
                      gateway_ref=state.gateway_ref, actor="stripe checkout")
