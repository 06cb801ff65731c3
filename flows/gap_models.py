"""The tables of completeness: the state of each gap the rules have found, each
evaluation run, the one digest per day, and vendors' usage bills.

A gap is named by its rule and the id of the entity it is about (a deal, an invoice,
a license…; each rule is about one kind of entity). One row per occurrence: while a
gap is open (resolved_at NULL) a partial unique index allows one row per (rule,
entity); when it resolves and later comes back, a new row opens and the old one
keeps its history."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from flows.base import Base, Id


class GapState(Base):
    __tablename__ = "gap_states"
    __table_args__ = (
        Index("uq_gap_states_open", "rule", "entity_id", unique=True,
              sqlite_where=text("resolved_at IS NULL"), postgresql_where=text("resolved_at IS NULL")),
        Index("ix_gap_states_resolved_at", "resolved_at"),
        Index("ix_gap_states_first_seen", "first_seen"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    rule: Mapped[str] = mapped_column(String(48))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(120), index=True)  # a rep's Slack id, or "finance" / "admin"
    customer_id: Mapped[int | None] = mapped_column(Id, index=True)
    deal_id: Mapped[int | None] = mapped_column(Id)
    amount: Mapped[int | None] = mapped_column(BigInteger)  # at stake, minor units
    currency: Mapped[str | None] = mapped_column(String(3))
    since: Mapped[datetime]                                 # when the missing step became due
    ref: Mapped[str | None] = mapped_column(String(120))    # what people call the entity (Q-…, INV-…)
    detail: Mapped[str | None] = mapped_column(String(300))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    snooze_reason: Mapped[str | None] = mapped_column(String(300))
    snoozed_by: Mapped[str | None] = mapped_column(String(120))

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.entity_id}"


class GapRun(Base):
    """One evaluation of all rules: when, and what it found."""

    __tablename__ = "gap_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(index=True)
    open: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int] = mapped_column(Integer)
    resolved: Mapped[int] = mapped_column(Integer)
    queries: Mapped[int] = mapped_column(Integer)


class GapDigest(Base):
    """The daily digest, claimed once per company day in the transaction that queues
    its outbox row: a second scheduler tick finds the day taken and posts nothing."""

    __tablename__ = "gap_digests"

    digest_date: Mapped[date] = mapped_column(Date, primary_key=True)
    claimed_at: Mapped[datetime]
    since: Mapped[datetime]  # new and resolved are counted from here (the previous digest)


class VendorUsage(Base):
    """What a vendor billed us for a period of a usage SKU we resell (e.g. storage GB)."""

    __tablename__ = "vendor_usage"
    __table_args__ = (UniqueConstraint("vendor", "sku_id", "period_start"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    vendor: Mapped[str] = mapped_column(String(120))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), index=True)
    period_start: Mapped[date]
    period_end: Mapped[date]  # exclusive
    quantity: Mapped[Decimal]
    amount: Mapped[int | None] = mapped_column(BigInteger)  # what the vendor charged, minor units
    currency: Mapped[str | None] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(200))         # "csv:usage-2026-03.csv", "pdf:INV-77.pdf"
    imported_at: Mapped[datetime]


# Indexes the gap rules' plans need on the ledger's own tables (bench/gap_rules.py
# prints the plans). Declared here, beside the rules that use them.
def _ledger_indexes() -> None:
    from flows.deals import Deal
    from flows.esign import DocuSignEnvelope
    from flows.invoices import Invoice, InvoiceLine
    from flows.parties import Contact
    from flows.timeline import Event
    from flows.inbox import InboundEvent

    Index("ix_deals_stage_stage_changed_at", Deal.stage, Deal.stage_changed_at)
    Index("ix_docusign_envelopes_verdict", DocuSignEnvelope.verdict)  # signature-failed: the refused few
    Index("ix_invoices_status_due_on", Invoice.status, Invoice.due_on)
    # period-not-invoiced reads the billing run's ix_subscriptions_due (status, next_start)
    Index("ix_invoice_lines_sku_id_period_start", InvoiceLine.sku_id, InvoiceLine.period_start)
    Index("ix_contacts_bounced_at", Contact.bounced_at)
    Index("ix_events_customer_id_occurred_at", Event.customer_id, Event.occurred_at)
    Index("ix_inbound_events_triaged_at_source", InboundEvent.triaged_at, InboundEvent.source)


_ledger_indexes()
