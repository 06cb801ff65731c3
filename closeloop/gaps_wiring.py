"""Wiring for completeness: the gap policy and digest schedule from settings, the
relay route that posts the digest, and the small scheduler thread of the embedded
`closeloop run` that ticks the digest step (Celery beat takes over with the
production issue: it calls the same step, `post_digest_if_due`, every few minutes)."""
from __future__ import annotations

import logging
import threading
from typing import Any

from adapters.gap_digest import GapDigestPoster
from adapters.slack import slack_client
from closeloop.config import Settings
from closeloop.relay import Route
from flows.gap_digest import DIGEST_KIND, DigestSchedule, post_digest_if_due
from flows.gaps import GapPolicy, parse_thresholds
from flows.outbox import RetryPolicy

log = logging.getLogger("closeloop.gaps")


def gap_policy(settings: Settings) -> GapPolicy:
    from closeloop.money import collections_policy  # the same suspension policy collections applies

    return GapPolicy(timezone=settings.timezone, overrides=parse_thresholds(settings.gap_thresholds),
                     collections=collections_policy(settings))


def digest_schedule(settings: Settings) -> DigestSchedule:
    return DigestSchedule.parse(settings.digest_time, settings.timezone)


def digest_poster(services: Any, folder: Any = None, *, slack: bool = True) -> GapDigestPoster:
    from closeloop.documents import all_customers_aging_pdf, company_from

    settings = services.settings
    client = slack_client(settings.slack_bot_token, settings.slack_api_url) if slack and settings.slack_enabled else None
    company = company_from(settings)
    return GapDigestPoster(services.ledger, gap_policy(settings), client=client,
                           channel=settings.slack_finance_channel, folder=folder or settings.outbox_dir,
                           aging_report=lambda day: all_customers_aging_pdf(services.ledger, company, day))


def gap_routes(services: Any, retry: RetryPolicy) -> dict[str, Route]:
    return {DIGEST_KIND: Route(digest_poster(services).post, retry)}


def digest_tick(services: Any) -> Any:
    """One tick of the schedule: queue today's digest if it is due and not yet queued."""
    return services.ledger.run(post_digest_if_due, gap_policy(services.settings), digest_schedule(services.settings))


class GapScheduler:
    """Ticks the digest step every CLOSELOOP_SCHEDULER_SECONDS in a daemon thread."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closeloop-scheduler", daemon=True)

    def __enter__(self) -> GapScheduler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                day = digest_tick(self.services)
                if day is not None:
                    log.info("gap digest for %s queued", day)
            except Exception:  # noqa: BLE001 — a failed tick is retried at the next one
                log.exception("gap digest tick failed")
            self._stop.wait(self.services.settings.scheduler_seconds)
