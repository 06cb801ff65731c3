"""The daily gap digest for finance: decided by a short step the scheduler may call as
often as it likes ("is it due today and not yet posted?" — no long countdowns), and
claimed once per company day: the digest's row and its outbox row are written in one
transaction, and a second tick (or a second scheduler) finds the day taken.

`digest_data` is what the digest says; the Slack rendering and the files (chart, CSV,
aging PDF) are made by adapters/gap_digest.py when the relay delivers it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flows.finance_views import Page
from flows.gap_models import GapDigest
from flows.gap_states import (GapView, RuleTotal, evaluate_gaps, list_gaps, opened_since, overdue_aging,
                              resolved_since, rule_totals)
from flows.gaps import GapPolicy
from flows.ledger import Tx

DIGEST_KIND = "slack.gap_digest"


@dataclass(frozen=True)
class DigestSchedule:
    at: time                 # local time of day
    timezone: str = "UTC"

    @classmethod
    def parse(cls, hhmm: str, timezone: str) -> DigestSchedule:
        hours, _, minutes = hhmm.partition(":")
        return cls(time(int(hours), int(minutes)), timezone)

    def due_day(self, now: datetime) -> date | None:
        """Today (the company's), once the digest time has passed; else None."""
        local = now.astimezone(ZoneInfo(self.timezone))
        return local.date() if local.time() >= self.at else None


def post_digest_if_due(tx: Tx, policy: GapPolicy, schedule: DigestSchedule) -> date | None:
    """The scheduler's step: when today's digest is due and not yet claimed, bring the
    gaps up to date, claim the day and queue the digest. Returns the day queued, or None."""
    day = schedule.due_day(tx.now)
    if day is None or tx.session.get(GapDigest, day) is not None:
        return None
    evaluate_gaps(tx, policy)
    previous = tx.session.scalar(select(func.max(GapDigest.claimed_at)))
    since = previous or tx.now - timedelta(days=1)
    if not _claim(tx, day, since):
        return None  # another tick claimed it while we waited for the evaluation lock
    tx.enqueue(DIGEST_KIND, {"date": day.isoformat(), "since": since.isoformat()}, key=f"gap.digest:{day}",
               deal_id=None, stream="gap.digest")
    tx.record("gap.digest_queued", deal_id=None, customer_id=None, date=day.isoformat())
    return day


def _claim(tx: Tx, day: date, since: datetime) -> bool:
    if tx.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    claimed = tx.session.execute(
        insert(GapDigest).values(digest_date=day, claimed_at=tx.now, since=since)
        .on_conflict_do_nothing().returning(GapDigest.digest_date)).first()
    return claimed is not None


@dataclass(frozen=True)
class Digest:
    day: date
    since: datetime
    now: datetime
    totals: list[RuleTotal]
    opened: Page[GapView]
    resolved: Page[GapView]
    top: Page[GapView]
    aging: dict[str, dict[str, int]]  # bucket -> currency -> overdue amount
    everything: tuple[GapView, ...]   # the full list, for the CSV


def digest_data(session: Session, day: date, since: datetime, now: datetime, policy: GapPolicy,
                *, top: int = 12) -> Digest:
    return Digest(day, since, now, rule_totals(session, now), opened_since(session, since, now),
                  resolved_since(session, since, now), list_gaps(session, now, limit=top),
                  overdue_aging(session, policy.today(now), policy), list_gaps(session, now, limit=None).items)
