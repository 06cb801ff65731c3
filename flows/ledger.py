"""The unit of work: one database transaction per step, with the helpers every step
uses (lock a row, record an event, enqueue a side effect, take the next number).

`Ledger.run(step, ...)` opens the transaction, runs the step, commits, and retries the
whole step on a serialization failure, a deadlock or a locked SQLite file — which is
safe because every step is idempotent."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from flows.base import Base
from flows.clock import Clock
from flows.errors import NotFound
from flows.invoices import NumberSeries
from flows.outbox import OutboxMessage, OutboxStatus
from flows.timeline import Event

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=Base)

_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_transient(error: BaseException) -> bool:
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES or "database is locked" in str(orig)


@dataclass(frozen=True)
class Policy:
    """Business settings the steps need (built from configuration by the wiring)."""

    invoice_series: str = "INV-{year}"
    quote_series: str = "Q-{year}"
    quote_valid_days: int = 30
    payment_terms_days: int = 30
    timezone: str = "UTC"  # the company's; decides what "today" is for due dates and periods


@dataclass
class Tx:
    session: Session
    now: datetime
    policy: Policy
    outbox_written: int = 0

    def get(self, model: type[M], ident: int, *, lock: bool = True) -> M:
        """Load a row, locked for the rest of the transaction (FOR UPDATE on PostgreSQL)."""
        row = self.session.get(model, ident, with_for_update=lock, populate_existing=lock)
        if row is None:
            raise NotFound(model.__name__.lower(), ident)
        return row

    def record(self, kind: str, *, deal_id: int | None, customer_id: int | None,
               actor: str = "closeloop", **data: Any) -> Event:
        event = Event(deal_id=deal_id, customer_id=customer_id, kind=kind, actor=actor,
                      data=data, occurred_at=self.now)
        self.session.add(event)
        return event

    def enqueue(self, kind: str, payload: dict[str, Any], *, key: str, deal_id: int | None,
                stream: str | None = None, not_before: datetime | None = None) -> None:
        """Write a side effect to the outbox; it leaves after this transaction commits."""
        self.session.add(OutboxMessage(
            kind=kind, stream=stream or (f"deal:{deal_id}" if deal_id else kind), deal_id=deal_id,
            payload=payload, idempotency_key=key, status=OutboxStatus.PENDING, attempts=0,
            available_at=not_before or self.now, created_at=self.now,
        ))
        self.outbox_written += 1

    def next_number(self, series: str) -> int:
        """Take the next value of a series. The counter row stays locked until commit,
        so concurrent takers queue behind it and a rollback gives the number back."""
        self.session.flush()
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self.session.execute(
            insert(NumberSeries).values(series=series, next_value=1).on_conflict_do_nothing()
        )
        taken = self.session.execute(
            update(NumberSeries).where(NumberSeries.series == series)
            .values(next_value=NumberSeries.next_value + 1)
            .returning(NumberSeries.next_value)
        ).scalar_one()
        return taken - 1

    def scalar(self, statement: Any) -> Any:
        return self.session.scalar(statement)


@dataclass
class Ledger:
    sessions: sessionmaker[Session]
    clock: Clock
    policy: Policy = field(default_factory=Policy)
    max_retries: int = 8
    after_commit: list[Callable[[Tx], None]] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)

    def run(self, step: Callable[Concatenate[Tx, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, self.max_retries + 1):
            with self.sessions() as session:
                tx = Tx(session, self.clock.now(), self.policy)
                try:
                    result = step(tx, *args, **kwargs)
                    session.commit()
                except Exception as error:
                    session.rollback()
                    if attempt < self.max_retries and is_transient(error):
                        time.sleep(min(1.0, 0.01 * 2 ** attempt) * (0.5 + self._rng.random() / 2))
                        continue
                    raise
            for hook in self.after_commit:
                hook(tx)
            return result
        raise AssertionError("unreachable")

    def read(self, query: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a read-only query function in its own short transaction."""
        with self.sessions() as session:
            return query(session, *args, **kwargs)
