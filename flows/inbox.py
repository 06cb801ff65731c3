"""De-duplication of everything that arrives: emails, webhooks, Slack retries.

An inbound event is claimed by inserting its (source, external id); a second
delivery hits the unique constraint and is recognised as a duplicate."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column

from flows.base import Base, Id


class InboundEvent(Base):
    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))         # "email", "docusign", "payments", "slack"
    external_id: Mapped[str] = mapped_column(String(255))   # Message-ID, event id, envelope+status…
    content_hash: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]
    # Set by whoever handles the message (the email and invoice-PDF handlers): when it was
    # matched to a deal or judged to need none. Emails and invoice PDFs left NULL are gaps.
    triaged_at: Mapped[datetime | None]
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))


def claim(session: Session, source: str, external_id: str, received_at: datetime,
          content_hash: str | None = None) -> bool:
    """Record an inbound event; False when it was seen before (a duplicate delivery).
    Uses INSERT … ON CONFLICT DO NOTHING so a duplicate never aborts the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    inserted = session.execute(
        insert(InboundEvent)
        .values(source=source, external_id=external_id, content_hash=content_hash, received_at=received_at)
        .on_conflict_do_nothing()
        .returning(InboundEvent.id)
    ).first()
    return inserted is not None
