"""The append-only timeline of each deal: what happened, when, and who did it.

Rows are never updated or deleted; the migration installs triggers that refuse it."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from flows.base import Base, Id


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_deal_id_id", "deal_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Known before insert, so side effects can be keyed by it without a round trip.
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: uuid.uuid4().hex)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "deal.won", "invoice.issued"
    actor: Mapped[str] = mapped_column(String(120))           # "closeloop", a Slack user, "customer"
    data: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
