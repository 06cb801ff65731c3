"""Subscriptions, their billing periods, charges through a gateway, and payments."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
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
    __table_args__ = (UniqueConstraint("deal_id", "sku_id"), Index("ix_subscriptions_due", "status", "next_start"))

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
    # What the billing run reads, so it needs no join: the next period to bill (index and
    # start; NULL start: nothing more to bill), the terms and text of its invoices, a credit
    # from seat reductions to take off the next invoice, and how many invoices it got today.
    next_index: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    next_start: Mapped[date | None]
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    description: Mapped[str] = mapped_column(String(300), default="", server_default="")
    credit: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    billed_on: Mapped[date | None]
    billed_today: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    periods: Mapped[list[SubscriptionPeriod]] = relationship(order_by="SubscriptionPeriod.index")


class SubscriptionPeriod(Base):
    __tablename__ = "subscription_periods"
    # (subscription, start) unique too: the billing run's INSERT … ON CONFLICT DO NOTHING
    # relies on it, so two runs can never bill one period twice.
    __table_args__ = (UniqueConstraint("subscription_id", "index"), UniqueConstraint("subscription_id", "start"))

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


class SubscriptionChange(Base):
    """A seat change or a cancellation, once per request key, with the prorated amount
    it caused (positive: charged now on its own invoice; negative: credited on the next)."""

    __tablename__ = "subscription_changes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    request_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # "seats", "cancel_at_period_end", "cancel_now"
    old_quantity: Mapped[Decimal]
    new_quantity: Mapped[Decimal]
    effective_on: Mapped[date]
    prorated: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]


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
