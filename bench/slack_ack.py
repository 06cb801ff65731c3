"""How fast does closeloop ack a slash command, and does a slow database slow the ack?

Slack gives an app 3 s to answer a slash command; closeloop acks first and does the
work afterwards. This measures the time to the HTTP response (the ack) of a signed
`/quote new Acme GmbH 25 seats PRO-SEAT, 1 ONBOARDING discount 10%`, sent the way Slack
sends it, from C concurrent keep-alive clients, N requests per scenario, to:

  * a bare Bolt app that only acks /quote (bench/bare_slack_app.py, same server:
    waitress with the same threads) — the baseline, measured in the same run;
  * `closeloop web`, a real subprocess on PostgreSQL (a temporary database, migrated
    with `closeloop db upgrade`, the demo catalog and the customer loaded), whose
    Slack Web API is a loopback FakeSlackApi in this process;
  * the same with 2.5 s of injected database latency: closeloop reaches PostgreSQL
    through a TCP proxy on loopback (a separate process) that holds every chunk the
    server sends for 2.5 s when latency is on. Nothing in closeloop is changed.

and prints p50/p95/p99/max per scenario, the ratio to the bare app, and PASS/MISS
against the issue's targets: p99 < 100 ms normally, < 1 s under injected latency
(Slack's limit is 3 s), overhead over the bare app <= 2x.

    .venv/bin/python -m bench.slack_ack [--requests 1000] [--concurrency 20] [--latency 2.5]

Not a test: a missed target is a figure, not a failure. It exits non-zero only when
something breaks (a server does not start, an answer is not 200, a request fails,
PostgreSQL is unreachable)."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from bench.ledger_chain import _version, percentile, postgres_admin, postgres_database
from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.web import WEB_THREADS
from closeloop.demo.loopback_slack import APP, TEAM, FakeSlackApi, command_body, free_port, sign
from flows.deals import Deal
from flows.parties import ContactRole
from flows.steps import ContactRequest, add_customer

SECRET = "bench-signing-secret-0123456789abcdef"
REP = "U0BENCHREP"
CUSTOMER = "Acme GmbH"
COMMAND = "/quote"
TEXT = f"new {CUSTOMER} 25 seats PRO-SEAT, 1 ONBOARDING discount 10%"
CATALOG = resources.files("closeloop.demo").joinpath("catalog.toml").read_text(encoding="utf-8")

TARGET_P99_MS = 100.0
TARGET_P99_LATENCY_MS = 1000.0
TARGET_RATIO = 2.0
SLACK_LIMIT_MS = 3000.0
# Bolt's listener runner waits this long for ack() (Listener.ack_timeout) before it
# stops waiting; the request then ends as 404 {"error": "unhandled request"}.
BOLT_ACK_TIMEOUT = 2.95


class BenchError(Exception):
    """Something broke, so the figures mean nothing."""


# --- the latency proxy (its own process, so its work does not share our GIL) ---------

def run_proxy(listen_port: int, target_host: str, target_port: int, delay: Any, ready: Any) -> None:
    """Forward 127.0.0.1:listen_port to the target. Client -> server bytes pass at once;
    every chunk server -> client is delivered `delay.value` seconds after it arrived
    (chunks stay in order and overlap: a burst costs one delay, not one per chunk)."""

    async def pipe_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def pipe_down(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            while True:
                data = await reader.read(65536)
                held.put_nowait((loop.time() + delay.value, data))
                if not data:
                    return

        receiving = asyncio.create_task(receive())
        try:
            while True:
                due, data = await held.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not data:
                    return
                writer.write(data)
                await writer.drain()
        finally:
            receiving.cancel()
            writer.close()

    async def connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe_up(client_r, server_w), pipe_down(server_r, client_w), return_exceptions=True)

    async def serve() -> None:
        server = await asyncio.start_server(connection, "127.0.0.1", listen_port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@contextlib.contextmanager
def latency_proxy(target_host: str, target_port: int) -> Iterator[tuple[int, Any]]:
    spawn = multiprocessing.get_context("spawn")
    delay = spawn.Value("d", 0.0, lock=False)
    ready = spawn.Event()
    port = free_port()
    process = spawn.Process(target=run_proxy, args=(port, target_host, target_port, delay, ready), daemon=True)
    process.start()
    try:
        if not ready.wait(20):
            raise BenchError("the latency proxy did not start")
        yield port, delay
    finally:
        process.terminate()
        process.join(5)


# --- servers under test ----------------------------------------------------------------

def _closeloop_executable() -> str:
    beside = Path(sys.executable).with_name("closeloop")
    found = str(beside) if beside.exists() else shutil.which("closeloop")
    if not found:
        raise BenchError("the `closeloop` command is not installed in this environment (pip install -e .)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "CLOSELOOP_", "DATABASE_URL")) and k != "PORT"}
    return {**env, **extra}


@contextlib.contextmanager
def serving(argv: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Start a server subprocess, wait until GET /healthz answers, stop it afterwards."""
    port = int(env["PORT"])
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchError(f"{' '.join(argv[-2:])} exited with {process.returncode}:\n{tail(log)}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"{' '.join(argv[-2:])} did not answer /healthz in 60 s:\n{tail(log)}") from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()  # work still queued after the acks must not hold us up: kill after 5 s
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join("      " + line for line in log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "      (no log)"


# --- the load ----------------------------------------------------------------------------

@dataclass
class Run:
    scenario: str
    latencies: list[float] = field(default_factory=list)  # seconds to the HTTP response: acks and gave-ups
    gave_up: int = 0       # Bolt waited its 3 s for ack() in vain and answered 404 "unhandled request"
    statuses: Counter[int] = field(default_factory=Counter)  # the other answers, 200 and errors
    failures: list[str] = field(default_factory=list)     # transport errors
    first_body: dict[int, bytes] = field(default_factory=dict)
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.latencies)

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000.0

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200) + len(self.failures)


def send_load(base: str, scenario: str, count: int, concurrency: int, tag: str, response_url: str) -> Run:
    """`count` signed /quote new requests from `concurrency` threads, one keep-alive
    connection each; a fresh trigger_id per request, so each one is a new quote."""
    run = Run(scenario)
    host, port = base.removeprefix("http://").split(":")
    numbers = itertools.count()
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        start.wait()
        while True:
            with lock:
                i = next(numbers)
            if i >= count:
                break
            body = command_body(COMMAND, TEXT, user=REP, response_url=response_url, team=TEAM, app=APP,
                                trigger=f"{tag}.{i}.bench")
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, secret=SECRET)}
            began = time.perf_counter()
            try:
                connection.request("POST", "/slack/events", body, headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    run.failures.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            elapsed = time.perf_counter() - began
            with lock:
                if response.status == 404 and elapsed >= BOLT_ACK_TIMEOUT and b"unhandled request" in data:
                    run.gave_up += 1  # too slow, not broken: Slack would show the user an error
                    run.latencies.append(elapsed)
                    continue
                run.statuses[response.status] += 1
                run.first_body.setdefault(response.status, data)
                if response.status == 200:
                    run.latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    run.wall = time.perf_counter() - began
    return run


# --- the database ----------------------------------------------------------------------

def prepare_database(url: str, workdir: Path) -> None:
    """Migrate with `closeloop db upgrade`, load the demo catalog with `closeloop catalog
    load`, add the customer the commands name (there is no CLI for customers yet)."""
    env = clean_env(DATABASE_URL=url, CLOSELOOP_OUTBOX_DIR=str(workdir / "outbox"))
    catalog = workdir / "catalog.toml"
    catalog.write_text(CATALOG, encoding="utf-8")
    for argv in (["db", "upgrade"], ["catalog", "load", str(catalog)]):
        done = subprocess.run([_closeloop_executable(), *argv], env=env, cwd=workdir, capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            raise BenchError(f"closeloop {' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
    services = build(Settings(database_url=url, outbox_dir=workdir / "outbox"))
    try:
        services.ledger.run(add_customer, name=CUSTOMER, country="DE", currency="EUR", language="de", contacts=(
            ContactRequest("Ada Signer", "ada@acme.example", ContactRole.SIGNER),
            ContactRequest("Bob Billing", "billing@acme.example", ContactRole.BILLING)))
    finally:
        services.close()


class DealCounter:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def __call__(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(Deal)).scalar_one()

    def settle(self, expected: int, timeout: float) -> int:
        """Wait (a while) for the work after the acks to land; returns the deal count."""
        deadline, last, still = time.monotonic() + timeout, -1, 0
        while True:
            now = self()
            if now >= expected or time.monotonic() > deadline:
                return now
            still = still + 1 if now == last else 0
            if still >= 20:  # nothing new for 2 s: it is not coming
                return now
            last = now
            time.sleep(0.1)

    def close(self) -> None:
        self.engine.dispose()


def server_problems(log: Path) -> list[str]:
    """Tracebacks the server logged (a listener that acked and then failed)."""
    try:
        content = log.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for block in content.split("Traceback (most recent call last):")[1:]:
        last = [line for line in block.splitlines() if line and not line.startswith((" ", "\t"))]
        found.append(last[0] if last else "?")
    return found


# --- one scenario ----------------------------------------------------------------------

def scenario(name: str, argv: list[str], env: dict[str, str], log: Path, args: argparse.Namespace,
             fake: FakeSlackApi, before: Callable[[], None] | None = None,
             after: Callable[[Run], None] | None = None) -> Run:
    print(f"   … {name}", flush=True)
    with serving(argv, env, log) as base:
        tag = f"{os.getpid()}.{time.time_ns()}"
        warm = send_load(base, f"{name} (warm-up)", args.warmup, min(args.concurrency, max(args.warmup, 1)),
                         tag + ".w", fake.response_url) if args.warmup else None
        if before is not None:
            before()
        responds = len(fake.of("respond"))
        run = send_load(base, name, args.requests, args.concurrency, tag, fake.response_url)
        if after is not None:
            after(run)
        run.notes.append(f"{len(fake.of('respond')) - responds} replies to response_url during the timed run")
        if warm is not None and warm.errors:
            run.statuses.update(warm.statuses - Counter({200: warm.statuses[200]}))
            run.failures.extend(warm.failures)
            for status, body in warm.first_body.items():
                run.first_body.setdefault(status, body)
    return run


# --- report ----------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(bare: Run, runs: list[Run], latency_run: Run | None, latency: float) -> None:
    print()
    header = (f"   {'scenario':<40}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'req/s':>8}"
              f"{'p50/bare':>10}{'p99/bare':>10}")
    print(header)
    print("   " + "-" * (len(header) - 3))
    for run in [bare, *runs]:
        if not run.n:
            print(f"   {run.scenario:<40}{0:>6}   (no acks)")
            continue
        rate = run.n / run.wall if run.wall else 0.0
        ratios = ("" if run is bare or not bare.n else
                  f"{run.ms(50) / bare.ms(50):>9.2f}x{run.ms(99) / bare.ms(99):>9.2f}x")
        print(f"   {run.scenario:<40}{run.n:>6}{run.ms(50):>9.1f}{run.ms(95):>9.1f}{run.ms(99):>9.1f}"
              f"{max(run.latencies) * 1000:>9.1f}{rate:>8.0f}{ratios}")
    print()
    print("   targets (a MISS is a figure, not an error)")

    def target(what: str, figure: str, ok: bool) -> None:
        print(f"     {what:<58}{figure:>16}   {verdict(ok)}")

    normal = runs[0]
    if normal.n:
        target(f"{normal.scenario}: p99 < {TARGET_P99_MS:g} ms", f"{normal.ms(99):.1f} ms", normal.ms(99) < TARGET_P99_MS)
    if normal.n and bare.n:
        p50r, p99r = normal.ms(50) / bare.ms(50), normal.ms(99) / bare.ms(99)
        target(f"{normal.scenario}: overhead over the bare app <= {TARGET_RATIO:g}x (p50, p99)",
               f"{p50r:.2f}x, {p99r:.2f}x", p50r <= TARGET_RATIO and p99r <= TARGET_RATIO)
    if latency_run is not None and latency_run.n:
        target(f"{latency_run.scenario}: p99 < {TARGET_P99_LATENCY_MS / 1000:g} s", f"{latency_run.ms(99):.1f} ms",
               latency_run.ms(99) < TARGET_P99_LATENCY_MS)
    for run in runs:
        if run.n:
            late = sum(1 for x in run.latencies if x * 1000 >= SLACK_LIMIT_MS)
            target(f"{run.scenario}: answered within Slack's 3 s", f"{run.n - late} of {run.n}", late == 0)
    print()
    for run in [bare, *runs]:
        if run.gave_up:
            print(f"   {run.scenario}: {run.gave_up} of {run.n} requests were never acked: Bolt waited 3 s for "
                  "ack() in vain and answered 404 'unhandled request' (in the figures at the time they took)")
    for run in [bare, *runs]:
        for note in run.notes:
            print(f"   {run.scenario}: {note}")
    for run in [bare, *runs]:
        for status, body in sorted(run.first_body.items()):
            shown = body[:160].decode(errors="replace") or "(empty body)"
            print(f"   {run.scenario}: HTTP {status} x{run.statuses[status]}, e.g. {shown}")
        if run.failures:
            print(f"   {run.scenario}: {len(run.failures)} request(s) failed, e.g. {run.failures[0]}")


# --- entry point -----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_ack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per scenario (default 1000)")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--latency", type=float, default=2.5, help="injected DB latency, seconds (default 2.5)")
    parser.add_argument("--warmup", type=int, default=40, help="untimed requests first, per scenario (default 40)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.latency < 0 or args.warmup < 0:
        parser.error("--requests and --concurrency must be >= 1, --latency and --warmup >= 0")

    admin = postgres_admin()  # exits 2 with a clear message if PostgreSQL is unreachable
    print("closeloop Slack ack latency benchmark")
    print(f"   Python {platform.python_version()}, slack_bolt {_version('slack_bolt')}, waitress {WEB_THREADS} threads, "
          f"on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"   {args.requests} timed requests per scenario from {args.concurrency} concurrent keep-alive clients, "
          f"after {args.warmup} untimed; time = request sent -> HTTP response (the ack)")
    print(f"   request: {COMMAND} {TEXT}  (signed v0, form-encoded, a new trigger_id each: every one drafts a quote)")

    workdir = Path(tempfile.mkdtemp(prefix="closeloop-bench-slack-"))
    fake = FakeSlackApi().start()
    deals: DealCounter | None = None
    try:
        with postgres_database(admin) as url:
            prepare_database(url, workdir)
            direct = make_url(url)
            deals = DealCounter(url)
            with latency_proxy(direct.host or "127.0.0.1", direct.port or 5432) as (proxy_port, delay):
                proxied = direct.set(host="127.0.0.1", port=proxy_port).render_as_string(hide_password=False)
                print(f"   closeloop web: PostgreSQL through a loopback proxy on :{proxy_port} -> "
                      f"{direct.host}:{direct.port or 5432} (database {direct.database}); Slack API: {fake.base_url}")
                print()
                web_env = clean_env(
                    DATABASE_URL=proxied, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET,
                    SLACK_API_URL=fake.base_url, SLACK_TEAM_ID=TEAM, SLACK_APP_ID=APP, SLACK_DEALS_CHANNEL="C0DEALS",
                    CLOSELOOP_SLACK_ROLES=f"{REP}=rep", CLOSELOOP_HOST="127.0.0.1",
                    CLOSELOOP_OUTBOX_DIR=str(workdir / "outbox"))
                web = [_closeloop_executable(), "web"]
                bare_env = clean_env(SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake.base_url,
                                     CLOSELOOP_HOST="127.0.0.1", PORT=str(free_port()),
                                     PYTHONPATH=str(Path(__file__).resolve().parents[1]))

                bare = scenario("bare Bolt app (ack only)", [sys.executable, "-m", "bench.bare_slack_app"],
                                bare_env, workdir / "bare.log", args, fake)

                start_count = deals()
                normal_log = workdir / "web.log"

                def drafted(run: Run) -> None:
                    total = deals.settle(start_count + args.warmup + args.requests, timeout=60)  # type: ignore[union-attr]
                    run.notes.append(f"{total - start_count} of {args.warmup + args.requests} requests drafted a "
                                     "quote (counted after the work that follows the acks settled)")

                normal = scenario("closeloop web", web, {**web_env, "PORT": str(free_port())}, normal_log,
                                  args, fake, after=drafted)
                for problem in sorted(Counter(server_problems(normal_log)).items()):
                    normal.notes.append(f"server logged {problem[1]} traceback(s): {problem[0]}")

                latency_log = workdir / "web-latency.log"
                mark: dict[str, int] = {}

                def latency_on() -> None:
                    mark["deals"] = deals()  # type: ignore[misc]
                    delay.value = args.latency

                def latency_off(run: Run) -> None:
                    delay.value = 0.0
                    run.notes.append(f"{deals() - mark.get('deals', 0)} quotes drafted by the end of the "  # type: ignore[misc]
                                     "timed run (the rest was still waiting on the slow database)")

                slow = scenario(f"closeloop web, +{args.latency:g} s DB latency", web,
                                {**web_env, "PORT": str(free_port())}, latency_log, args, fake,
                                before=latency_on, after=latency_off)
                for problem in sorted(Counter(server_problems(latency_log)).items()):
                    slow.notes.append(f"server logged {problem[1]} traceback(s): {problem[0]}")
                if deals is not None:
                    deals.close()
                    deals = None
    except BenchError as error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 1
    finally:
        if deals is not None:
            deals.close()
        fake.stop()
        admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    report(bare, [normal, slow], slow, args.latency)
    broken = [run for run in (bare, normal, slow) if run.errors]
    if broken:
        print("\nERROR: " + "; ".join(f"{run.scenario}: {run.errors} request(s) not answered 200"
                                      for run in broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
