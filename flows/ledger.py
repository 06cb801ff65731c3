"""The unit of work: one database transaction per business event, with the helpers
every step uses (lock a row, record an event, enqueue a side effect, take the next
number, continue the pipeline).

`Ledger.run(step, ...)` opens the transaction, runs the step and the pipeline steps
that follow it on their own (in the same transaction: a signature lands together with
its won deal, invoice, license and subscription), commits, and retries the whole on a
serialization failure, a deadlock or a locked SQLite file — safe because every step is
idempotent. If a following step fails, the triggering step is run again alone and the
follower is queued on the outbox, where it is retried and, if it keeps failing,
dead-lettered for a human: the signature itself is never lost.

Timeline events and outbox rows are written when the transaction commits, in one
batched statement each."""
from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, insert
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

log = logging.getLogger("closeloop.ledger")

_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_TX_KEY = "closeloop.tx"


def is_transient(error: BaseException) -> bool:
    if not isinstance(error, DBAPIError):  # the driver's own error (run_statement steps use psycopg directly)
        return getattr(error, "sqlstate", None) in _TRANSIENT_SQLSTATES
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
    discount_approval_bp: int = 1500  # discounts above this need a manager's approval before sending
    invoicing: str = "internal"  # "external": the accounting system issues invoices, closeloop links them
    billing_max_invoices_per_day: int = 3  # more for one subscription in a day: parked for a human


@dataclass
class Tx:
    session: Session
    now: datetime
    policy: Policy
    # Run the pipeline's following steps in this transaction (False: queue them on the outbox).
    inline: bool = True
    outbox_written: int = 0
    _events: list[dict[str, Any]] = field(default_factory=list)
    _outbox: list[dict[str, Any]] = field(default_factory=list)
    # Rows this transaction locked, held strongly: the session's identity map is weak, so a
    # row no step references any more would be read again by the next step that needs it.
    _locked: dict[tuple[type, int], Any] = field(default_factory=dict)
    _following: list[tuple[Callable[..., Any], tuple[Any, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session.info[_TX_KEY] = self

    def get(self, model: type[M], ident: int, *, lock: bool = True) -> M:
        """Load a row, locked for the rest of the transaction (FOR UPDATE on PostgreSQL).
        A row this transaction already locked is not read again."""
        locked = (model, ident) in self._locked
        row = self.session.get(model, ident, with_for_update=lock and not locked,
                               populate_existing=lock and not locked)
        if row is None:
            raise NotFound(model.__name__.lower(), ident)
        if lock:
            self._locked[(model, ident)] = row
        return row

    def holds(self, model: type[Base], ident: int) -> bool:
        """Whether this transaction already locked that row."""
        return (model, ident) in self._locked

    def record(self, kind: str, *, deal_id: int | None, customer_id: int | None,
               actor: str = "closeloop", **data: Any) -> str:
        """Append an event to the timeline; returns its uid (stable, known before insert)."""
        uid = uuid.uuid4().hex
        self._events.append({"uid": uid, "deal_id": deal_id, "customer_id": customer_id, "kind": kind,
                             "actor": actor, "data": data, "occurred_at": self.now})
        return uid

    def enqueue(self, kind: str, payload: dict[str, Any], *, key: str, deal_id: int | None,
                stream: str | None = None, not_before: datetime | None = None) -> None:
        """Write a side effect to the outbox; it leaves after this transaction commits."""
        self._outbox.append({
            "kind": kind, "stream": stream or (f"deal:{deal_id}" if deal_id else kind), "deal_id": deal_id,
            "payload": payload, "idempotency_key": key, "status": OutboxStatus.PENDING, "attempts": 0,
            "available_at": not_before or self.now, "created_at": self.now,
        })
        self.outbox_written += 1

    def then(self, step: Callable[..., Any], *args: Any, queue: Callable[[], None]) -> None:
        """Continue with `step` in this transaction, or, when following steps are not
        run inline, call `queue` to put it on the outbox instead."""
        if self.inline:
            self._following.append((step, args))
        else:
            queue()

    def run_following(self) -> None:
        while self._following:
            step, args = self._following.pop(0)
            step(self, *args)

    def next_number(self, series: str) -> int:
        """Take the next value of a series. The counter row stays locked until commit,
        so concurrent takers queue behind it and a rollback gives the number back."""
        table = NumberSeries.__table__
        connection = self.session.connection()  # on the connection: no autoflush of pending rows
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        # One statement: create the series at 2 (1 taken), or take the next and move it on.
        statement = upsert(table).values(series=series, next_value=2)
        taken = connection.execute(
            statement.on_conflict_do_update(index_elements=[table.c.series],
                                            set_={"next_value": table.c.next_value + 1})
            .returning(table.c.next_value)
        ).scalar_one()
        return int(taken) - 1

    def write_pending(self) -> None:
        """Flush the ORM, then write the collected events and outbox rows in one
        batched INSERT each (called just before commit)."""
        self.session.flush()
        if self._events:
            self.session.execute(insert(Event.__table__), self._events)
            self._events = []
        if self._outbox:
            self.session.execute(insert(OutboxMessage.__table__), self._outbox)
            self._outbox = []


@dataclass(frozen=True)
class Committed:
    """What the after-commit hooks are told of a `Ledger.run_statement`."""

    outbox_written: int


class LedgerSession(Session):
    """However a ledger transaction is committed, its events and outbox rows go with it."""

    def commit(self) -> None:
        tx = self.info.get(_TX_KEY)
        if tx is not None:
            tx.write_pending()
        super().commit()


class Gate:
    """At most `width` threads of this process inside the ledger at once. The others
    wait without running, so threads that must answer fast (Slack acks) are not
    starved of the interpreter by a crowd doing ledger work. Re-entrant per thread."""

    def __init__(self, width: int) -> None:
        self._slots = threading.BoundedSemaphore(width)
        self._depth = threading.local()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self._slots.acquire()
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                self._slots.release()


@dataclass
class Ledger:
    engine: Engine
    clock: Clock
    policy: Policy = field(default_factory=Policy)
    max_retries: int = 8
    concurrency: int = 4
    after_commit: list[Callable[[Tx | Committed], None]] = field(default_factory=list)
    # What a step runs inside (the wiring's log context: closeloop.logs.step_context);
    # given the step and its arguments.
    around_step: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]],
                          AbstractContextManager[Any]] = lambda *_: nullcontext()
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.sessions: sessionmaker[LedgerSession] = sessionmaker(
            self.engine, class_=LedgerSession, expire_on_commit=False)
        self.gate = Gate(self.concurrency)

    def run(self, step: Callable[Concatenate[Tx, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a step and the pipeline steps that follow it, in one transaction."""
        return self._run(step, args, kwargs, inline=True)

    def run_alone(self, step: Callable[Concatenate[Tx, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run just this step; the steps that follow it are queued on the outbox."""
        return self._run(step, args, kwargs, inline=False)

    def _run(self, step: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any], *, inline: bool) -> R:
        with self.around_step(step, args, kwargs), self.gate():
            return self._attempts(step, args, kwargs, inline=inline)

    def _attempts(self, step: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                  inline: bool) -> R:
        for attempt in range(1, self.max_retries + 1):
            following = False
            with self.sessions() as session:
                tx = Tx(session, self.clock.now(), self.policy, inline=inline)
                try:
                    result = step(tx, *args, **kwargs)
                    following = bool(tx._following)
                    tx.run_following()
                    session.commit()
                except Exception as error:
                    session.rollback()
                    if attempt < self.max_retries and is_transient(error):
                        time.sleep(min(1.0, 0.01 * 2 ** attempt) * (0.5 + self._rng.random() / 2))
                        continue
                    if following:
                        log.warning("a following step failed (%s: %s); running %s alone and queueing the rest",
                                    type(error).__name__, error, getattr(step, "__name__", step))
                        return self._run(step, args, kwargs, inline=False)
                    raise
            for hook in self.after_commit:
                hook(tx)
            return result
        raise AssertionError("unreachable")

    def statement_connection(self) -> Connection:
        """A connection for `run_statement`, in autocommit: each statement is its own
        transaction. The caller keeps it across calls (no checkout, no ping each time).
        On SQLite the sqlite3 connection is in autocommit already (closeloop.database),
        and SQLAlchemy's AUTOCOMMIT would hand it back to the pool with the sqlite3
        module's implicit transactions turned on: left as it is."""
        connection = self.engine.connect()
        if self.engine.dialect.name == "sqlite":
            return connection
        return connection.execution_options(isolation_level="AUTOCOMMIT")

    def run_statement(self, connection: Connection,
                      step: Callable[Concatenate[Connection, datetime, P], tuple[R, int]],
                      *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a step that is one SQL statement, on a `statement_connection`: on
        PostgreSQL a single statement is atomic and durable when it returns, with no
        BEGIN or COMMIT round trips. The step returns (result, outbox rows written).
        Retried like `run` on a serialization failure or a deadlock."""
        with self.gate():
            for attempt in range(1, self.max_retries + 1):
                try:
                    result, written = step(connection, self.clock.now(), *args, **kwargs)
                except Exception as error:
                    if attempt < self.max_retries and is_transient(error):
                        time.sleep(min(1.0, 0.01 * 2 ** attempt) * (0.5 + self._rng.random() / 2))
                        continue
                    raise
                for hook in self.after_commit:
                    hook(Committed(written))
                return result
        raise AssertionError("unreachable")

    def read(self, query: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a read-only query function in its own short transaction."""
        with self.gate(), self.sessions() as session:
            return query(session, *args, **kwargs)

