"""Quotes and their versions: every change makes a new version; sent versions never change."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flows.base import Base, Id, enum_column
from flows.money import Totals, document_totals

if TYPE_CHECKING:
    from flows.catalog import Sku
    from flows.deals import Deal


class Quote(Base):
    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # Q-2026-0042
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    owner: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]

    deal: Mapped[Deal] = relationship(back_populates="quote")
    versions: Mapped[list[QuoteVersion]] = relationship(
        back_populates="quote", order_by="QuoteVersion.version"
    )

    @property
    def current(self) -> QuoteVersion:
        return next(v for v in self.versions if v.version == self.current_version)


class Approval(enum.Enum):
    NOT_NEEDED = "not_needed"  # discount within policy
    PENDING = "pending"        # over the policy threshold: a manager must decide before it is sent
    APPROVED = "approved"
    REJECTED = "rejected"


class QuoteVersion(Base):
    __tablename__ = "quote_versions"
    __table_args__ = (UniqueConstraint("quote_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"))
    version: Mapped[int] = mapped_column(Integer)
    discount_bp: Mapped[int] = mapped_column(Integer)  # whole-quote discount, applied per line
    valid_until: Mapped[date]
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    net: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))  # what a returned copy is matched against
    origin_key: Mapped[str] = mapped_column(String(200), unique=True)  # idempotency of its creation
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    approval: Mapped[Approval] = mapped_column(enum_column(Approval), default=Approval.NOT_NEEDED)
    approval_by: Mapped[str | None] = mapped_column(String(120))
    approval_at: Mapped[datetime | None]

    quote: Mapped[Quote] = relationship(back_populates="versions")
    lines: Mapped[list[QuoteLine]] = relationship(
        back_populates="version", order_by="QuoteLine.position", cascade="all, delete-orphan"
    )

    @property
    def gross(self) -> int:
        return self.net + self.tax

    def totals(self) -> Totals:
        return document_totals(self.quote.currency, ((l.net, l.tax_rate_bp) for l in self.lines))


class QuoteLine(Base):
    """A priced line, snapshotted from the catalog so later price changes never alter it."""

    __tablename__ = "quote_lines"
    __table_args__ = (UniqueConstraint("version_id", "position"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("quote_versions.id"))
    position: Mapped[int] = mapped_column(Integer)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal]
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    net: Mapped[int] = mapped_column(BigInteger)  # after the quote discount, rounded half-up

    version: Mapped[QuoteVersion] = relationship(back_populates="lines")
    sku: Mapped[Sku] = relationship()
