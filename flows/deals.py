"""Deals, the spine of the loop, and the signature envelopes sent for their quotes."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flows.base import Base, Id, enum_column
from flows.invoices import Invoice
from flows.parties import Customer
from flows.quotes import Quote, QuoteVersion


class Stage(enum.Enum):
    QUOTED = "quoted"
    SENT = "sent"
    SIGNED = "signed"
    WON = "won"
    INVOICED = "invoiced"
    LICENSED = "licensed"
    BILLING_ACTIVE = "billing_active"
    VOID = "void"
    DECLINED = "declined"
    EXPIRED = "expired"


# The order a deal moves through when all goes well; the three others end a deal.
HAPPY_PATH = (
    Stage.QUOTED, Stage.SENT, Stage.SIGNED, Stage.WON,
    Stage.INVOICED, Stage.LICENSED, Stage.BILLING_ACTIVE,
)
TERMINAL = (Stage.VOID, Stage.DECLINED, Stage.EXPIRED)


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    owner: Mapped[str] = mapped_column(String(120), index=True)  # the rep (Slack user id or email)
    stage: Mapped[Stage] = mapped_column(enum_column(Stage), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # gross of the current quote version, minor units
    origin_key: Mapped[str] = mapped_column(String(200), unique=True)  # idempotency of its creation
    created_at: Mapped[datetime]
    stage_changed_at: Mapped[datetime] = mapped_column(index=True)
    won_at: Mapped[datetime | None]
    slack_thread: Mapped[str | None] = mapped_column(String(64))  # "channel:ts" of its deal thread

    customer: Mapped[Customer] = relationship()
    quote: Mapped[Quote] = relationship(back_populates="deal", uselist=False)
    invoices: Mapped[list[Invoice]] = relationship(order_by="Invoice.id")

    @property
    def reference(self) -> str:
        return f"D-{self.id}"


class EnvelopeStatus(enum.Enum):
    REQUESTED = "requested"  # intent recorded; the provider call has not been confirmed yet
    SENT = "sent"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    DECLINED = "declined"
    VOIDED = "voided"
    EXPIRED = "expired"


class SignatureEnvelope(Base):
    """One request for a signature on one quote version, by DocuSign or by email."""

    __tablename__ = "signature_envelopes"
    __table_args__ = (UniqueConstraint("quote_version_id", "provider"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    quote_version_id: Mapped[int] = mapped_column(ForeignKey("quote_versions.id"))
    provider: Mapped[str] = mapped_column(String(16))  # "docusign" or "email"
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # DocuSign envelope id
    status: Mapped[EnvelopeStatus] = mapped_column(enum_column(EnvelopeStatus), index=True)
    requested_at: Mapped[datetime]
    status_changed_at: Mapped[datetime]
    signer_email: Mapped[str] = mapped_column(String(320))

    version: Mapped[QuoteVersion] = relationship()
