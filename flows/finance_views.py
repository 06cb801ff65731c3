"""Read-side views for people: a deal with its amounts and timeline, a customer's
invoices and licenses, what a customer owes by age, the pipeline by stage, a rep's
open deals and the discounts waiting for a manager. Nothing here changes the ledger.

Every function takes a session and returns plain frozen dataclasses (no ORM objects:
the session is closed before anything is rendered). Lists come back as a `Page`, so a
caller can show a few at a time and say how many more there are; sums and counts are
computed by the database, never by looping over every row."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from flows.deals import HAPPY_PATH, Deal, Stage
from flows.errors import InvalidInput, NotFound
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License
from flows.money import Money
from flows.parties import Customer
from flows.queries import find_deal
from flows.quotes import Approval, Quote, QuoteVersion
from flows.timeline import Event

T = TypeVar("T")

# Stages where a deal still moves on its own or waits for someone: "open" for a rep.
OPEN_STAGES = tuple(s for s in HAPPY_PATH if s is not Stage.BILLING_ACTIVE)

NOT_DUE = "not due"
# label -> (fewest, most) days past due; None: no upper bound
AGING_BUCKETS: dict[str, tuple[int, int | None]] = {"0-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90),
                                                    "90+": (91, None)}


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    offset: int
    total: int

    @property
    def more(self) -> int:
        """How many come after this page."""
        return max(0, self.total - self.offset - len(self.items))


@dataclass(frozen=True)
class CustomerRef:
    id: int
    name: str
    country: str


@dataclass(frozen=True)
class InvoiceView:
    number: str
    status: InvoiceStatus
    customer_id: int
    customer: str
    deal: str | None             # "D-12", or None for an invoice of no deal
    gross: Money
    paid: Money
    balance: Money
    issued_at: datetime | None
    due_on: date | None
    days_overdue: int            # 0 unless issued, unpaid and past its due date

    @property
    def open(self) -> bool:
        return self.status is InvoiceStatus.ISSUED and self.balance.amount > 0


@dataclass(frozen=True)
class DealView:
    id: int
    reference: str
    customer_id: int
    customer: str
    stage: Stage
    owner: str
    quote: str
    version: int
    discount_bp: int
    approval: Approval
    net: Money                   # of the current quote version
    tax: Money
    amount: Money                # gross of the current quote version
    invoiced: Money              # gross of its issued (and paid) invoices
    paid: Money
    open_balance: Money
    invoices: tuple[tuple[str, InvoiceStatus], ...]  # (number, status) of its numbered invoices
    created_at: datetime
    stage_changed_at: datetime
    age_days: int
    days_in_stage: int


@dataclass(frozen=True)
class EventView:
    id: int
    occurred_at: datetime
    kind: str
    actor: str
    text: str


@dataclass(frozen=True)
class TimelinePage:
    deal_id: int
    events: tuple[EventView, ...]  # oldest first
    earlier: int | None            # id to pass as `before` for the events before these; None: none left
    total: int


@dataclass(frozen=True)
class LicenseView:
    id: int
    deal: str
    customer_id: int
    customer: str
    product: str
    seats: int
    features: tuple[str, ...]
    status: str                  # active, suspended, revoked
    valid_until: datetime | None
    status_changed_at: datetime


@dataclass(frozen=True)
class AgingBucket:
    label: str
    count: int
    totals: tuple[Money, ...]    # one per currency


@dataclass(frozen=True)
class Aging:
    buckets: tuple[AgingBucket, ...]  # NOT_DUE, then the AGING_BUCKETS in order
    invoices: Page[InvoiceView]       # the open ones, longest overdue first

    def bucket(self, label: str) -> AgingBucket:
        return next(b for b in self.buckets if b.label == label)

    @property
    def overdue(self) -> tuple[AgingBucket, ...]:
        return tuple(b for b in self.buckets if b.label != NOT_DUE)


@dataclass(frozen=True)
class StageRow:
    stage: Stage
    count: int
    totals: tuple[Money, ...]


@dataclass(frozen=True)
class PendingApproval:
    deal_id: int
    deal: str
    quote: str
    version: int
    customer: str
    owner: str
    discount_bp: int
    amount: Money
    waiting_days: int


# --- what a query names ------------------------------------------------------------------

def customers(session: Session) -> list[CustomerRef]:
    """Every customer's name, for matching what someone typed."""
    return [CustomerRef(id_, name, country) for id_, name, country in
            session.execute(select(Customer.id, Customer.name, Customer.country).order_by(Customer.name, Customer.id))]


def customer(session: Session, customer_id: int) -> CustomerRef:
    row = session.get(Customer, customer_id)
    if row is None:
        raise NotFound("customer", customer_id)
    return CustomerRef(row.id, row.name, row.country)


def invoice_number(session: Session, text: str) -> str | None:
    """The invoice number `text` is, exactly (any case), or None."""
    typed = text.strip()
    if not typed:
        return None
    return session.scalar(select(Invoice.number).where(Invoice.number.in_({typed, typed.upper()})).limit(1))


def deal_named(session: Session, text: str) -> int | None:
    """The deal a reference names (D-12, 12, a quote or an invoice number), or None."""
    try:
        return find_deal(session, text).id
    except (NotFound, InvalidInput):
        return None


def customer_of(session: Session, *, deal_id: int | None = None, invoice: str | None = None) -> int:
    if deal_id is not None:
        found = session.scalar(select(Deal.customer_id).where(Deal.id == deal_id))
        what, ref = "deal", f"D-{deal_id}"
    else:
        found = session.scalar(select(Invoice.customer_id).where(Invoice.number == invoice))
        what, ref = "invoice", invoice
    if found is None:
        raise NotFound(what, ref)
    return found


def deal_of_invoice(session: Session, number: str) -> int | None:
    return session.scalar(select(Invoice.deal_id).where(Invoice.number == number))


def deal_of_license(session: Session, license_id: int) -> int | None:
    return session.scalar(select(License.deal_id).where(License.id == license_id))


# --- deals -------------------------------------------------------------------------------

_DEAL_VIEW = (joinedload(Deal.customer, innerjoin=True), selectinload(Deal.invoices),
              joinedload(Deal.quote, innerjoin=True).selectinload(Quote.versions))


def deal(session: Session, deal_id: int, now: datetime) -> DealView:
    row = session.get(Deal, deal_id, options=_DEAL_VIEW)
    if row is None:
        raise NotFound("deal", f"D-{deal_id}")
    return _deal_view(row, now)


def deals_of_customer(session: Session, customer_id: int, now: datetime, *, offset: int = 0,
                      limit: int = 10) -> Page[DealView]:
    """A customer's deals, newest first."""
    where = Deal.customer_id == customer_id
    rows = session.scalars(select(Deal).options(*_DEAL_VIEW).where(where).order_by(Deal.id.desc())
                           .offset(offset).limit(limit))
    return Page(tuple(_deal_view(r, now) for r in rows), offset, _count(session, Deal.id, where))


def open_deals_of(session: Session, owner: str, now: datetime, *, limit: int = 20) -> Page[DealView]:
    """A rep's deals that have not reached billing (or ended), longest in their stage first."""
    where = (Deal.owner == owner) & Deal.stage.in_(OPEN_STAGES)
    rows = session.scalars(select(Deal).options(*_DEAL_VIEW).where(where)
                           .order_by(Deal.stage_changed_at, Deal.id).limit(limit))
    return Page(tuple(_deal_view(r, now) for r in rows), 0, _count(session, Deal.id, where))


def timeline_page(session: Session, deal_id: int, *, before: int | None = None, limit: int = 10) -> TimelinePage:
    """The last `limit` events of a deal's timeline (before event `before`, when given)."""
    currency = session.scalar(select(Deal.currency).where(Deal.id == deal_id))
    if currency is None:
        raise NotFound("deal", f"D-{deal_id}")
    where = Event.deal_id == deal_id
    query = select(Event).where(where)
    if before is not None:
        query = query.where(Event.id < before)
    rows = list(session.scalars(query.order_by(Event.id.desc()).limit(limit + 1)))
    shown = rows[:limit]
    events = tuple(EventView(e.id, e.occurred_at, e.kind, e.actor, describe(e.kind, e.data, currency))
                   for e in reversed(shown))
    earlier = shown[-1].id if len(rows) > limit else None
    return TimelinePage(deal_id, events, earlier, _count(session, Event.id, where))


def pipeline(session: Session) -> list[StageRow]:
    """Deals per stage of the happy path, with their amounts per currency."""
    counts: dict[Stage, int] = {}
    totals: dict[Stage, list[Money]] = {}
    rows = session.execute(select(Deal.stage, Deal.currency, func.count(Deal.id), func.sum(Deal.amount))
                           .where(Deal.stage.in_(HAPPY_PATH)).group_by(Deal.stage, Deal.currency)
                           .order_by(Deal.currency))
    for stage, currency, count, amount in rows:
        counts[stage] = counts.get(stage, 0) + count
        totals.setdefault(stage, []).append(Money(int(amount or 0), currency))
    return [StageRow(stage, counts.get(stage, 0), tuple(totals.get(stage, ()))) for stage in HAPPY_PATH]


def pending_approvals(session: Session, now: datetime, *, limit: int = 10) -> Page[PendingApproval]:
    """Quote discounts over the policy that a manager has not decided yet, oldest first."""
    where = ((QuoteVersion.approval == Approval.PENDING) & (QuoteVersion.version == Quote.current_version)
             & Deal.stage.in_((Stage.QUOTED,)))
    base = (select(QuoteVersion, Quote, Deal, Customer).join(Quote, QuoteVersion.quote_id == Quote.id)
            .join(Deal, Quote.deal_id == Deal.id).join(Customer, Deal.customer_id == Customer.id).where(where))
    items = tuple(
        PendingApproval(deal_row.id, deal_row.reference, quote.number, version.version, customer_row.name,
                        deal_row.owner, version.discount_bp, Money(version.gross, quote.currency),
                        _days(now, version.created_at))
        for version, quote, deal_row, customer_row in session.execute(
            base.order_by(QuoteVersion.created_at, QuoteVersion.id).limit(limit)))
    total = session.scalar(select(func.count()).select_from(base.with_only_columns(QuoteVersion.id).subquery()))
    return Page(items, 0, total or 0)


# --- invoices and licenses ---------------------------------------------------------------

def invoice(session: Session, number: str, today: date) -> InvoiceView:
    row = session.scalar(select(Invoice).where(Invoice.number == number))
    if row is None:
        raise NotFound("invoice", number)
    return _invoice_view(row, _names(session, [row.customer_id])[row.customer_id], today)


def invoices_of(session: Session, today: date, *, customer_id: int | None = None, deal_id: int | None = None,
                offset: int = 0, limit: int = 10) -> Page[InvoiceView]:
    """Numbered invoices of a customer or a deal, newest first."""
    where = Invoice.status != InvoiceStatus.DRAFT
    where &= (Invoice.customer_id == customer_id) if customer_id is not None else (Invoice.deal_id == deal_id)
    rows = list(session.scalars(select(Invoice).where(where).order_by(Invoice.id.desc())
                                .offset(offset).limit(limit)))
    names = _names(session, [r.customer_id for r in rows])
    return Page(tuple(_invoice_view(r, names[r.customer_id], today) for r in rows), offset,
                _count(session, Invoice.id, where))


def license(session: Session, license_id: int) -> LicenseView:
    row = session.get(License, license_id)
    if row is None:
        raise NotFound("license", license_id)
    return _license_view(row, _names(session, [row.customer_id])[row.customer_id])


def licenses_of(session: Session, *, customer_id: int | None = None, deal_id: int | None = None,
                offset: int = 0, limit: int = 10) -> Page[LicenseView]:
    where = (License.customer_id == customer_id) if customer_id is not None else (License.deal_id == deal_id)
    rows = list(session.scalars(select(License).where(where).order_by(License.id).offset(offset).limit(limit)))
    names = _names(session, [r.customer_id for r in rows])
    return Page(tuple(_license_view(r, names[r.customer_id]) for r in rows), offset,
                _count(session, License.id, where))


def aging(session: Session, today: date, *, customer_id: int | None = None, overdue_only: bool = False,
          offset: int = 0, limit: int = 15) -> Aging:
    """Open invoices by how long past due they are (of one customer, or of everyone),
    with count and balance per bucket and currency, and the longest overdue listed first."""
    balance = Invoice.net + Invoice.tax - Invoice.amount_paid
    where = (Invoice.status == InvoiceStatus.ISSUED) & (balance > 0)
    if customer_id is not None:
        where &= Invoice.customer_id == customer_id
    if overdue_only:
        where &= Invoice.due_on < today
    bucket = case((Invoice.due_on >= today, NOT_DUE),
                  *(((Invoice.due_on >= today - timedelta(days=most)), label)
                    for label, (_, most) in AGING_BUCKETS.items() if most is not None),
                  else_=list(AGING_BUCKETS)[-1])
    each = select(bucket.label("bucket"), Invoice.currency.label("currency"), balance.label("balance")) \
        .where(where).subquery()
    counts: dict[str, int] = {}
    totals: dict[str, list[Money]] = {}
    for label, currency, count, amount in session.execute(
            select(each.c.bucket, each.c.currency, func.count(), func.sum(each.c.balance))
            .group_by(each.c.bucket, each.c.currency).order_by(each.c.currency)):
        counts[label] = counts.get(label, 0) + count
        totals.setdefault(label, []).append(Money(int(amount or 0), currency))
    labels = ([] if overdue_only else [NOT_DUE]) + list(AGING_BUCKETS)
    buckets = tuple(AgingBucket(label, counts.get(label, 0), tuple(totals.get(label, ()))) for label in labels)
    rows = list(session.scalars(select(Invoice).where(where).order_by(Invoice.due_on, Invoice.id)
                                .offset(offset).limit(limit)))
    names = _names(session, [r.customer_id for r in rows])
    page = Page(tuple(_invoice_view(r, names[r.customer_id], today) for r in rows), offset,
                sum(counts.values()))
    return Aging(buckets, page)


# --- what happened, in words -------------------------------------------------------------

def describe(kind: str, data: Mapping[str, Any], currency: str | None = None) -> str:
    """One line for a timeline event, from its kind and data (amounts in the deal's currency)."""
    values = _Fill(data)
    for field in ("gross", "amount"):
        if currency and type(data.get(field)) is int:
            values[field] = str(Money(data[field], currency))
    if isinstance(data.get("quantity"), str):
        try:
            values["quantity"] = format(Decimal(data["quantity"]).normalize(), "f")
        except InvalidOperation:
            pass
    if "discount_bp" in data and type(data["discount_bp"]) is int:
        values["discount"] = f"{data['discount_bp'] / 100:g} %"
    template = EVENT_TEXT.get(kind)
    if template is not None:
        return template.format_map(values)
    shown = ", ".join(f"{k} {v}" for k, v in data.items() if isinstance(v, str | int) and not isinstance(v, bool))
    return kind.replace(".", " ").replace("_", " ").capitalize() + (f" ({shown})" if shown else "")


class _Fill(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


# --- helpers -----------------------------------------------------------------------------

def _count(session: Session, column: Any, where: Any) -> int:
    return session.scalar(select(func.count(column)).where(where)) or 0


def _names(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {id_: name for id_, name in session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(set(ids))))}


def _days(now: datetime, then: datetime) -> int:
    return max(0, (now - then).days)


def _deal_view(row: Deal, now: datetime) -> DealView:
    version = row.quote.current
    numbered = [i for i in row.invoices if i.status in (InvoiceStatus.ISSUED, InvoiceStatus.PAID)]
    invoiced = sum(i.gross for i in numbered)
    paid = sum(i.amount_paid for i in numbered)
    open_balance = sum(i.balance for i in numbered if i.status is InvoiceStatus.ISSUED)
    currency = row.currency
    return DealView(
        id=row.id, reference=row.reference, customer_id=row.customer_id, customer=row.customer.name,
        stage=row.stage, owner=row.owner, quote=row.quote.number, version=version.version,
        discount_bp=version.discount_bp, approval=version.approval, net=Money(version.net, currency),
        tax=Money(version.tax, currency), amount=Money(row.amount, currency), invoiced=Money(invoiced, currency),
        paid=Money(paid, currency), open_balance=Money(open_balance, currency),
        invoices=tuple((i.number or "draft", i.status) for i in row.invoices if i.number),
        created_at=row.created_at, stage_changed_at=row.stage_changed_at,
        age_days=_days(now, row.created_at), days_in_stage=_days(now, row.stage_changed_at))


def _invoice_view(row: Invoice, customer_name: str, today: date) -> InvoiceView:
    overdue = 0
    if row.status is InvoiceStatus.ISSUED and row.due_on is not None and row.due_on < today and row.balance > 0:
        overdue = (today - row.due_on).days
    return InvoiceView(
        number=row.number or "draft", status=row.status, customer_id=row.customer_id, customer=customer_name,
        deal=f"D-{row.deal_id}" if row.deal_id is not None else None, gross=Money(row.gross, row.currency),
        paid=Money(row.amount_paid, row.currency), balance=Money(row.balance, row.currency),
        issued_at=row.issued_at, due_on=row.due_on, days_overdue=overdue)


def _license_view(row: License, customer_name: str) -> LicenseView:
    return LicenseView(id=row.id, deal=f"D-{row.deal_id}", customer_id=row.customer_id, customer=customer_name,
                       product=row.product, seats=row.seats, features=tuple(str(f) for f in row.features or ()),
                       status=row.status.value, valid_until=row.valid_until, status_changed_at=row.status_changed_at)


# What each kind of timeline event says. Unknown kinds read as their name and data.
EVENT_TEXT: dict[str, str] = {
    "quote.drafted": "Quote {quote} drafted ({gross})",
    "quote.revised": "Quote {quote} revised to version {version} ({gross})",
    "quote.sent": "Quote {quote} v{version} sent to {signer} for signature ({provider})",
    "quote.signed": "Quote {quote} v{version} signed by {signer}",
    "quote.voided": "Quote {quote} voided: {reason}",
    "quote.declined": "Quote {quote} declined: {reason}",
    "quote.expired": "Quote {quote} expired: {reason}",
    "discount.approval_requested": "Discount of {discount} on {quote} v{version} waits for a manager",
    "discount.approved": "Discount of {discount} on {quote} v{version} approved",
    "discount.rejected": "Discount of {discount} on {quote} v{version} rejected: {reason}",
    "deal.won": "Deal won ({gross})",
    "invoice.issued": "Invoice {invoice} issued ({gross}), due {due_on}",
    "invoice.finalized": "Invoice {invoice} numbered",
    "invoice.resent": "Invoice {invoice} resent",
    "payment.recorded": "Payment of {amount} on {invoice} recorded ({method}, reference {reference})",
    "license.issued": "License for {seats} × {product} issued",
    "license.not_needed": "No license needed: {reason}",
    "license.suspended": "License {product} suspended: {reason}",
    "license.reinstated": "License {product} reinstated: {reason}",
    "subscription.started": "Subscription {sku} × {quantity} started",
    "billing.not_needed": "No subscription needed: {reason}",
    "access.denied": "Refused: {detail}",
}
