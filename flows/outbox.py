"""The outbox: side effects committed with the state change that causes them, and
handed out to relays afterwards, in order per stream (one deal's messages never pass
each other), each under a time-limited lease.

The relay loop and the adapters it calls live outside flows/; this module is only
the database side: enqueue, lease, complete, retry, dead-letter."""
from __future__ import annotations

import enum
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, Integer, String, Text, and_, exists, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from flows.base import Base, Id, enum_column


class OutboxStatus(enum.Enum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"  # gave up; surfaces as a gap for a human


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_available_at", "status", "available_at"),
        Index("ix_outbox_stream_id", "stream", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))           # "slack.post", "email.send", "pipeline.step"
    stream: Mapped[str] = mapped_column(String(64))         # ordering scope, e.g. "deal:12"
    deal_id: Mapped[int | None] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(enum_column(OutboxStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime]
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a relay hands an adapter: ids and plain data, never ORM objects."""

    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempt: int
    deal_id: int | None
    stream: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, then the dead-letter queue."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 10

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        # "Equal jitter": at least half the exponential delay, so retries never hot-loop,
        # plus a random half, so a crowd of failures does not retry in lockstep.
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        return ceiling / 2 + ceiling / 2 * rng.random()


def _due_at_head(now: datetime) -> Any:
    """Due (pending and available, or leased by a relay whose lease expired) and at the
    head of its stream (no earlier message of the stream still pending or leased)."""
    earlier = aliased(OutboxMessage)
    blocked = exists().where(
        earlier.stream == OutboxMessage.stream,
        earlier.id < OutboxMessage.id,
        earlier.status.in_([OutboxStatus.PENDING, OutboxStatus.LEASED]),
    )
    due = or_(
        and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.available_at <= now),
        and_(OutboxMessage.status == OutboxStatus.LEASED, OutboxMessage.leased_until < now),
    )
    return and_(due, ~blocked)


def lease(session: Session, now: datetime, owner: str, lease_for: timedelta, limit: int) -> list[Delivery]:
    """Lease up to `limit` messages that are due and at the head of their stream.

    A message is due when pending and available, or leased by a relay whose lease
    expired (it crashed). It is at the head of its stream when no earlier message of
    the stream is still pending or leased; dead messages do not block their stream.
    On PostgreSQL rows are taken FOR UPDATE SKIP LOCKED, so concurrent relays never
    lease the same row; SQLite serialises writers (BEGIN IMMEDIATE) to the same end."""
    rows = session.scalars(
        select(OutboxMessage)
        .where(_due_at_head(now))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    leased = []
    for row in rows:
        row.status = OutboxStatus.LEASED
        row.attempts += 1
        row.leased_until = now + lease_for
        row.lease_owner = owner
        leased.append(Delivery(row.id, row.kind, dict(row.payload), row.idempotency_key, row.attempts, row.deal_id,
                               row.stream))
    return leased


def complete(session: Session, delivery: Delivery, owner: str, now: datetime) -> bool:
    """Mark delivered. False when our lease was lost to another relay meanwhile."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == delivery.id, OutboxMessage.lease_owner == owner,
               OutboxMessage.status == OutboxStatus.LEASED)
        .values(status=OutboxStatus.DONE, done_at=now, leased_until=None, last_error=None)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def renew(session: Session, message_id: int, owner: str, now: datetime, lease_for: timedelta) -> bool:
    """Extend a lease still held by `owner` (a delivery still running). False when it is
    no longer ours."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner,
               OutboxMessage.status == OutboxStatus.LEASED)
        .values(leased_until=now + lease_for)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def fail(session: Session, delivery: Delivery, owner: str, now: datetime, error: str,
         retry_in: timedelta | None) -> OutboxStatus | None:
    """Schedule a retry after `retry_in`, or dead-letter the message when None."""
    status = OutboxStatus.DEAD if retry_in is None else OutboxStatus.PENDING
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == delivery.id, OutboxMessage.lease_owner == owner,
               OutboxMessage.status == OutboxStatus.LEASED)
        .values(status=status, leased_until=None, last_error=error[:4000],
                available_at=now + (retry_in or timedelta(0)))
    )
    return status if result.rowcount == 1 else None  # type: ignore[attr-defined]


def bury(session: Session, message_id: int, now: datetime, error: str) -> None:
    """Dead-letter a message without a delivery (e.g. it outlived its attempts)."""
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id)
        .values(status=OutboxStatus.DEAD, leased_until=None, last_error=error[:4000])
    )


class PermanentFailure(Exception):
    """Raised by an adapter when retrying cannot help (a 5xx SMTP answer, a 400 from an
    API): the message goes straight to the dead-letter queue."""


class RetryAfter(Exception):
    """Raised by an adapter when the service asked us to wait (HTTP 429 Retry-After):
    the message is retried after exactly that long, counted as an attempt."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"asked to retry after {seconds:g} s")
        self.seconds = seconds


# --- handing messages out one by one (the Celery relay: one task per message) ----------

def hand_out(session: Session, now: datetime, lease_for: timedelta, limit: int, *,
             stream: str | None = None, in_flight: int | None = None) -> list[tuple[int, str, str]]:
    """Lease due messages at the head of their stream to tasks not yet sent: each row
    gets its own owner (the id of the task that will deliver it); returns (id, kind,
    owner). With `in_flight`, at most that many are out at once, leased but undelivered,
    so the task queues stay short and a hand-out's lease does not expire in a queue."""
    if in_flight is not None:
        out = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.LEASED, OutboxMessage.leased_until >= now)) or 0
        limit = min(limit, max(0, in_flight - out))
        if limit == 0:
            return []
    query = select(OutboxMessage).where(_due_at_head(now))
    if stream is not None:
        query = query.where(OutboxMessage.stream == stream)
    rows = session.scalars(query.order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)).all()
    handed = []
    for row in rows:
        row.status, row.leased_until = OutboxStatus.LEASED, now + lease_for
        row.lease_owner = f"task:{uuid.uuid4().hex}"
        handed.append((row.id, row.kind, row.lease_owner))
    return handed


def _unclaimed_hand_out(now: datetime, claimed_for: timedelta) -> Any:
    """Handed out to a task that has not claimed it: the hand-out's lease is still longer
    than any claim's (`claimed_for`), which a claim or its renewals would have shortened."""
    return and_(OutboxMessage.status == OutboxStatus.LEASED, OutboxMessage.lease_owner.like("task:%"),
                OutboxMessage.leased_until > now + claimed_for)


_DUE_AGAIN = {"status": OutboxStatus.PENDING, "leased_until": None, "lease_owner": None}


def give_back(session: Session, now: datetime, handed: list[tuple[int, str]], claimed_for: timedelta) -> int:
    """Undo hand-outs whose tasks could not be sent (the broker is away): those messages are
    due again at once instead of after the hand-out's long lease. Takes (id, owner) pairs.
    A message whose task claimed it after all (sent, then the connection dropped) is left
    alone; so is one handed out again meanwhile. Returns how many were given back."""
    given = 0
    for message_id, owner in handed:
        given += session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner,
                   _unclaimed_hand_out(now, claimed_for))
            .values(**_DUE_AGAIN)
        ).rowcount  # type: ignore[attr-defined]
    return given


def give_back_unclaimed(session: Session, now: datetime, claimed_for: timedelta) -> int:
    """After the broker may have lost its tasks (a worker connected to it): every hand-out
    no task has claimed yet is due again at once, instead of after the hand-out's long
    lease. Safe when nothing was lost: a task still queued finds its owner gone and does
    nothing. Claimed messages are left alone."""
    return session.execute(
        update(OutboxMessage).where(_unclaimed_hand_out(now, claimed_for)).values(**_DUE_AGAIN)
    ).rowcount  # type: ignore[attr-defined]


def claim(session: Session, message_id: int, owner: str, now: datetime, lease_for: timedelta) -> Delivery | None:
    """Start one attempt at a handed-out message: its lease renewed, its attempt counted.
    None when the message is no longer ours (delivered, or handed out again after our
    lease expired): the task has nothing to do. A task the broker delivers again after
    its worker died claims the same message again, as a new attempt."""
    row = session.scalar(select(OutboxMessage).where(
        OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner,
        OutboxMessage.status == OutboxStatus.LEASED).with_for_update())
    if row is None:
        return None
    row.attempts += 1
    row.leased_until = now + lease_for
    return Delivery(row.id, row.kind, dict(row.payload), row.idempotency_key, row.attempts, row.deal_id, row.stream)

