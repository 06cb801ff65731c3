"""The life of a gap: found by an evaluation, kept while the rules still return it,
snoozed by a person (with a reason and an end date, on the timeline), and resolved by
itself when the next evaluation no longer returns it — the missing step happened.

`evaluate_gaps` runs every rule once and updates the states in a fixed number of
statements (bulk insert, bulk update), however many gaps or deals there are. The read
views at the bottom list what people see: open gaps, totals per rule, what changed."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, insert, select, text, update
from sqlalchemy.orm import Session

from flows.errors import InvalidInput
from flows.finance_views import Page
from flows.gap_models import GapRun, GapState
from flows.gaps import AGING_BUCKETS, RULES, RULES_BY_NAME, GapPolicy, Rule
from flows.ledger import Tx
from flows.money import Money
from flows.parties import Customer
from flows.steps import Done

_TABLE = GapState.__table__
_TRACKED = ("owner", "customer_id", "deal_id", "amount", "currency", "ref", "detail")


@dataclass(frozen=True)
class Found:
    rule: str
    entity_id: int
    owner: str
    customer_id: int | None
    deal_id: int | None
    amount: int | None
    currency: str | None
    since: datetime
    ref: str | None
    detail: str | None

    def tracked(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _TRACKED)


@dataclass(frozen=True)
class Evaluation:
    open: int
    opened: int
    resolved: int
    snoozes_ended: int
    queries: int  # rule queries run: one per rule, whatever the ledger's size


def scan(session: Session, policy: GapPolicy, now: datetime, rules: Collection[Rule] = RULES) -> dict[tuple[str, int], Found]:
    """Run every rule once; the gaps they return, by (rule, entity id)."""
    tune(session)
    found: dict[tuple[str, int], Found] = {}
    for rule in rules:
        ctx = policy.context(rule, now)
        for row in session.execute(rule.query(ctx)):  # plain tuples in COLUMNS order: thousands of rows
            entity_id, customer_id, deal_id, owner, amount, currency, since, ref, _ = row
            key = (rule.name, int(entity_id))
            if key in found:  # e.g. a customer overdue in two currencies: one gap per license
                continue
            detail = None
            if rule.finish is not None:
                amount, detail = rule.finish(row._mapping, ctx.threshold)
            found[key] = Found(rule.name, key[1], str(owner), _int(customer_id), _int(deal_id), _int(amount),
                               currency if amount is not None else None, _instant(since, policy, now),
                               _clip(ref, 120), _clip(detail, 300))
    return found


def tune(session: Session) -> None:
    """For this transaction only: PostgreSQL's JIT compiles plans whose cost estimate is
    high (over a large ledger) and spends longer compiling than these short indexed
    queries take; and the ledger is hot (cached, on SSD), so index probes are cheap."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL random_page_cost = 1.1"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))  # small queries: no workers


def evaluate_gaps(tx: Tx, policy: GapPolicy) -> Evaluation:
    """Run all rules and bring the gap states up to date: new gaps open, gaps no rule
    returns any more are resolved, ended snoozes are noted on the timeline."""
    tx.next_number("gap-evaluation")  # a row lock (a write lock on SQLite): evaluations queue, never race
    session, now = tx.session, tx.now
    found = scan(session, policy, now)
    open_rows = session.execute(select(
        GapState.id, GapState.rule, GapState.entity_id, GapState.snoozed_until, GapState.snoozed_by,
        *(getattr(GapState, name) for name in _TRACKED)).where(GapState.resolved_at.is_(None))).all()
    resolved, changed, ended = [], [], []
    seen: set[tuple[str, int]] = set()
    for row in open_rows:
        key = (row.rule, row.entity_id)
        gap = found.get(key)
        if gap is None:
            resolved.append({"gid": row.id})
            continue
        seen.add(key)
        if tuple(getattr(row, name) for name in _TRACKED) != gap.tracked():
            changed.append({"gid": row.id, **{f"n_{name}": getattr(gap, name) for name in _TRACKED}})
        if row.snoozed_until is not None and row.snoozed_until <= now:
            ended.append({"gid": row.id})
            tx.record("gap.snooze_ended", deal_id=gap.deal_id, customer_id=gap.customer_id,
                      gap=f"{gap.rule}:{gap.entity_id}", snoozed_by=row.snoozed_by)
    where_id = _TABLE.c.id == bindparam("gid")
    if resolved:
        session.execute(update(_TABLE).where(where_id).values(resolved_at=now), resolved)
    if changed:
        session.execute(update(_TABLE).where(where_id).values(**{name: bindparam(f"n_{name}") for name in _TRACKED}),
                        changed)
    if ended:
        session.execute(update(_TABLE).where(where_id).values(snoozed_until=None, snooze_reason=None,
                                                               snoozed_by=None), ended)
    session.execute(update(_TABLE).where(_TABLE.c.resolved_at.is_(None)).values(last_seen=now))
    new = [{"rule": g.rule, "entity_id": g.entity_id, "since": g.since, "first_seen": now, "last_seen": now,
            **{name: getattr(g, name) for name in _TRACKED}} for key, g in found.items() if key not in seen]
    if new:
        session.execute(insert(_TABLE), new)
    result = Evaluation(len(found), len(new), len(resolved), len(ended), len(RULES))
    session.add(GapRun(ran_at=now, open=result.open, opened=result.opened, resolved=result.resolved,
                       queries=result.queries))
    return result


def snooze_gap(tx: Tx, gap_id: int, *, until: date, reason: str, actor: str) -> Done:
    """Hide an open gap until the start of `until` (the company's day), for a reason.
    It comes back then if it is still open; it resolves meanwhile if the step happens."""
    gap = tx.get(GapState, gap_id)
    if gap.resolved_at is not None:
        raise InvalidInput(f"gap {gap.key} was resolved on {gap.resolved_at:%Y-%m-%d}; nothing to snooze")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("say why the gap is snoozed, for the timeline")
    zone = ZoneInfo(tx.policy.timezone)
    today = tx.now.astimezone(zone).date()
    if not today < until <= today + timedelta(days=366):
        raise InvalidInput(f"snooze until a day after today ({today}) and within a year")
    instant = datetime.combine(until, datetime.min.time(), zone).astimezone(timezone.utc)
    if gap.snoozed_until == instant and gap.snooze_reason == reason[:300]:
        return Done.ALREADY
    gap.snoozed_until, gap.snooze_reason, gap.snoozed_by = instant, reason[:300], actor
    tx.record("gap.snoozed", deal_id=gap.deal_id, customer_id=gap.customer_id, actor=actor, gap=gap.key,
              until=until.isoformat(), reason=reason[:300])
    return Done.ACTED


# --- what people see ----------------------------------------------------------------------

@dataclass(frozen=True)
class GapView:
    id: int
    rule: str
    title: str
    entity_id: int
    owner: str
    customer_id: int | None
    customer: str | None
    deal_id: int | None
    amount: Money | None
    since: datetime
    age_days: int
    ref: str | None
    detail: str | None
    first_seen: datetime
    resolved_at: datetime | None
    snoozed_until: datetime | None
    snooze_reason: str | None
    snoozed_by: str | None
    action: str | None

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.entity_id}"

    @property
    def label(self) -> str:
        """What people call the thing the gap is about."""
        if self.ref:
            return self.ref
        return f"D-{self.deal_id}" if self.deal_id else f"{RULES_BY_NAME[self.rule].entity} {self.entity_id}"


@dataclass(frozen=True)
class RuleTotal:
    rule: str
    title: str
    count: int
    totals: tuple[Money, ...]  # at stake, one per currency


def _open(now: datetime, snoozed: bool = False) -> Any:
    where = GapState.resolved_at.is_(None)
    awake = GapState.snoozed_until.is_(None) | (GapState.snoozed_until <= now)
    return where & (~awake if snoozed else awake)


def list_gaps(session: Session, now: datetime, *, owners: Collection[str] | None = None, rule: str | None = None,
              customer_id: int | None = None, snoozed: bool = False, offset: int = 0,
              limit: int | None = 20) -> Page[GapView]:
    """Open gaps (or the snoozed ones), most at stake first, then the oldest."""
    where = _open(now, snoozed)
    if owners is not None:
        where &= GapState.owner.in_(list(owners))
    if rule is not None:
        where &= GapState.rule == rule
    if customer_id is not None:
        where &= GapState.customer_id == customer_id
    query = (select(GapState, Customer.name).outerjoin(Customer, Customer.id == GapState.customer_id).where(where)
             .order_by(GapState.amount.is_(None), GapState.amount.desc(), GapState.since, GapState.id)
             .offset(offset).limit(limit))
    items = tuple(_view(row, name, now) for row, name in session.execute(query))
    total = session.scalar(select(func.count(GapState.id)).where(where)) or 0
    return Page(items, offset, total)


def rule_totals(session: Session, now: datetime) -> list[RuleTotal]:
    """Open gaps per rule with the amount at stake per currency (in the rules' order)."""
    counts: dict[str, int] = {}
    totals: dict[str, list[Money]] = {}
    for rule, currency, count, amount in session.execute(
            select(GapState.rule, GapState.currency, func.count(GapState.id), func.sum(GapState.amount))
            .where(_open(now)).group_by(GapState.rule, GapState.currency).order_by(GapState.currency)):
        counts[rule] = counts.get(rule, 0) + count
        if currency is not None and amount is not None:
            totals.setdefault(rule, []).append(Money(int(amount), currency))
    return [RuleTotal(r.name, r.title, counts[r.name], tuple(totals.get(r.name, ()))) for r in RULES if r.name in counts]


def opened_since(session: Session, since: datetime, now: datetime, *, limit: int = 10) -> Page[GapView]:
    where = (GapState.first_seen >= since) & _open(now)
    return _page(session, where, now, limit, GapState.first_seen.desc())


def resolved_since(session: Session, since: datetime, now: datetime, *, limit: int = 10) -> Page[GapView]:
    where = GapState.resolved_at >= since
    return _page(session, where, now, limit, GapState.resolved_at.desc())


def overdue_aging(session: Session, today: date, policy: GapPolicy) -> dict[str, dict[str, int]]:
    """Open overdue-invoice gaps by aging bucket: bucket -> currency -> amount at stake."""
    start = policy.start_of
    bucket = case(*((GapState.since > start(today - timedelta(days=most + 1)), label)
                    for label, (_, most) in AGING_BUCKETS.items() if most is not None),
                  else_=list(AGING_BUCKETS)[-1])
    found: dict[str, dict[str, int]] = {label: {} for label in AGING_BUCKETS}
    for label, currency, amount in session.execute(
            select(bucket, GapState.currency, func.sum(GapState.amount))
            .where(GapState.rule == "invoice-overdue", GapState.resolved_at.is_(None))
            .group_by(bucket, GapState.currency)):
        if currency is not None:
            found[label][currency] = int(amount or 0)
    return found


def gap(session: Session, gap_id: int, now: datetime) -> GapView:
    row = session.execute(select(GapState, Customer.name).outerjoin(Customer, Customer.id == GapState.customer_id)
                          .where(GapState.id == gap_id)).first()
    if row is None:
        raise InvalidInput(f"there is no gap {gap_id}")
    return _view(row[0], row[1], now)


def last_run(session: Session) -> datetime | None:
    return session.scalar(select(func.max(GapRun.ran_at)))


def _page(session: Session, where: Any, now: datetime, limit: int, order: Any) -> Page[GapView]:
    rows = session.execute(select(GapState, Customer.name).outerjoin(Customer, Customer.id == GapState.customer_id)
                           .where(where).order_by(order, GapState.id).limit(limit))
    items = tuple(_view(row, name, now) for row, name in rows)
    return Page(items, 0, session.scalar(select(func.count(GapState.id)).where(where)) or 0)


def _view(row: GapState, customer: str | None, now: datetime) -> GapView:
    rule = RULES_BY_NAME.get(row.rule)
    amount = Money(row.amount, row.currency) if row.amount is not None and row.currency else None
    return GapView(row.id, row.rule, rule.title if rule else row.rule, row.entity_id, row.owner, row.customer_id,
                   customer, row.deal_id, amount, row.since, max(0, (now - row.since).days), row.ref, row.detail,
                   row.first_seen, row.resolved_at, row.snoozed_until, row.snooze_reason, row.snoozed_by,
                   rule.action if rule else None)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is str and len(value) <= limit:
        return value
    text = str(getattr(value, "value", value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _instant(value: Any, policy: GapPolicy, now: datetime) -> datetime:
    """A rule's `since` as an instant: dates are the start of that company day."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str):  # an expression SQLite hands back untyped
        value = datetime.fromisoformat(value) if " " in value or "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return policy.start_of(value).astimezone(timezone.utc)
    return now
