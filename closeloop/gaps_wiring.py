"""Wiring for completeness: the gap policy and digest schedule from settings, the
relay route that posts the digest, and the small scheduler thread of the embedded
`closeloop run` that ticks the digest step (Celery beat takes over with the
production issue: it calls the same step, `post_digest_if_due`, every few minutes)."""
from __future__ import annotations

import logging
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
