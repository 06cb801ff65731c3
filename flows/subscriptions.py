"""Changing a running subscription: seats mid-period (prorated), cancellation at the
period end or at once, resuming a parked one. Each is idempotent by its request key.

Proration: the seat difference × unit price × (days left in the current period ÷ days
in the period), where "days left" counts from today (in the company's time zone) to the
period end. Rounded once, to the minor unit, half away from zero (Decimal ROUND_HALF_UP).
More seats: that amount is invoiced at once (its own invoice, charged like any other).
Fewer seats: it is kept as a credit and taken off the next period's invoice (never
more than that invoice; the rest carries over). Immediate cancellation refunds nothing:
the unused part is recorded on the timeline, and finance decides."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from flows.billing import Subscription, SubscriptionChange, SubscriptionPeriod, SubscriptionStatus
from flows.deals import Deal
from flows.errors import InvalidInput
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus, invoice_delivery
from flows.ledger import Tx
from flows.licenses import License, LicenseStatus
from flows.money import Money, check_quantity, round_half_up
from flows.parties import ContactRole
from flows.steps import Done, _finalize, announce, today


def prorate(unit_amount: int, seats_delta: Decimal, start: date, end: date, on: date) -> int:
    """The prorated amount (minor units, signed) of `seats_delta` seats from `on` to `end`."""
    total = (end - start).days
    left = max(0, min(total, (end - on).days))
    return round_half_up(Decimal(unit_amount) * seats_delta * left / total)


def current_period(tx: Tx, subscription: Subscription) -> SubscriptionPeriod | None:
    day = today(tx)
    return tx.session.scalar(select(SubscriptionPeriod).where(
        SubscriptionPeriod.subscription_id == subscription.id, SubscriptionPeriod.start <= day,
        SubscriptionPeriod.end > day).order_by(SubscriptionPeriod.index.desc()).limit(1))


def change_seats(tx: Tx, subscription_id: int, *, seats: Decimal | int, actor: str, request_key: str) -> Done:
    key = f"seats:{subscription_id}:{request_key}"
    if tx.session.scalar(select(SubscriptionChange.id).where(SubscriptionChange.request_key == key)):
        return Done.ALREADY
    subscription = tx.get(Subscription, subscription_id)
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PARKED):
        raise InvalidInput(f"subscription {subscription_id} is {subscription.status.value}; seats cannot change")
    new = check_quantity(Decimal(seats))
    if new <= 0 or new != new.to_integral_value():
        raise InvalidInput("seats must be a whole number of at least 1 (cancel the subscription to end it)")
    old = subscription.quantity
    if new == old:
        raise InvalidInput(f"subscription {subscription_id} already has {old} seats")
    period, day = current_period(tx, subscription), today(tx)
    amount = prorate(subscription.unit_amount, new - old, period.start, period.end, day) if period else 0
    deal = tx.get(Deal, subscription.deal_id, lock=False)
    change = SubscriptionChange(subscription_id=subscription.id, request_key=key, kind="seats", old_quantity=old,
                                new_quantity=new, effective_on=day, prorated=amount, actor=actor, created_at=tx.now)
    money = Money(abs(amount), subscription.currency)
    if amount > 0 and period is not None:
        invoice = _proration_invoice(tx, subscription, deal, key, new - old, amount, day, period.end)
        change.invoice_id = invoice.id
        detail = f"{money} for the {(period.end - day).days} days left invoiced as {invoice.number}"
    elif amount < 0:
        subscription.credit += -amount
        detail = f"{money} credited on the next invoice"
    else:
        detail = "nothing to prorate"
    subscription.quantity = new
    tx.session.add(change)
    announce(tx, deal, "subscription.seats_changed",
             f"Seats on subscription {subscription.id} changed from {old} to {new} by {actor}: {detail}",
             actor=actor, subscription=subscription.id, old=str(old), new=str(new), prorated=amount)
    _reprovision(tx, subscription, seats=int(new), key=key)
    return Done.ACTED


def cancel_subscription(tx: Tx, subscription_id: int, *, at_period_end: bool, reason: str, actor: str) -> Done:
    subscription = tx.get(Subscription, subscription_id)
    if subscription.status is SubscriptionStatus.CANCELLED:
        return Done.ALREADY
    if subscription.status is SubscriptionStatus.CANCELLING and at_period_end:
        return Done.ALREADY
    if not reason.strip():
        raise InvalidInput("say why the subscription is cancelled, for the customer's timeline")
    deal, day = tx.get(Deal, subscription.deal_id, lock=False), today(tx)
    period = current_period(tx, subscription)
    if at_period_end:
        ends_on = subscription.next_start or (period.end if period else day)
        subscription.status, subscription.ends_on = SubscriptionStatus.CANCELLING, ends_on
        text = f"Subscription {subscription.id} cancelled by {actor} at the period end, {ends_on}: {reason}"
        unused = 0
    else:
        unused = (prorate(subscription.unit_amount, subscription.quantity, period.start, period.end, day)
                  if period else 0)
        subscription.status, subscription.ends_on, subscription.next_start = SubscriptionStatus.CANCELLED, day, None
        text = (f"Subscription {subscription.id} cancelled by {actor} with immediate effect: {reason} "
                f"(unused {Money(unused, subscription.currency)} not refunded automatically)")
    tx.session.add(SubscriptionChange(
        subscription_id=subscription.id, request_key=f"cancel:{subscription.id}:{'end' if at_period_end else 'now'}",
        kind="cancel_at_period_end" if at_period_end else "cancel_now", old_quantity=subscription.quantity,
        new_quantity=Decimal(0), effective_on=subscription.ends_on, prorated=-unused, actor=actor,
        created_at=tx.now))
    announce(tx, deal, "subscription.cancelled", text, actor=actor, subscription=subscription.id,
             ends_on=subscription.ends_on.isoformat(), immediately=not at_period_end, reason=reason, unused=unused)
    return Done.ACTED


def resume_subscription(tx: Tx, subscription_id: int, *, actor: str, reason: str) -> Done:
    """A human looked at a parked subscription: billing goes on from its next period."""
    subscription = tx.get(Subscription, subscription_id)
    if subscription.status is not SubscriptionStatus.PARKED:
        return Done.ALREADY
    subscription.status, subscription.billed_today = SubscriptionStatus.ACTIVE, 0
    announce(tx, tx.get(Deal, subscription.deal_id, lock=False), "subscription.resumed",
             f"Subscription {subscription.id} resumed by {actor}: {reason}", actor=actor,
             subscription=subscription.id, reason=reason)
    return Done.ACTED


def _proration_invoice(tx: Tx, subscription: Subscription, deal: Deal, key: str, delta: Decimal, amount: int,
                       day: date, end: date) -> Invoice:
    invoice = Invoice(deal_id=deal.id, customer_id=subscription.customer_id, purpose_key=key,
                      status=InvoiceStatus.DRAFT, currency=subscription.currency, net=0, tax=0, amount_paid=0,
                      payment_terms_days=subscription.payment_terms_days, created_at=tx.now)
    invoice.lines.append(InvoiceLine(
        position=1, sku_id=subscription.sku_id, description=f"{subscription.description}: +{delta} prorated "
        f"{day} to {end}", quantity=delta, unit_amount=subscription.unit_amount,
        tax_rate_bp=subscription.tax_rate_bp, net=amount, period_start=day, period_end=end))
    tx.session.add(invoice)
    _finalize(tx, invoice)
    tx.session.flush()
    customer = deal.customer
    billing = customer.contact(ContactRole.BILLING)
    tx.enqueue("invoice.deliver", invoice_delivery(invoice.id, invoice.number, customer=customer.name,
                                                   language=customer.language, to=billing.email if billing else None),
               key=f"invoice.deliver:{invoice.number}", deal_id=deal.id)
    tx.enqueue("payment.collect", {"invoice": invoice.number, "invoice_id": invoice.id},
               key=f"payment.collect:{invoice.number}", deal_id=deal.id)
    return invoice


def _reprovision(tx: Tx, subscription: Subscription, *, seats: int, key: str) -> None:
    license = tx.session.scalar(select(License).where(License.deal_id == subscription.deal_id,
                                                      License.sku_id == subscription.sku_id).with_for_update())
    if license is None or license.status is LicenseStatus.REVOKED:
        return
    license.seats = seats
    tx.enqueue("license.provision", {"deal_id": license.deal_id, "product": license.product,
                                     "status": license.status.value, "seats": seats},
               key=f"license.provision:{license.deal_id}:{license.product}:{key}", deal_id=license.deal_id)
