"""Invoices, their lines, and the gapless number counter per series."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flows.base import Base, Id, enum_column


class InvoiceStatus(enum.Enum):
    DRAFT = "draft"          # no number yet; may still change or be discarded
    ISSUED = "issued"        # numbered, sent, unpaid
    PAID = "paid"
    VOID = "void"            # cancelled after issue; keeps its number (no gaps)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("series", "sequence"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # Why this invoice exists, e.g. "deal:12" or "period:7"; unique, so one invoice each.
    purpose_key: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[InvoiceStatus] = mapped_column(enum_column(InvoiceStatus), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    series: Mapped[str | None] = mapped_column(String(32))
    sequence: Mapped[int | None] = mapped_column(Integer)
    number: Mapped[str | None] = mapped_column(String(48), unique=True)  # INV-2026-000042
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    issued_at: Mapped[datetime | None]
    due_on: Mapped[date | None] = mapped_column(index=True)

    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )

    @property
    def gross(self) -> int:
        return self.net + self.tax

    @property
    def balance(self) -> int:
        return self.gross - self.amount_paid


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    position: Mapped[int] = mapped_column(Integer)
    sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id"))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal]
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    net: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]  # exclusive

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class NumberSeries(Base):
    """The next number of each series (invoices, quotes). Taken under a row lock in the
    same transaction that uses it, so a rollback returns it: no gaps, no duplicates."""

    __tablename__ = "number_series"

    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer)


def invoice_delivery(invoice_id: int, number: str, *, customer: str, language: str, to: str | None,
                     resend: bool = False) -> dict[str, object]:
    """The `invoice.deliver` payload: enough for the deliverer (render the Factur-X PDF,
    send it localized to the billing contact) without reading anything else first.
    `to` is None when the customer has no billing contact: the deliverer raises it."""
    payload: dict[str, object] = {"invoice": number, "invoice_id": invoice_id, "customer": customer,
                                  "language": language, "to": to}
    if resend:
        payload["resend"] = True
    return payload
