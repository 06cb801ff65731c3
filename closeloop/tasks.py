"""The Celery tasks: the outbox relay as tasks, and the beat's ticks.

`dispatch` leases due outbox messages, each to the id of the task that will deliver
it, and sends one `deliver` task per message to the queue of its kind. `deliver`
claims its message as that owner (a task the broker hands out again after its worker
died claims it again, as the next attempt), delivers it through the same routes as
the embedded relay, then dispatches what became due, so a deal's next step does not
wait for the beat: the next message of its own stream (one indexed query, in the
in-flight slot it frees), or everything due when the delivery wrote to the outbox.
The outbox stays the record: a task lost with a broker restart leaves its message
handed out until the hand-out's lease runs out, and the next dispatch sends it again;
a worker that connects to the broker has those hand-outs sent again at once (`reclaim`). Nothing here
is scheduled ahead; every task is idempotent."""
from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps
from celery.signals import worker_process_init

from closeloop.bootstrap import Services, build
from closeloop.celery_app import app, make_app, queue_for
from closeloop.config import load_settings
from closeloop.logs import deal_context
from closeloop.schedule import run_tick

log = logging.getLogger("closeloop.tasks")
_services: Services | None = None
_lock = threading.Lock()
_wrote = threading.local()  # did a commit of this task write to the outbox?
DISPATCH_BATCH = 100


def services() -> Services:
    """This process's services, built on first use (after the pool forked it)."""
    global _services
    with _lock:
        if _services is None:
            _services = build(load_settings())
            _services.ledger.after_commit.append(_note_outbox_write)
        return _services


def _note_outbox_write(tx: Any) -> None:
    if tx.outbox_written:
        _wrote.outbox = True


@worker_process_init.connect
def _forget_parent_services(**_: Any) -> None:
    global _services  # a forked child must not share its parent's database connections
    _services = None


@app.task(name="closeloop.deliver", bind=True)
def deliver(self: Any, message_id: int) -> str:
    current = services()
    _wrote.outbox = False
    with deal_context(task=self.request.id, message=message_id):
        delivery = current.relay.deliver_handed(message_id, self.request.id)
    if delivery is None or _wrote.outbox:
        dispatch_due(current)
    else:  # nothing new was queued: only this stream's next message can have become due
        dispatch_stream(current, delivery.stream)
    return "delivered" if delivery is not None else "no longer ours"


@app.task(name="closeloop.dispatch")
def dispatch() -> int:
    return dispatch_due(services())


@app.task(name="closeloop.tick")
def tick(name: str) -> None:
    run_tick(services(), name)


@app.task(name="closeloop.reclaim")
def reclaim() -> int:
    """Sent each time a worker connects to the broker, which may have lost every queued
    task (a Redis restart without persistence, a machine rebooted): what was handed out
    and not yet claimed is handed out again now, not after the hand-out's lease
    (minutes). When nothing was lost, the old tasks find their owner gone and do nothing."""
    current = services()
    given = current.relay.give_back_unclaimed()
    if given:
        log.warning("connected to the broker: %d message(s) handed out again", given)
    return dispatch_due(current)


class _ReclaimOnConnect(bootsteps.StartStopStep):
    """Starts with the worker's consumer, and again each time it reconnects to the broker."""
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, parent: Any) -> None:
        reclaim.apply_async(queue="control")


app.steps["consumer"].add(_ReclaimOnConnect)


def dispatch_due(current: Services) -> int:
    """Hand out what is due, within the in-flight bound, and send a task for each."""
    return _send(current, current.relay.hand_out(DISPATCH_BATCH, in_flight=current.settings.dispatch_in_flight))


def dispatch_stream(current: Services, stream: str) -> int:
    """Hand out the next message of one stream, without counting what is in flight: the
    delivery that just finished freed the slot it takes."""
    return _send(current, current.relay.hand_out(1, stream=stream))


def _send(current: Services, handed: list[tuple[int, str, str]]) -> int:
    """One task per hand-out. When the broker refuses one, what was not sent is given back
    at once, so it waits for the next dispatch, not for the hand-out's lease to run out."""
    for sent, (message_id, kind, owner) in enumerate(handed):
        try:
            deliver.apply_async((message_id,), task_id=owner, queue=queue_for(kind))
        except Exception:
            current.relay.give_back([(m, o) for m, _, o in handed[sent:]])
            raise
    return len(handed)


def wake_dispatch_on_commit(current: Services) -> None:
    """In processes that are not workers (web, bot, mail watcher): a commit that wrote
    to the outbox asks for a dispatch at once instead of waiting for the beat. An app of
    its own for these settings: the module's app keeps the producer pool of the broker it
    first published to, so configuring it again later would go on sending there."""
    sender = make_app(current.settings)

    def wake(tx: Any) -> None:
        if tx.outbox_written:
            try:
                sender.send_task("closeloop.dispatch", queue="control", retry=False)
            except Exception:  # noqa: BLE001 — the broker is away: the beat's dispatch will find it
                log.warning("could not ask for a dispatch; the next beat will", exc_info=True)
    current.ledger.after_commit.append(wake)
