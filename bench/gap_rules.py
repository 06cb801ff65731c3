"""All completeness gap rules over a generated ledger: total time, queries issued, plans,
and what doubling the ledger does to the time.

For each backend it migrates a fresh database (a temporary SQLite file, a temporary
PostgreSQL database), generates N deals with their quotes, invoices (two lines each),
licenses, subscriptions and periods, charges and charge plans, signature envelopes,
timeline events, outbox rows, outbound and inbound mail and external invoice PDFs with bulk INSERT … SELECT over generate_series (a recursive CTE on SQLite) —
the generation is timed apart — and then times:

  * every rule's query (flows.gaps.RULES, one statement each) and all of them together
    (flows.gap_states.scan), with the number of statements counted by SQLAlchemy's
    before_cursor_execute event;
  * evaluate_gaps, the whole lifecycle step (first run, then steady state);
  * the query plans (EXPLAIN / EXPLAIN QUERY PLAN), with --plans;
  * the doubling check: N more deals are generated (2N in all) and the rules timed again;
    the ratio time(2N) / time(N) is printed beside the target (at most 2).

    .venv/bin/python -m bench.gap_rules          # N = 500,000 PG and 50,000 SQLite, then doubled: the issue's sizes
    .venv/bin/python -m bench.gap_rules --pg-deals 100000 --sqlite-deals 20000 --plans
    .venv/bin/python -m bench.gap_rules --backend sqlite --sqlite-deals 100000

Targets (issue 8): all rules under 2 s on PostgreSQL for 1M deals, under 1 s on SQLite
for 100k; the number of queries independent of the size; doubling at most doubles the
time. Not a test: it asserts nothing about speed; it exits non-zero only when something
breaks (a rule errors, PostgreSQL is unreachable: exit 2)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from closeloop import migrate
from closeloop.database import make_engine
from flows.catalog import Sku
from flows.catalog_file import read_catalog
from flows.clock import ManualClock
from flows.collections import CollectionsPolicy
from flows.gap_states import evaluate_gaps, scan, tune
from flows.gaps import RULES, GapPolicy
from flows.ledger import Ledger
from flows.steps import load_catalog
from flows.usage import UsageLine, record_vendor_usage

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
TARGETS = {"postgresql": 2.0, "sqlite": 1.0}  # seconds for all rules at the issue's sizes
ISSUE_SIZE = {"postgresql": 1_000_000, "sqlite": 100_000}
# the suspension rule needs a policy to apply (CLOSELOOP_SUSPEND_OVER=EUR=1000.00, 30 days)
POLICY = GapPolicy(collections=CollectionsPolicy(suspend_over={"EUR": 100000}, suspend_after_days=30))


# --- generating the ledger ----------------------------------------------------------------

class Sql:
    """The few expressions that differ between the backends."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def prefix(self) -> str:
        return "" if self.pg else ("WITH RECURSIVE g(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM g WHERE i < :hi) ")

    def series(self) -> str:
        return "generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g(i)" if self.pg else "g"

    def ago(self, days: str) -> str:
        """An instant `days` days before NOW (negative: after)."""
        if self.pg:
            return f"(CAST(:now AS timestamptz) - make_interval(days => CAST({days} AS int)))"
        return f"(datetime(:now, printf('%+d days', -({days}))) || '.000000')"

    def day(self, days: str) -> str:
        """The date `days` days before today."""
        return f"(CAST(:today AS date) - CAST({days} AS int))" if self.pg else f"date(:today, printf('%+d days', -({days})))"

    def plus_month(self, date_sql: str) -> str:
        return f"CAST({date_sql} + interval '1 month' AS date)" if self.pg else f"date({date_sql}, '+1 month')"

    def json(self, literal: str) -> str:
        return f"CAST('{literal}' AS json)" if self.pg else f"'{literal}'"

    def qty(self, n: int) -> str:
        return str(n) if self.pg else f"'{n}'"

    def blob(self) -> str:
        return "CAST('' AS bytea)" if self.pg else "X''"


# Deals by i % 1000, as in a healthy business: most bill; about 1 % each are quoted or
# sent, a few sit in every other stage; 1 % of customers owe on a few invoices.
STAGE = ("CASE WHEN i % 1000 < 970 THEN 'billing_active' WHEN i % 1000 < 980 THEN 'quoted' "
         "WHEN i % 1000 < 990 THEN 'sent' WHEN i % 1000 = 990 THEN 'signed' WHEN i % 1000 = 991 THEN 'won' "
         "WHEN i % 1000 = 992 THEN 'invoiced' WHEN i % 1000 = 993 THEN 'licensed' ELSE 'void' END")
INVOICED = "(i % 1000 < 970 OR i % 1000 IN (992, 993))"
LICENSED = "(i % 1000 < 970 OR i % 1000 = 993)"
BILLING = "(i % 1000 < 970)"
UNPAID = "(((i - 1) / 10) % 100 = 1 AND i % 3 = 0)"
SENT = "(i % 1000 >= 980 AND i % 1000 < 990)"


def statements(sql: Sql, seat: int, setup: int) -> list[tuple[str, str]]:
    p, s, ago, day = sql.prefix(), sql.series(), sql.ago, sql.day
    customer = "((i - 1) / 10 + 1)"
    return [
        ("customers", f"{p}INSERT INTO customers (id, name, country, language, currency, created_at) "
                      f"SELECT {customer}, 'Customer ' || i, 'DE', 'en', 'EUR', {ago('400')} FROM {s} WHERE i % 10 = 1"),
        ("contacts", f"{p}INSERT INTO contacts (id, customer_id, name, email, role, bounced_at) "
                     f"SELECT {customer}, {customer}, 'Billing ' || i, 'billing' || i || '@example.com', 'billing', "
                     f"CASE WHEN i % 50000 = 1 THEN {ago('2')} END FROM {s} WHERE i % 10 = 1"),
        ("deals", f"{p}INSERT INTO deals (id, customer_id, owner, stage, currency, amount, origin_key, created_at, "
                  f"stage_changed_at, won_at) SELECT i, {customer}, 'U' || (i % 20), {STAGE}, 'EUR', 228000, "
                  f"'bench:' || i, {ago('120 + i % 300')}, {ago('i % 60')}, "
                  f"CASE WHEN {INVOICED} OR i % 1000 = 991 THEN {ago('i % 60')} END FROM {s}"),
        ("quotes", f"{p}INSERT INTO quotes (id, number, deal_id, customer_id, owner, currency, current_version, "
                   f"created_at) SELECT i, 'Q-B-' || i, i, {customer}, 'U' || (i % 20), 'EUR', 1, {ago('120')} "
                   f"FROM {s}"),
        ("quote_versions", f"{p}INSERT INTO quote_versions (id, quote_id, version, discount_bp, valid_until, "
                           f"payment_terms_days, net, tax, content_hash, origin_key, created_at, sent_at, approval) "
                           f"SELECT i, i, 1, 0, {day('-(i % 60) + 20')}, 30, 190000, 38000, 'h', 'bench:v:' || i, "
                           f"{ago('120')}, {ago('i % 60')}, 'not_needed' FROM {s}"),
        ("invoices", f"{p}INSERT INTO invoices (id, deal_id, customer_id, purpose_key, status, currency, net, tax, "
                     f"amount_paid, series, sequence, number, payment_terms_days, created_at, issued_at, due_on) "
                     f"SELECT i, i, {customer}, 'deal:' || i, CASE WHEN {UNPAID} THEN 'issued' ELSE 'paid' END, "
                     f"'EUR', 190000, 38000, CASE WHEN {UNPAID} THEN 0 ELSE 228000 END, 'INV-B', i, 'INV-B-' || i, "
                     f"30, {ago('i % 150')}, {ago('i % 150')}, {day('i % 150 - 30')} FROM {s} WHERE {INVOICED}"),
        ("invoice_lines (seats)", f"{p}INSERT INTO invoice_lines (id, invoice_id, position, sku_id, description, "
                                  f"quantity, unit_amount, tax_rate_bp, net, period_start, period_end) "
                                  f"SELECT 2 * i - 1, i, 1, {seat}, 'seats', {sql.qty(10)}, 4000, 2000, 40000, "
                                  f"{day('i % 150')}, {sql.plus_month(day('i % 150'))} FROM {s} WHERE {INVOICED}"),
        ("invoice_lines (setup)", f"{p}INSERT INTO invoice_lines (id, invoice_id, position, sku_id, description, "
                                  f"quantity, unit_amount, tax_rate_bp, net) SELECT 2 * i, i, 2, {setup}, 'setup', "
                                  f"{sql.qty(1)}, 150000, 2000, 150000 FROM {s} WHERE {INVOICED}"),
        ("licenses", f"{p}INSERT INTO licenses (id, deal_id, customer_id, sku_id, product, seats, features, status, "
                     f"valid_from, status_changed_at) SELECT i, i, {customer}, {seat}, 'PRO-SEAT', 10, "
                     f"{sql.json('[]')}, CASE WHEN i % 1000 = 3 THEN 'suspended' ELSE 'active' END, "
                     f"{ago('i % 60')}, {ago('i % 60')} FROM {s} WHERE {LICENSED}"),
        ("subscriptions", f"{p}INSERT INTO subscriptions (id, deal_id, customer_id, sku_id, quantity, unit_amount, "
                          f"tax_rate_bp, currency, interval, anchor, status, started_at, next_index, next_start) "
                          f"SELECT i, i, {customer}, {seat}, {sql.qty(10)}, 4000, 2000, 'EUR', 'month', "
                          f"{day('i % 28')}, CASE WHEN i % 1000 = 5 THEN 'cancelled' ELSE 'active' END, "
                          f"{ago('i % 28')}, 1, CASE WHEN i % 1000 = 5 THEN NULL ELSE "
                          f"{sql.plus_month(day('CASE WHEN i % 1000 = 7 THEN 40 ELSE i % 28 END'))} END "
                          f"FROM {s} WHERE {BILLING}"),
        ("subscription_periods", f"{p}INSERT INTO subscription_periods (id, subscription_id, \"index\", "
                                 f"start, \"end\", invoice_id) SELECT i, i, 0, "
                                 f"{day('CASE WHEN i % 1000 = 7 THEN 40 ELSE i % 28 END')}, "
                                 f"{sql.plus_month(day('CASE WHEN i % 1000 = 7 THEN 40 ELSE i % 28 END'))}, i "
                                 f"FROM {s} WHERE {BILLING}"),
        ("charges", f"{p}INSERT INTO charges (id, invoice_id, attempt, idempotency_key, amount, currency, status, "
                    f"gateway, created_at) SELECT i, i, CASE WHEN i % 200 = 1 THEN 4 ELSE 1 END, 'charge:' || i, "
                    f"228000, 'EUR', CASE WHEN i % 1000 = 15 THEN 'unknown' ELSE 'failed' END, 'bench', {ago('1')} "
                    f"FROM {s} WHERE {INVOICED} AND {UNPAID}"),
        ("charge_plans", f"{p}INSERT INTO charge_plans (id, invoice_id, customer_id, gateway, status, attempts, "
                         f"next_attempt_at, first_declined_at, last_code, updated_at) SELECT i, i, {customer}, "
                         f"'bench', CASE WHEN i % 20 = 12 THEN 'exhausted' ELSE 'scheduled' END, 1, "
                         f"CASE WHEN i % 20 = 12 THEN NULL ELSE {ago('-1')} END, {ago('1')}, 'card_declined', "
                         f"{ago('1')} FROM {s} WHERE {INVOICED} AND {UNPAID}"),
        ("signature_envelopes", f"{p}INSERT INTO signature_envelopes (id, deal_id, quote_version_id, provider, "
                                f"status, requested_at, status_changed_at, signer_email) SELECT i, i, i, 'email', "
                                f"CASE WHEN i % 1000 = 985 THEN 'expired' WHEN {SENT} THEN 'delivered' "
                                f"ELSE 'completed' END, {ago('i % 60')}, {ago('i % 60')}, 'signer' || i || "
                                f"'@example.com' FROM {s} WHERE i % 1000 >= 980 OR i % 1000 < 970"),
        ("outbound_mail", f"{p}INSERT INTO outbound_mail (id, key, message_id, deal_id, template, recipients, "
                          f"subject, status, error, created_at, sent_at) SELECT i, 'bench:m:' || i, "
                          f"'<bench-out' || i || '@example.com>', i, 'invoice', {sql.json('[]')}, 'Invoice', "
                          f"CASE WHEN i % 10000 = 9 THEN 'failed' ELSE 'sent' END, '', {ago('i % 30')}, "
                          f"{ago('i % 30')} FROM {s} WHERE {INVOICED}"),
        ("inbound_mail", f"{p}INSERT INTO inbound_mail (id, mailbox, role, uidvalidity, uid, message_id, "
                         f"content_hash, raw, subject, kind, text, deal_id, status, reason, received_at) "
                         f"SELECT i, 'INBOX', 'finance', 1, i, '<bench' || i || '@example.com>', 'h', {sql.blob()}, "
                         f"'Re: invoice', 'reply', '', CASE WHEN i % 10000 = 3 THEN NULL ELSE i END, "
                         f"CASE WHEN i % 10000 = 3 THEN 'triage' ELSE 'routed' END, '', {ago('i % 30')} "
                         f"FROM {s} WHERE i % 10 = 3"),
        ("external_invoices", f"{p}INSERT INTO external_invoices (id, source, number, gross, currency, status, "
                              f"deal_id, match_reason, received_at) SELECT i, 'bench:x:' || i, 'AC-' || i, 228000, "
                              f"'EUR', CASE WHEN i % 10000 = 5 THEN 'unmatched' ELSE 'matched' END, "
                              f"CASE WHEN i % 10000 = 5 THEN NULL ELSE i END, 'bench', {ago('i % 30')} "
                              f"FROM {s} WHERE i % 100 = 5"),
        ("events", f"{p}INSERT INTO events (id, uid, deal_id, customer_id, kind, actor, data, occurred_at) "
                   f"SELECT i + 100, 'bench' || i, i, {customer}, 'invoice.issued', 'closeloop', {sql.json('{}')}, "
                   f"{ago('(i * 37) % 150')} FROM {s} WHERE {INVOICED}"),
        ("outbox", f"{p}INSERT INTO outbox (id, kind, stream, deal_id, payload, idempotency_key, status, attempts, "
                   f"available_at, created_at, done_at) SELECT i, 'slack.deal_thread', 'deal:' || i, i, "
                   f"{sql.json('{}')}, 'bench:o:' || i, CASE WHEN i % 10000 = 7 THEN 'dead' ELSE 'done' END, 1, "
                   f"{ago('i % 30')}, {ago('i % 30')}, {ago('i % 30')} FROM {s} WHERE i % 10 = 7"),
    ]


def generate(engine: Engine, lo: int, hi: int) -> dict[str, float]:
    sql = Sql(engine.dialect.name)
    with engine.connect() as connection:
        seat, setup = (connection.scalar(select(Sku.id).where(Sku.code == code)) for code in ("PRO-SEAT", "ONBOARDING"))
    timings: dict[str, float] = {}
    params = {"lo": lo, "hi": hi, "now": NOW.isoformat() if sql.pg else NOW.strftime("%Y-%m-%d %H:%M:%S"),
              "today": NOW.date().isoformat()}
    with engine.begin() as connection:
        for name, statement in statements(sql, seat, setup):
            began = time.perf_counter()
            connection.execute(text(statement), params)
            timings[name] = time.perf_counter() - began
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    return timings


def prepare(engine: Engine, ledger: Ledger) -> None:
    catalog = resources.files("closeloop.demo").joinpath("catalog.toml").read_text(encoding="utf-8")
    ledger.run(load_catalog, read_catalog(catalog, "catalog.toml"), source="catalog.toml")
    month = NOW.date().replace(day=1) - timedelta(days=1)
    ledger.run(record_vendor_usage, vendor="Blob Storage Inc", sku_code="STORAGE-GB", source="bench", actor="bench",
               lines=[UsageLine(month.replace(day=1), NOW.date().replace(day=1), Decimal(1250), 15000, "EUR")])


# --- measuring ------------------------------------------------------------------------------

@dataclass(eq=False)  # hashable by identity: SQLAlchemy's event registry keys listeners by them
class Counter:
    statements: int = 0
    explain: str | None = None

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> tuple[str, Any]:
        self.statements += 1
        if self.explain:
            return f"{self.explain} {statement}", parameters
        return statement, parameters


@contextmanager
def counting(engine: Engine, explain: str | None = None) -> Iterator[Counter]:
    counter = Counter(explain=explain)
    event.listen(engine, "before_cursor_execute", counter, retval=True)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


@dataclass
class Measure:
    deals: int
    total: float
    statements: int
    gaps: int
    per_rule: dict[str, tuple[float, int]]
    evaluate_first: float
    evaluate_steady: float
    evaluate_statements: int


def measure(engine: Engine, ledger: Ledger, deals: int, runs: int) -> Measure:
    per_rule: dict[str, tuple[float, int]] = {}
    with ledger.sessions() as session:
        tune(session)
        for rule in RULES:
            ctx = POLICY.context(rule, NOW)
            seconds, rows = best_of(runs, lambda rule=rule, ctx=ctx: session.execute(rule.query(ctx)).all())
            per_rule[rule.name] = (seconds, len(rows))
        with counting(engine) as counter:
            total, found = best_of(runs, lambda: scan(session, POLICY, NOW))
        statements = counter.statements // runs
    first, _ = best_of(1, lambda: ledger.run(evaluate_gaps, POLICY))
    with counting(engine) as counter:
        steady, _ = best_of(1, lambda: ledger.run(evaluate_gaps, POLICY))
    return Measure(deals, total, statements, len(found), per_rule, first, steady, counter.statements)


def plans(engine: Engine, ledger: Ledger) -> dict[str, str]:
    explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    shown: dict[str, str] = {}
    with ledger.sessions() as session:
        tune(session)
        connection = session.connection()
        for rule in RULES:
            with counting(engine, explain):
                result = connection.execute(rule.query(POLICY.context(rule, NOW)))
                rows = result.cursor.fetchall()  # the plan's rows, not the rule's columns
            shown[rule.name] = "\n".join(" | ".join(str(c) for c in row) for row in rows)
    return shown


def report(backend: str, generation: dict[str, float], first: Measure, second: Measure | None,
           plan_text: dict[str, str] | None) -> None:
    print(f"\n== {backend}: {first.deals:,} deals (generated in {sum(generation.values()):.1f} s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in generation.items() if v >= 0.5) + ")")
    doubled = f" {'at 2N':>9} {'gaps':>8}" if second else ""
    print(f"{'rule':<26} {'seconds':>9} {'gaps':>8}{doubled}")
    for name, (seconds, rows) in first.per_rule.items():
        after = f" {second.per_rule[name][0]:>9.4f} {second.per_rule[name][1]:>8,}" if second else ""
        print(f"{name:<26} {seconds:>9.4f} {rows:>8,}{after}")
    print(f"all rules (scan): {first.total:.3f} s, {first.statements} statements, {first.gaps:,} gaps"
          + verdict(backend, first))
    print(f"evaluate_gaps: first {first.evaluate_first:.3f} s (opens every gap), steady {first.evaluate_steady:.3f} s "
          f"in {first.evaluate_statements} statements")
    if second is not None:
        ratio = second.total / first.total
        print(f"doubled to {second.deals:,} deals: all rules {second.total:.3f} s{verdict(backend, second)}, "
              f"{second.statements} statements "
              f"(same: {'yes' if second.statements == first.statements else 'NO'}), {second.gaps:,} gaps; "
              f"time ratio 2N/N = {ratio:.2f} (target <= 2: {'PASS' if ratio <= 2 else 'MISS'}); "
              f"evaluate_gaps steady {second.evaluate_steady:.3f} s in {second.evaluate_statements} statements")
    if plan_text:
        print("\nquery plans:")
        for name, plan in plan_text.items():
            print(f"-- {name}\n{plan}")


def verdict(backend: str, measured: Measure) -> str:
    size, target = ISSUE_SIZE[backend], TARGETS[backend]
    if measured.deals < size:
        return f" (target < {target:g} s is for {size:,} deals)"
    return f" — target < {target:g} s for {size:,} deals: {'PASS' if measured.total < target else 'MISS'}"


def run_backend(backend: str, deals: int, runs: int, show_plans: bool, double: bool) -> None:
    with database(backend) as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        ledger = Ledger(engine, ManualClock(NOW), concurrency=1)
        prepare(engine, ledger)
        generation = generate(engine, 1, deals)
        first = measure(engine, ledger, deals, runs)
        second = None
        if double:
            generate(engine, deals + 1, 2 * deals)
            second = measure(engine, ledger, 2 * deals, runs)
        report(backend, generation, first, second, plans(engine, ledger) if show_plans else None)
        engine.dispose()


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="closeloop-bench-")
        try:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    admin_url = os.environ.get("CLOSELOOP_BENCH_POSTGRES_URL", DEFAULT_PG_ADMIN_URL)
    name = f"closeloop_gapbench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as error:
        print(f"PostgreSQL is not reachable at {admin_url}: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-deals", type=int, default=500_000, help="N; the doubling check then measures 2N")
    parser.add_argument("--sqlite-deals", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (the best is shown)")
    parser.add_argument("--plans", action="store_true", help="print every rule's query plan")
    parser.add_argument("--no-double", action="store_true", help="skip the doubling check")
    args = parser.parse_args(argv)
    for backend in (["postgresql", "sqlite"] if args.backend == "both" else [args.backend]):
        deals = args.pg_deals if backend == "postgresql" else args.sqlite_deals
        run_backend(backend, deals, args.runs, args.plans, not args.no_double)
    return 0


if __name__ == "__main__":
    sys.exit(main())
