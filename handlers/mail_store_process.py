"""Fetched mail stored by a process of its own, so the IMAP FETCH never waits for it.

In one process the fetch (imapclient parsing the FETCH response) and the store
(identity, de-duplication, INSERT, checkpoint) take turns on the GIL: ingestion ran
at 1 / (1/fetch + 1/store), about 46 % of the raw FETCH rate, though each alone runs
near it (bench.mail_ingest). Here the store runs in a child process and the two
overlap: the watcher hands a batch over and fetches the next while it is stored.

What holds as before: one batch in flight, stored with its checkpoint in one
transaction in the child, and the watcher waits for it before handing over the
next, so the checkpoint never passes a batch not stored. The transaction's time is
the parent's clock (tests move it). A child that dies takes its batch with it
uncommitted: the store raises, the watcher reconnects and fetches the batch again,
and a fresh child stores it."""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from sqlalchemy.engine import make_url

from adapters.imap_watcher import Fetched, Mailbox
from flows.ledger import Ledger

log = logging.getLogger("closeloop.mail")


class StoreProcess:
    """A child process holding its own database connection, storing batches for the
    watchers of this process (one at a time)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @staticmethod
    def can_serve(database_url: str) -> bool:
        """A database another process can open: not SQLite in memory."""
        url = make_url(database_url)
        return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))

    def start(self) -> None:
        """Start the child and wait until it is ready (imports, connection): about a second."""
        self._executor().submit(_ready).result()

    def store(self, mailbox: Mailbox, uidvalidity: int, batch: list[Fetched], last_uid: int,
              now: datetime) -> tuple[int, int]:
        """Store the batch and move the checkpoint in the child; (stored, duplicates)."""
        items = [(item.uid, item.raw) for item in batch]
        try:
            return self._executor().submit(_store, mailbox.name, mailbox.role, uidvalidity, last_uid,
                                           items, now).result()
        except BrokenProcessPool:
            # The child died (killed, out of memory): nothing of this batch was committed.
            log.error("mail: the store process died; a new one takes the next attempt")
            self._discard()
            raise

    def pid(self) -> int:
        """The child's process id (started if need be)."""
        return self._executor().submit(os.getpid).result()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the parent has threads (watchers, the classifier) and open connections.
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_open, initargs=(self.database_url,))
            return self._pool

    def _discard(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# --- in the child ----------------------------------------------------------------------

class _GivenClock:
    """The parent's time for the transaction at hand."""
    at: datetime

    def now(self) -> datetime:
        return self.at


_child: dict[str, object] = {}


def _open(database_url: str) -> None:
    from closeloop.database import make_engine
    from flows.ledger import Ledger
    clock = _GivenClock()
    _child.update(ledger=Ledger(make_engine(database_url), clock), clock=clock)  # type: ignore[arg-type]


def _ready() -> bool:
    return "ledger" in _child


def _store(mailbox: str, role: str, uidvalidity: int, last_uid: int, items: list[tuple[int, bytes]],
           now: datetime) -> tuple[int, int]:
    ledger, clock = _child["ledger"], _child["clock"]
    assert isinstance(ledger, Ledger) and isinstance(clock, _GivenClock)
    clock.at = now
    return store_fetched(ledger, mailbox, role, uidvalidity, last_uid, items)


def store_fetched(ledger: Ledger, mailbox: str, role: str, uidvalidity: int, last_uid: int,
                  items: list[tuple[int, bytes]]) -> tuple[int, int]:
    """One batch as fetched, its identity read from the bytes, stored with the
    checkpoint (here or in the child); (stored, duplicates)."""
    from flows.mail import RawMail, store_raw
    from handlers.mail_read import identity
    raws = [RawMail(uid, raw, *identity(raw)) for uid, raw in items]
    stored = ledger.run(store_raw, mailbox=mailbox, role=role, uidvalidity=uidvalidity, last_uid=last_uid,
                        messages=raws)
    return stored.pending, stored.duplicates
