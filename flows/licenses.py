"""Licenses: the right to use a product, granted on a deal."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flows.base import Base, Id, enum_column


class LicenseStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class License(Base):
    __tablename__ = "licenses"
    __table_args__ = (UniqueConstraint("deal_id", "sku_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    product: Mapped[str] = mapped_column(String(64))
    seats: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[Any]]
    status: Mapped[LicenseStatus] = mapped_column(enum_column(LicenseStatus), index=True)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]  # None: perpetual
    key: Mapped[str | None] = mapped_column(Text)  # the signed key, once minted
    status_changed_at: Mapped[datetime]
