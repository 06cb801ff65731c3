"""Read-side questions the quote commands ask (no changes): a quote as a rep sees it,
a rep's open deals, the catalog a quote is priced from, customers by name.

Every answer is a small frozen record, not an ORM object, so it can leave the session
and cross into Slack builders and threads safely."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from flows.catalog import Sku
from flows.deals import TERMINAL, Deal, Stage
from flows.errors import NotFound
from flows.money import TaxLine, document_totals
from flows.parties import Customer
from flows.queries import find_deal
from flows.quotes import Approval, Quote, QuoteLine, QuoteVersion


@dataclass(frozen=True)
class LineView:
    position: int
    sku: str
    description: str
    quantity: Decimal
    unit: str
    interval: str | None  # "month" / "year" for recurring lines
    unit_amount: int
    net: int
    tax_rate_bp: int


@dataclass(frozen=True)
class QuoteView:
    deal_id: int
    deal_ref: str
    number: str
    version: int
    customer: str
    stage: Stage
    owner: str
    currency: str
    discount_bp: int
    approval: Approval
    approval_by: str | None
    valid_until: date
    payment_terms_days: int
    lines: tuple[LineView, ...]
    net: int
    tax: int
    taxes: tuple[TaxLine, ...]
    created_at: datetime

    @property
    def gross(self) -> int:
        return self.net + self.tax

    @property
    def sendable(self) -> bool:
        return self.stage is Stage.QUOTED

    @property
    def voidable(self) -> bool:
        return self.stage in (Stage.QUOTED, Stage.SENT)


@dataclass(frozen=True)
class DealRow:
    deal_id: int
    deal_ref: str
    number: str
    version: int
    customer: str
    stage: Stage
    amount: int
    currency: str
    approval: Approval
    age_days: int           # since the deal was opened
    stage_days: int         # since it reached its current stage


@dataclass(frozen=True)
class CatalogItem:
    code: str
    name: str
    unit: str
    interval: str | None    # None: charged once
    licensable: bool
    prices: dict[str, int]  # currency -> minor units per unit

    def price_in(self, currency: str) -> int | None:
        return self.prices.get(currency)


@dataclass(frozen=True)
class CustomerRef:
    id: int
    name: str
    country: str
    currency: str


_QUOTE_GRAPH = (
    joinedload(Deal.customer, innerjoin=True),
    joinedload(Deal.quote, innerjoin=True).selectinload(Quote.versions)
    .selectinload(QuoteVersion.lines).joinedload(QuoteLine.sku, innerjoin=True),
)


def quote_view(session: Session, deal_id: int) -> QuoteView:
    deal = session.get(Deal, deal_id, options=_QUOTE_GRAPH)
    if deal is None:
        raise NotFound("deal", f"D-{deal_id}")
    return _view(deal)


def quote_view_by_ref(session: Session, ref: str) -> QuoteView:
    """A quote by its number (Q-2026-0042), its deal (D-12) or an invoice of the deal."""
    return quote_view(session, find_deal(session, ref).id)


def _view(deal: Deal) -> QuoteView:
    quote = deal.quote
    current = quote.current
    lines = tuple(LineView(position=l.position, sku=l.sku.code, description=l.description, quantity=l.quantity,
                           unit=l.sku.unit, interval=l.sku.interval.value if l.sku.interval else None,
                           unit_amount=l.unit_amount, net=l.net, tax_rate_bp=l.tax_rate_bp)
                  for l in current.lines)
    totals = document_totals(quote.currency, ((l.net, l.tax_rate_bp) for l in lines))
    return QuoteView(deal_id=deal.id, deal_ref=deal.reference, number=quote.number, version=current.version,
                     customer=deal.customer.name, stage=deal.stage, owner=deal.owner, currency=quote.currency,
                     discount_bp=current.discount_bp, approval=current.approval, approval_by=current.approval_by,
                     valid_until=current.valid_until, payment_terms_days=current.payment_terms_days,
                     lines=lines, net=current.net, tax=current.tax, taxes=totals.taxes,
                     created_at=current.created_at)


def open_deals_of(session: Session, owner: str, *, now: datetime, offset: int = 0,
                  limit: int = 10) -> tuple[list[DealRow], int]:
    """A rep's deals still in play (not void, declined or expired), newest first, one
    page of them, and how many there are in all."""
    where = (Deal.owner == owner, Deal.stage.not_in(TERMINAL))
    total = session.scalar(select(func.count()).select_from(Deal).where(*where)) or 0
    rows = session.execute(
        select(Deal, Quote, Customer.name, QuoteVersion.approval)
        .join(Quote, Quote.deal_id == Deal.id).join(Customer, Customer.id == Deal.customer_id)
        .join(QuoteVersion, (QuoteVersion.quote_id == Quote.id)
              & (QuoteVersion.version == Quote.current_version))
        .where(*where).order_by(Deal.created_at.desc(), Deal.id.desc()).offset(offset).limit(limit))
    page = [DealRow(deal_id=deal.id, deal_ref=deal.reference, number=quote.number, version=quote.current_version,
                    customer=name, stage=deal.stage, amount=deal.amount, currency=deal.currency,
                    approval=approval, age_days=(now - deal.created_at).days,
                    stage_days=(now - deal.stage_changed_at).days)
            for deal, quote, name, approval in rows]
    return page, total


def catalog_items(session: Session) -> list[CatalogItem]:
    """The active SKUs with their prices, by code."""
    skus = session.scalars(select(Sku).where(Sku.active.is_(True)).options(selectinload(Sku.prices))
                           .order_by(Sku.code))
    return [CatalogItem(code=s.code, name=s.name, unit=s.unit, interval=s.interval.value if s.interval else None,
                        licensable=s.licensable, prices={p.currency: p.unit_amount for p in s.prices})
            for s in skus]


def customer_refs(session: Session) -> list[CustomerRef]:
    """Every customer, by name (what a typed name is matched against)."""
    return [_ref(c) for c in session.scalars(select(Customer).order_by(Customer.name, Customer.id))]


def customer_ref(session: Session, customer_id: int) -> CustomerRef | None:
    customer = session.get(Customer, customer_id)
    return _ref(customer) if customer is not None else None


def customers_containing(session: Session, text: str, limit: int = 50) -> list[CustomerRef]:
    """Customers whose name contains the text, case-insensitively (a search box)."""
    pattern = "%" + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [_ref(c) for c in session.scalars(
        select(Customer).where(func.lower(Customer.name).like(pattern, escape="\\"))
        .order_by(Customer.name, Customer.id).limit(limit))]


def deal_for_key(session: Session, key: str) -> int | None:
    """The deal a request (by its idempotency key) already opened, if any."""
    return session.scalar(select(Deal.id).where(Deal.origin_key == key))


def _ref(customer: Customer) -> CustomerRef:
    return CustomerRef(id=customer.id, name=customer.name, country=customer.country, currency=customer.currency)
