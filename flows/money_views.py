"""Read-side questions about money that the gap rules and the digest ask (no changes).
Each returns plain rows; the gap rules decide how to word them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.billing import Charge, ChargeStatus
from flows.charges import ChargePlan, PlanStatus
from flows.collections import CollectionsPolicy, PolicySuspension
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License, LicenseStatus


@dataclass(frozen=True)
class MoneyGap:
    kind: str
    customer_id: int
    invoice: str | None
    detail: str


def charges_given_up(session: Session) -> list[MoneyGap]:
    """Open invoices whose card charging stopped: retries exhausted, or a hard decline."""
    rows = session.execute(select(ChargePlan, Invoice).join(Invoice, Invoice.id == ChargePlan.invoice_id).where(
        ChargePlan.status.in_([PlanStatus.EXHAUSTED, PlanStatus.HARD_DECLINED]),
        Invoice.status == InvoiceStatus.ISSUED)).all()
    return [MoneyGap(f"charge.{plan.status.value}", plan.customer_id, invoice.number,
                     f"{plan.attempts} attempt(s), last: {plan.last_code}") for plan, invoice in rows]


def charges_unknown_since(session: Session, now: datetime, older_than: timedelta = timedelta(hours=1)) -> list[MoneyGap]:
    rows = session.execute(select(Charge, Invoice).join(Invoice, Invoice.id == Charge.invoice_id).where(
        Charge.status == ChargeStatus.UNKNOWN, Charge.created_at < now - older_than)).all()
    return [MoneyGap("charge.unknown", invoice.customer_id, invoice.number,
                     f"attempt {charge.attempt} unknown since {charge.created_at:%Y-%m-%d %H:%M} UTC")
            for charge, invoice in rows]


def overdue_with_active_license(session: Session, as_of: date, policy: CollectionsPolicy) -> list[MoneyGap]:
    """Customers past the suspension policy whose licenses are still active."""
    gaps = []
    totals: dict[tuple[int, str], tuple[int, int]] = {}
    for invoice in session.scalars(select(Invoice).where(Invoice.status == InvoiceStatus.ISSUED,
                                                         Invoice.due_on < as_of)):
        if invoice.balance > 0 and invoice.due_on is not None:
            total, oldest = totals.get((invoice.customer_id, invoice.currency), (0, 0))
            totals[(invoice.customer_id, invoice.currency)] = (total + invoice.balance,
                                                                max(oldest, (as_of - invoice.due_on).days))
    for (customer_id, currency), (amount, oldest) in sorted(totals.items()):
        if not policy.past_suspension(currency, amount, oldest):
            continue
        active = session.scalars(select(License.id).where(License.customer_id == customer_id,
                                                          License.status == LicenseStatus.ACTIVE)).all()
        if active:
            gaps.append(MoneyGap("collections.overdue_license_active", customer_id, None,
                                 f"{amount} {currency} minor units overdue, oldest {oldest} days; "
                                 f"{len(active)} license(s) active"))
    return gaps


def suspended_although_paid(session: Session, as_of: date) -> list[MoneyGap]:
    """Licenses the policy suspended whose customer owes nothing overdue in that currency."""
    gaps = []
    for held in session.scalars(select(PolicySuspension).where(PolicySuspension.reinstated_at.is_(None))):
        owed = [i for i in session.scalars(select(Invoice).where(
            Invoice.customer_id == held.customer_id, Invoice.currency == held.currency,
            Invoice.status == InvoiceStatus.ISSUED, Invoice.due_on < as_of)) if i.balance > 0]
        license = session.get(License, held.license_id)
        if not owed and license is not None and license.status is LicenseStatus.SUSPENDED:
            gaps.append(MoneyGap("license.suspended_although_paid", held.customer_id, None,
                                 f"license {license.id} ({license.product}) suspended {held.suspended_at:%Y-%m-%d}"))
    return gaps
