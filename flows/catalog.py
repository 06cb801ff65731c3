"""The SKU catalog: what can be sold, how it is billed, and its price per currency."""
from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flows.base import Base, Id, enum_column


class SkuKind(enum.Enum):
    ONE_OFF = "one_off"      # charged once (setup, training)
    RECURRING = "recurring"  # charged every interval (seats, plans)
    USAGE = "usage"          # charged per unit consumed in each interval


class Interval(enum.Enum):
    MONTH = "month"
    YEAR = "year"


class Sku(Base):
    __tablename__ = "skus"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[SkuKind] = mapped_column(enum_column(SkuKind))
    unit: Mapped[str] = mapped_column(String(32))
    interval: Mapped[Interval | None] = mapped_column(enum_column(Interval))
    licensable: Mapped[bool] = mapped_column(Boolean)
    features: Mapped[list[Any]]
    tax_category: Mapped[str] = mapped_column(String(32))
    tax_rate_bp: Mapped[int] = mapped_column(Integer)  # from the catalog's tax categories
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    prices: Mapped[list[SkuPrice]] = relationship(
        back_populates="sku", cascade="all, delete-orphan", order_by="SkuPrice.currency"
    )

    def price_in(self, currency: str) -> int | None:
        return next((p.unit_amount for p in self.prices if p.currency == currency), None)


class SkuPrice(Base):
    __tablename__ = "sku_prices"
    __table_args__ = (UniqueConstraint("sku_id", "currency"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    currency: Mapped[str] = mapped_column(String(3))
    unit_amount: Mapped[int] = mapped_column(BigInteger)  # minor units per unit (per interval if recurring)

    sku: Mapped[Sku] = relationship(back_populates="prices")
