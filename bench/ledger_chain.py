"""How much does the order-to-cash chain cost, compared with the cheapest durable write?

For each backend (a temporary SQLite file, a temporary PostgreSQL database) this
builds the real services (closeloop.bootstrap.build), prepares N deals that have been
drafted and sent, then times, interleaved in the same process and on the same engine:

  * the chain as closeloop runs it: `services.ledger.run(record_signature, …)`, whose
    followers win_deal -> issue_invoice -> issue_license -> start_billing run in the
    same transaction (one commit) — this is the figure held against the target;
  * for comparison, the same chain with each step alone (`ledger.run_alone`: five
    transactions, five commits), with a per-step breakdown;
  * the baseline: one bare single-row INSERT in its own transaction
    (`with engine.begin() as c: c.execute(insert ...)`), i.e. one commit.

and reports the ratio chain / insert against the issue's target ("the full chain of
steps costs no more than 10x one bare insert transaction").

    .venv/bin/python -m bench.ledger_chain [--deals 300] [--backend sqlite|postgresql|both]

Not a test: it asserts nothing about speed. It exits non-zero only when something
fails (a step errors, a deal does not end up billing, PostgreSQL is unreachable)."""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
from importlib import resources
import os
import platform
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from closeloop import migrate
from closeloop.bootstrap import Services, build
from closeloop.config import Settings
from flows.catalog_file import read_catalog
from flows.clock import SystemClock
from flows.deals import Deal, Stage
from flows.parties import ContactRole
from flows.steps import (ContactRequest, Done, LineRequest, add_customer, draft_quote, issue_invoice,
                         issue_license, load_catalog, record_signature, send_quote, start_billing, win_deal)

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_RATIO = 10.0

# The demo company's catalog (closeloop/demo/catalog.toml): a monthly licensable seat,
# one-off onboarding and metered storage.
CATALOG = resources.files("closeloop.demo").joinpath("catalog.toml").read_text(encoding="utf-8")

# A typical deal: 10 seats (recurring, licensable) and onboarding (one-off), so every
# step of the chain does real work: one license, one subscription, a two-line invoice.
DEAL_LINES = [LineRequest("PRO-SEAT", Decimal(10)), LineRequest("ONBOARDING", Decimal(1))]
SIGNER = "ada@acme.example"

CHAIN: list[tuple[str, Callable[..., Done], dict[str, Any]]] = [
    ("record_signature", record_signature, {"version": 1, "signer": SIGNER, "evidence": {"method": "bench"}}),
    ("win_deal", win_deal, {}),
    ("issue_invoice", issue_invoice, {}),
    ("issue_license", issue_license, {}),
    ("start_billing", start_billing, {}),
]

_baseline_meta = MetaData()
BASELINE = Table("bench_baseline", _baseline_meta,
                 Column("id", Integer, primary_key=True, autoincrement=False),
                 Column("payload", String(64)))


class BenchError(Exception):
    """Something went wrong that makes the figures meaningless."""


# --- figures -------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@dataclass
class Result:
    backend: str
    detail: list[str]
    n: int
    inserts: list[float] = field(default_factory=list)   # seconds per bare insert transaction
    chains: list[float] = field(default_factory=list)    # seconds per chain as closeloop runs it
    alone: list[float] = field(default_factory=list)     # seconds per chain, each step its own transaction
    steps: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name, _, _ in CHAIN})
    chain_cpu: float = 0.0    # seconds of this process's CPU time spent in the timed chains
    insert_cpu: float = 0.0   # ... and in the timed inserts
    statements: dict[str, int] = field(default_factory=dict)  # SQL statements per step, chain run alone
    chain_statements: int = 0  # SQL statements of one chain as closeloop runs it
    insert_statements: int = 0
    profile: str = ""

    @property
    def ratio(self) -> float:
        return mean(self.chains) / mean(self.inserts)

    @property
    def alone_ratio(self) -> float:
        return mean(self.alone) / mean(self.inserts)


def print_result(result: Result) -> None:
    ms = 1000.0
    print()
    print(f"== {result.backend} ==")
    for line in result.detail:
        print(f"   {line}")
    print()
    header = f"   {'measured':<28}{'count':>7}{'total s':>10}{'per s':>10}{'mean ms':>10}{'p50 ms':>9}{'p95 ms':>9}"
    print(header)
    print("   " + "-" * (len(header) - 3))

    def row(label: str, samples: list[float]) -> None:
        total, count = sum(samples), len(samples)
        print(f"   {label:<28}{count:>7}{total:>10.3f}{count / total:>10.1f}{mean(samples) * ms:>10.3f}"
              f"{percentile(samples, 50) * ms:>9.3f}{percentile(samples, 95) * ms:>9.3f}")

    row("bare insert transaction", result.inserts)
    row(f"chain ({len(CHAIN)} steps, 1 tx)", result.chains)
    row(f"chain, steps alone ({len(CHAIN)} tx)", result.alone)
    for name, samples in result.steps.items():
        row(f"  {name}", samples)
    print()
    per_step = ", ".join(f"{name} {count}" for name, count in result.statements.items())
    print(f"   SQL statements: chain {result.chain_statements}; steps alone "
          f"{sum(result.statements.values())} ({per_step}); insert {result.insert_statements}  "
          "(excluding BEGIN/COMMIT and pool pre-ping)")
    print(f"   CPU time of this process: {result.chain_cpu / sum(result.chains):.0%} of chain wall time, "
          f"{result.insert_cpu / sum(result.inserts):.0%} of insert wall time")
    verdict = "meets" if result.ratio <= TARGET_RATIO else "MISSES"
    print(f"   chain / insert ratio : {result.ratio:6.2f}x   ({verdict} the <= {TARGET_RATIO:g}x target)")
    print(f"   steps alone / insert : {result.alone_ratio:6.2f}x   (five transactions; for comparison)")


# --- the work --------------------------------------------------------------------------

def seed(services: Services, count: int) -> list[int]:
    """Catalog, one customer, and `count` deals drafted and sent (not timed)."""
    ledger = services.ledger
    ledger.run(load_catalog, read_catalog(CATALOG, "bench catalog"), source="bench catalog")
    customer_id = ledger.run(add_customer, name="Acme GmbH", country="DE", currency="EUR", language="de",
                             contacts=(ContactRequest("Ada Signer", SIGNER, ContactRole.SIGNER),
                                       ContactRequest("Bob Billing", "billing@acme.example",
                                                      ContactRole.BILLING)))
    deals = []
    run_tag = f"{os.getpid()}:{time.time_ns()}"
    for i in range(count):
        deal_id = ledger.run(draft_quote, key=f"bench:{run_tag}:{i}", customer_id=customer_id, owner="U_BENCH",
                             currency="EUR", lines=DEAL_LINES)
        if ledger.run(send_quote, deal_id, provider="email", actor="U_BENCH") is not Done.ACTED:
            raise BenchError(f"send_quote did nothing for fresh deal {deal_id}")
        deals.append(deal_id)
    return deals


def run_inline(services: Services, deal_id: int) -> float:
    """The chain as closeloop runs it: the signature and its followers, one transaction."""
    name, step, kwargs = CHAIN[0]
    start = time.perf_counter()
    outcome = services.ledger.run(step, deal_id, **kwargs)
    elapsed = time.perf_counter() - start
    if outcome is not Done.ACTED:
        raise BenchError(f"{name} on deal {deal_id} returned {outcome!r}; expected it to act")
    return elapsed


def run_chain(services: Services, deal_id: int, step_times: dict[str, list[float]] | None) -> float:
    """Walk one sent deal to billing_active one step (one transaction) at a time."""
    run = services.ledger.run_alone
    clock = time.perf_counter
    chain_start = clock()
    for name, step, kwargs in CHAIN:
        start = clock()
        outcome = run(step, deal_id, **kwargs)
        elapsed = clock() - start
        if outcome is not Done.ACTED:
            raise BenchError(f"{name} on deal {deal_id} returned {outcome!r}; expected it to act")
        if step_times is not None:
            step_times[name].append(elapsed)
    return clock() - chain_start


def run_insert(engine: Engine, row_id: int) -> float:
    start = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(insert(BASELINE).values(id=row_id, payload=f"bench payload {row_id:08d}"))
    return time.perf_counter() - start


def check_all_billing(services: Services, deal_ids: list[int]) -> None:
    def stages(session: Any) -> dict[int, Stage]:
        return {d.id: d.stage for d in session.scalars(sqlalchemy.select(Deal).where(Deal.id.in_(deal_ids)))}
    found = services.ledger.read(stages)
    wrong = {d: s for d, s in found.items() if s is not Stage.BILLING_ACTIVE}
    if len(found) != len(deal_ids) or wrong:
        raise BenchError(f"{len(wrong) + len(deal_ids) - len(found)} deal(s) did not reach billing_active")


def measure(backend: str, url: str, workdir: Path, n: int, warmup: int, profile: int,
            detail: list[str]) -> Result:
    migrate.upgrade(url)
    services = build(Settings(database_url=url, outbox_dir=workdir / "outbox"), clock=SystemClock())
    try:
        engine = services.engine  # made by closeloop.database.make_engine: same settings for both
        _baseline_meta.create_all(engine)
        detail.extend(engine_detail(engine))

        started = time.perf_counter()
        deals = seed(services, 2 * (warmup + 1 + n) + profile)
        detail.append(f"setup (not timed): catalog, 1 customer, {len(deals)} deals drafted + sent "
                      f"in {time.perf_counter() - started:.1f} s")
        half = warmup + 1 + n
        deals, pairs = deals[2 * half:], list(zip(deals[:half], deals[half:2 * half]))
        warm, counted, timed, profiled = pairs[:warmup], pairs[warmup], pairs[warmup + 1:], deals

        result = Result(backend, detail, n)
        row_ids = iter(range(1, 2**31))
        for inline_deal, alone_deal in warm:  # warm up: statement caches, pool, pages; not timed
            run_insert(engine, next(row_ids))
            run_inline(services, inline_deal)
            run_chain(services, alone_deal, None)
        count_statements(services, counted, next(row_ids), result)

        cpu = time.process_time
        for inline_deal, alone_deal in timed:  # interleaved, so drift hits all alike
            cpu_start = cpu()
            result.inserts.append(run_insert(engine, next(row_ids)))
            cpu_mid = cpu()
            result.chains.append(run_inline(services, inline_deal))
            result.chain_cpu += cpu() - cpu_mid
            result.insert_cpu += cpu_mid - cpu_start
            result.alone.append(run_chain(services, alone_deal, result.steps))

        check_all_billing(services, [d for pair in warm + [counted] + timed for d in pair])
        if profiled:
            result.profile = profile_chains(backend, services, profiled)
        return result
    finally:
        services.close()


def count_statements(services: Services, deals: tuple[int, int], row_id: int, result: Result) -> None:
    """Count the SQL statements of one insert and of one chain (untimed, its own deal)."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT")):
            statements.append(statement)

    sqlalchemy.event.listen(services.engine, "before_cursor_execute", seen)
    try:
        run_insert(services.engine, row_id)
        result.insert_statements = len(statements)
        statements.clear()
        run_inline(services, deals[0])
        result.chain_statements = len(statements)
        for name, step, kwargs in CHAIN:
            statements.clear()
            services.ledger.run_alone(step, deals[1], **kwargs)
            result.statements[name] = len(statements)
    finally:
        sqlalchemy.event.remove(services.engine, "before_cursor_execute", seen)


def engine_detail(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
            sync_name = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, sync)
            return [f"sqlite {sqlite3.sqlite_version}, journal_mode={journal}, synchronous={sync_name}, "
                    f"BEGIN IMMEDIATE per transaction",
                    f"database file: {engine.url.database}"]
        version = connection.exec_driver_sql("SHOW server_version").scalar()
        fsync = connection.exec_driver_sql("SHOW fsync").scalar()
        sync = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
        pre_ping = "pool_pre_ping on" if engine.pool._pre_ping else "pool_pre_ping off"  # type: ignore[attr-defined]
        return [f"PostgreSQL {version}, fsync={fsync}, synchronous_commit={sync}, psycopg "
                f"{_version('psycopg')}, {pre_ping}",
                f"database: {engine.url.render_as_string(hide_password=True)}"]


def profile_chains(backend: str, services: Services, deal_ids: list[int]) -> str:
    """Run extra chains under cProfile (after, and apart from, the timed ones)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for deal_id in deal_ids:
        run_inline(services, deal_id)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"-- cProfile of {len(deal_ids)} extra chains on {backend} (not part of the figures) --\n")
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- backends ------------------------------------------------------------------------

@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'bench.db'}"


def postgres_admin_url() -> str:
    url = os.environ.get("CLOSELOOP_BENCH_POSTGRES_URL", DEFAULT_PG_ADMIN_URL)
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def postgres_admin() -> Engine:
    """An AUTOCOMMIT connection to the admin database; exits non-zero if unreachable."""
    url = postgres_admin_url()
    admin = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        admin.dispose()
        shown = make_url(url).render_as_string(hide_password=True)
        print(f"\nERROR: PostgreSQL is not reachable at {shown}: {error.__class__.__name__}: "
              f"{getattr(error, 'orig', error)}\n"
              "Start it, or point CLOSELOOP_BENCH_POSTGRES_URL at a server where the user may "
              "CREATE DATABASE, or run with --backend sqlite.", file=sys.stderr)
        sys.exit(2)
    return admin


@contextlib.contextmanager
def postgres_database(admin: Engine) -> Iterator[str]:
    name = f"closeloop_bench_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


# --- entry point -----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_chain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=300, help="N: timed chains and timed inserts per backend")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--warmup", type=int, default=10, help="untimed chains and inserts first (default 10)")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="afterwards, run K extra chains under cProfile and print the top costs")
    args = parser.parse_args(argv)
    if args.deals < 1 or args.warmup < 0 or args.profile < 0:
        parser.error("--deals must be >= 1, --warmup and --profile >= 0")

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    admin = postgres_admin() if "postgresql" in backends else None  # fail fast, before any work

    print("closeloop ledger chain benchmark")
    print(f"   Python {platform.python_version()} ({platform.python_implementation()}), "
          f"SQLAlchemy {sqlalchemy.__version__}, on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"   N = {args.deals} timed chains and {args.deals} timed bare inserts per backend "
          f"(interleaved), after {args.warmup} warm-up of each")
    print(f"   chain = {' -> '.join(name for name, _, _ in CHAIN)}: as closeloop runs it, one "
          "ledger.run whose followers share its transaction; and, for comparison, each step alone")
    print("   deal = 10 x PRO-SEAT (monthly, licensable) + 1 x ONBOARDING (one-off), demo catalog")

    results = []
    try:
        for backend in backends:
            workdir = Path(tempfile.mkdtemp(prefix=f"closeloop-bench-{backend}-"))
            try:
                database = sqlite_database(workdir) if backend == "sqlite" else postgres_database(admin)
                with database as url:
                    detail: list[str] = []
                    result = measure("SQLite" if backend == "sqlite" else "PostgreSQL", url, workdir,
                                     args.deals, args.warmup, args.profile, detail)
                results.append(result)
                print_result(result)
                if result.profile:
                    print()
                    print(result.profile.rstrip())
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    except BenchError as error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 1
    finally:
        if admin is not None:
            admin.dispose()

    if len(results) > 1:
        print("\n== summary ==")
        for result in results:
            verdict = "meets" if result.ratio <= TARGET_RATIO else "MISSES"
            print(f"   {result.backend:<11} chain {mean(result.chains) * 1000:8.3f} ms, "
                  f"insert {mean(result.inserts) * 1000:7.3f} ms, ratio {result.ratio:6.2f}x "
                  f"({verdict} <= {TARGET_RATIO:g}x); steps alone {result.alone_ratio:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
