"""The one beat schedule: every clock-driven job, how often it runs, and what it does.

Celery beat reads it (closeloop/celery_app.py, exactly one beat process) and the
embedded process runs the same table in one thread (`EmbeddedBeat`). Every job is a
tick: it does what is due *now* by the ledger's clock and is harmless when repeated,
so nothing is ever scheduled as a long countdown that a broker could lose or redeliver."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from closeloop.config import Settings

log = logging.getLogger("closeloop.beat")


@dataclass(frozen=True)
class Tick:
    name: str
    every: Callable[[Settings], float]   # seconds, read from the settings
    run: Callable[[Any], Any]            # given the Services


def _billing(services: Any) -> Any:
    from flows.billing_run import billing_tick
    return billing_tick(services.ledger)


def _money(services: Any) -> Any:
    from closeloop.money import money_tick
    return money_tick(services.money)


def _gap_digest(services: Any) -> Any:
    from closeloop.gaps_wiring import digest_tick
    return digest_tick(services)


def _esign_reconcile(services: Any) -> Any:
    return services.esign.reconcile() if services.esign is not None else None


TICKS: tuple[Tick, ...] = (
    Tick("billing", lambda s: s.billing_tick_seconds, _billing),           # bill the periods due today
    Tick("money", lambda s: s.money_tick_seconds, _money),                 # charges, unknown outcomes, collections
    Tick("gap-digest", lambda s: s.scheduler_seconds, _gap_digest),        # queue today's digest once it is due
    Tick("esign-reconcile", lambda s: s.esign_reconcile_tick_seconds, _esign_reconcile),  # envelopes Connect missed
)
TICKS_BY_NAME = {tick.name: tick for tick in TICKS}


def run_tick(services: Any, name: str) -> Any:
    result = TICKS_BY_NAME[name].run(services)
    if result:
        log.info("tick %s: %s", name, result)
    return result


class EmbeddedBeat:
    """The schedule in one daemon thread of the all-in-one process: each tick at start,
    then every `every` seconds. A failing tick is logged and tried at its next turn."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closeloop-beat", daemon=True)

    def __enter__(self) -> EmbeddedBeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        settings = self.services.settings
        due = {tick.name: time.monotonic() for tick in TICKS}
        while not self._stop.is_set():
            for tick in TICKS:
                if time.monotonic() >= due[tick.name] and not self._stop.is_set():
                    try:
                        run_tick(self.services, tick.name)
                    except Exception:  # noqa: BLE001 — the next turn tries again; the others must run
                        log.exception("tick %s failed", tick.name)
                    due[tick.name] = time.monotonic() + tick.every(settings)
            self._stop.wait(max(0.05, min(due.values()) - time.monotonic()))
