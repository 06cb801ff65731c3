"""Subscriptions, their billing periods, charges through a gateway, and payments."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flows.base import Base, Id, enum_column
from flows.catalog import Interval
from flows.invoices import Invoice


class SubscriptionStatus(enum.Enum):
    ACTIVE = "active"
    CANCELLING = "cancelling"  # ends at the end of the current period
    CANCELLED = "cancelled"
    PARKED = "parked"          # billing halted for a human to look (e.g. runaway invoicing)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("deal_id", "sku_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    quantity: Mapped[Decimal]
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[Interval] = mapped_column(enum_column(Interval))
    anchor: Mapped[date]  # periods are anchor + k intervals, so month ends never drift
    status: Mapped[SubscriptionStatus] = mapped_column(enum_column(SubscriptionStatus), index=True)
    started_at: Mapped[datetime]
    ends_on: Mapped[date | None]
    # The end of its latest period, kept by a database trigger on subscription_periods
    # (migration 0004_gaps), so "which subscription was not billed on" is an index range.
    billed_through: Mapped[date | None] = mapped_column(index=True)

    periods: Mapped[list[SubscriptionPeriod]] = relationship(order_by="SubscriptionPeriod.index")


class SubscriptionPeriod(Base):
    __tablename__ = "subscription_periods"
    __table_args__ = (UniqueConstraint("subscription_id", "index"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    index: Mapped[int] = mapped_column(Integer)  # 0 is the first period
    start: Mapped[date]
    end: Mapped[date]  # exclusive
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)

    invoice: Mapped[Invoice | None] = relationship()


def period_bounds(anchor: date, interval: Interval, index: int) -> tuple[date, date]:
    """The index-th period [start, end) of a subscription anchored on `anchor`.
    Computed from the anchor each time: Jan 31 -> Feb 29 -> Mar 31, not Mar 29."""
    step = relativedelta(months=1) if interval is Interval.MONTH else relativedelta(years=1)
    return anchor + step * index, anchor + step * (index + 1)


class ChargeStatus(enum.Enum):
    PENDING = "pending"      # intent recorded, gateway not yet called
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"      # the gateway may have committed; a reconciler asks, never re-charges


class Charge(Base):
    __tablename__ = "charges"
    __table_args__ = (UniqueConstraint("invoice_id", "attempt"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    attempt: Mapped[int] = mapped_column(Integer)  # 1, 2, … per the retry schedule
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)  # charge:<invoice>:<attempt>
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[ChargeStatus] = mapped_column(enum_column(ChargeStatus), index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_ref: Mapped[str | None] = mapped_column(String(120))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(32))  # "card", "bank_transfer", …
    reference: Mapped[str] = mapped_column(String(120), unique=True)  # gateway id or bank reference
    received_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(120))
