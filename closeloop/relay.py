"""The outbox relay: leases due messages, hands each to the adapter its kind routes
to, and records the outcome — done, retry later (exponential backoff with jitter), or
dead-lettered. Delivery is at least once; adapters de-duplicate by idempotency key.

Several relays may run at once (threads, processes, machines) against PostgreSQL; the
lease keeps them from delivering one message twice while it is held."""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from flows import outbox
from flows.ledger import Ledger, Tx
from adapters.crashpoints import crashpoint, delivering
from closeloop.logs import deal_context
from flows.outbox import Delivery, PermanentFailure, RetryAfter, RetryPolicy

log = logging.getLogger("closeloop.relay")

Handler = Callable[[Delivery], None]


@dataclass(frozen=True)
class Route:
    handler: Handler
    policy: RetryPolicy = field(default_factory=RetryPolicy)


class Relay:
    def __init__(self, ledger: Ledger, routes: Mapping[str, Route], *, lease_for: timedelta = timedelta(minutes=2),
                 batch: int = 10, owner: str | None = None, rng: random.Random | None = None,
                 max_hold: timedelta | None = None, handed_for: timedelta | None = None) -> None:
        self.ledger, self.routes = ledger, routes
        self.lease_for, self.batch = lease_for, batch
        self.max_hold = max_hold or lease_for * 10
        # A handed-out message waits in a task queue before its task claims it; see hand_out.
        self.handed_for = handed_for or lease_for * 10
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        self._wake = threading.Event()

    def drain_once(self) -> int:
        """Lease one batch and deliver it; returns how many messages were leased."""
        deliveries = self.ledger.run(self._lease)
        for delivery in deliveries:
            self._deliver(delivery)
        return len(deliveries)

    def drain(self, limit: int = 100_000) -> int:
        """Deliver until nothing is due now (tests, the demo, a one-shot task)."""
        total = 0
        while total < limit:
            leased = self.drain_once()
            if not leased:
                break
            total += leased
        return total

    def run_forever(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        while not stop.is_set():
            try:
                if self.drain_once():
                    continue
            except Exception:  # the database went away: log, wait, try again
                log.exception("relay: leasing failed")
            self._wake.wait(poll_seconds)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def _lease(self, tx: Tx) -> list[Delivery]:
        return outbox.lease(tx.session, tx.now, self.owner, self.lease_for, self.batch)

    def hand_out(self, limit: int, *, stream: str | None = None,
                 in_flight: int | None = None) -> list[tuple[int, str, str]]:
        """Lease due messages to tasks yet to be sent, one owner each (the Celery relay).

        The lease runs `handed_for`, not `lease_for`, until the task claims it: a task may
        wait in its queue behind others longer than a delivery's lease (found by the
        crash-point sweep: with 5 s leases and a hundred deals, queued tasks found their
        messages handed out again, the new tasks queued behind them expired in turn, and
        the workers spent minutes on tasks with nothing to do). A task lost with the broker
        leaves its message to the next dispatch after `handed_for`."""
        return self.ledger.run(lambda tx: outbox.hand_out(tx.session, tx.now, self.handed_for, limit,
                                                          stream=stream, in_flight=in_flight))

    def give_back(self, handed: list[tuple[int, str]]) -> int:
        """Hand-outs whose tasks were never sent, due again at once (see outbox.give_back)."""
        return self.ledger.run(lambda tx: outbox.give_back(tx.session, tx.now, handed, self.lease_for))

    def give_back_unclaimed(self) -> int:
        """Every hand-out no task has claimed, due again at once (see outbox.give_back_unclaimed)."""
        return self.ledger.run(lambda tx: outbox.give_back_unclaimed(tx.session, tx.now, self.lease_for))

    def deliver_handed(self, message_id: int, owner: str) -> Delivery | None:
        """Deliver one handed-out message as its owner; None when it is no longer ours."""
        delivery = self.ledger.run(lambda tx: outbox.claim(tx.session, message_id, owner, tx.now, self.lease_for))
        if delivery is not None:
            self._deliver(delivery, owner)
        return delivery

    def _deliver(self, delivery: Delivery, owner: str | None = None) -> None:
        with deal_context(deal=delivery.deal_id, kind=delivery.kind, message=delivery.id, attempt=delivery.attempt), \
                delivering(delivery):  # the adapters' crash points name this message
            self._deliver_as(delivery, owner or self.owner)

    def _deliver_as(self, delivery: Delivery, owner: str) -> None:
        route = self.routes.get(delivery.kind)
        if route is None:
            self._settle(delivery, owner, f"no adapter handles '{delivery.kind}' messages", retry_in=None)
            return
        if delivery.attempt > route.policy.max_attempts:
            self._settle(delivery, owner, f"gave up after {route.policy.max_attempts} attempts that never finished "
                                          "(the worker died or hung while delivering)", retry_in=None)
            return
        crashpoint("deliver.before", delivery)
        try:
            with self._keeping_lease(delivery, owner):
                route.handler(delivery)
        except PermanentFailure as error:
            self._settle(delivery, owner, f"permanent failure: {error}", retry_in=None)
        except RetryAfter as error:  # the service said when: wait exactly that, never less
            retry_in = timedelta(seconds=error.seconds) if delivery.attempt < route.policy.max_attempts else None
            self._settle(delivery, owner, str(error), retry_in=retry_in)
        except Exception as error:
            retry_in = None
            if delivery.attempt < route.policy.max_attempts:
                retry_in = route.policy.delay(delivery.attempt, self.rng)
            self._settle(delivery, owner, f"{type(error).__name__}: {error}", retry_in=retry_in)
        else:
            crashpoint("deliver.after", delivery)
            if not self.ledger.run(lambda tx: outbox.complete(tx.session, delivery, owner, tx.now)):
                log.warning("relay: lease on message %s was lost before completion; it will be delivered "
                            "again and de-duplicated by its key %s", delivery.id, delivery.idempotency_key)

    @contextmanager
    def _keeping_lease(self, delivery: Delivery, owner: str) -> Iterator[None]:
        """Renew the lease every third of its length while the handler runs. A delivery
        slower than the lease (a slow SMTP server, a big PDF) would otherwise be handed out
        again and run twice at once — the same email sent twice. A process that dies stops
        renewing, so its message is handed out again one lease later; a handler that hangs
        keeps it for at most `max_hold` (and a Celery task for its hard time limit)."""
        done = threading.Event()
        deadline = time.monotonic() + self.max_hold.total_seconds()

        def renew() -> None:
            every = max(0.05, self.lease_for.total_seconds() / 3)
            while not done.wait(every) and time.monotonic() < deadline:
                try:
                    if not self.ledger.run(lambda tx: outbox.renew(tx.session, delivery.id, owner, tx.now,
                                                                   self.lease_for)):
                        return  # no longer ours: nothing to keep
                except Exception:  # noqa: BLE001 — the database blinked: try at the next turn
                    log.warning("relay: could not renew the lease on message %s", delivery.id, exc_info=True)

        keeper = threading.Thread(target=renew, name=f"lease-{delivery.id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _settle(self, delivery: Delivery, owner: str, error: str, *, retry_in: timedelta | None) -> None:
        status = self.ledger.run(
            lambda tx: outbox.fail(tx.session, delivery, owner, tx.now, error, retry_in))
        if retry_in is None:
            log.error("relay: message %s (%s) dead-lettered: %s", delivery.id, delivery.kind, error)
        else:
            log.warning("relay: message %s (%s) attempt %s failed, retry in %s: %s",
                        delivery.id, delivery.kind, delivery.attempt, retry_in, error)
        if status is None:
            log.warning("relay: lease on message %s was lost before its failure was recorded", delivery.id)
