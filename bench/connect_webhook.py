"""How fast does `closeloop web` take DocuSign Connect notices, beside an endpoint that
only checks the HMAC?

Each request is a distinct, signed Connect JSON notice ("envelope-completed" for a
fresh envelope id), posted from C concurrent keep-alive clients, N per scenario, to:

  * a bare endpoint that only verifies the HMAC (bench/bare_connect_app.py, waitress
    with as many threads as `closeloop web`) — the baseline, measured in the same run;
  * `closeloop web` on PostgreSQL (a temporary database) and on SQLite (the embedded
    default): HMAC, parse, claim the delivery, queue its work on the outbox, answer.

Prints requests/s and p50/p99/max per scenario, the ratio of each rate to the bare
one, and PASS/MISS against the issue's targets: p99 < 200 ms and >= 50 % of the bare
rate. Afterwards it checks every notice was stored exactly once.

    .venv/bin/python -m bench.connect_webhook [--requests 1000] [--concurrency 20] [--rounds 1] [--skip-sqlite]

With --rounds N every scenario is measured N times, interleaved (the servers stay up),
and the targets are judged on the medians: on a machine shared with other work one
scenario's figure alone can be off by half.

Not a test: a missed target is a figure. It exits non-zero only when something breaks."""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, select

from bench.ledger_chain import _version, percentile, postgres_admin, postgres_database
from bench.slack_ack import BenchError, _closeloop_executable, clean_env, serving
from closeloop.demo.loopback_docusign import free_port
from flows.inbox import InboundEvent

KEYS = "bench-old-key,bench-connect-key"
KEY = b"bench-connect-key"
TARGET_P99_MS = 200.0
TARGET_RATIO = 0.5


def notice(i: int, tag: str) -> bytes:
    envelope = str(uuid.UUID(int=(hash(tag) & 0xFFFFFFFF) << 64 | i))
    stamp = f"2026-03-10T09:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.{i % 100:02d}00000Z"
    return json.dumps({"event": "envelope-completed", "apiVersion": "v2.1", "retryCount": 0, "configurationId": 1,
                       "uri": f"/restapi/v2.1/accounts/acct/envelopes/{envelope}", "generatedDateTime": stamp,
                       "data": {"accountId": "acct", "envelopeId": envelope, "envelopeSummary": {
                           "status": "completed", "envelopeId": envelope, "statusChangedDateTime": stamp,
                           "emailSubject": f"Please sign quote Q-2026-{i:04d}"}}}).encode()


@dataclass
class Run:
    scenario: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    wall: float = 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def send_load(base: str, scenario: str, count: int, concurrency: int) -> Run:
    run = Run(scenario)
    host, port = base.removeprefix("http://").split(":")
    tag = uuid.uuid4().hex
    bodies = [notice(i, tag) for i in range(count)]
    signed = [(b, base64.b64encode(hmac.new(KEY, b, hashlib.sha256).digest()).decode()) for b in bodies]
    lock, start = threading.Lock(), threading.Barrier(concurrency + 1)
    cursor = iter(range(count))

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        start.wait()
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            body, signature = signed[i]
            headers = {"Content-Type": "application/json", "X-Authorization-Digest": "HMACSHA256",
                       "X-DocuSign-Signature-1": signature}
            began = time.perf_counter()
            try:
                connection.request("POST", "/webhooks/docusign", body, headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    run.failures.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            elapsed = time.perf_counter() - began
            with lock:
                run.statuses[response.status] += 1
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
    if run.failures or set(run.statuses) != {200}:
        raise BenchError(f"{scenario}: answers {dict(run.statuses)}, failures {run.failures[:3]}")
    return run


def stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(InboundEvent.__table__)
                                         .where(InboundEvent.__table__.c.source == "docusign")))
    finally:
        engine.dispose()


def closeloop_server(name: str, url: str, work: Path, stack: ExitStack) -> str:
    """`closeloop web` on a migrated database, warmed up; stopped when the stack closes."""
    env = clean_env(DATABASE_URL=url, PORT=str(free_port()), DOCUSIGN_CONNECT_HMAC_KEYS=KEYS,
                    CLOSELOOP_OUTBOX_DIR=str(work / "outbox"), CLOSELOOP_HOST="127.0.0.1")
    done = subprocess.run([_closeloop_executable(), "db", "upgrade"], env=env, cwd=work,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"closeloop db upgrade failed: {done.stderr.strip()}")
    base = stack.enter_context(serving([_closeloop_executable(), "web"], env, work / f"{name}.log"))
    send_load(base, f"{name} warm-up", 40, 4)
    return base


def measure(servers: dict[str, str], args: argparse.Namespace) -> list[dict[str, Run]]:
    """Each round loads every server in turn, so a neighbour's load on a shared machine
    falls on all scenarios of a round alike."""
    return [{name: send_load(base, name, args.requests, args.concurrency) for name, base in servers.items()}
            for _ in range(args.rounds)]


def report(rounds: list[dict[str, Run]]) -> None:
    names = list(rounds[0])
    bare_name = names[0]
    print(f"\n{'round':<6}{'scenario':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'vs bare':>8}")
    for n, runs in enumerate(rounds, start=1):
        for run in runs.values():
            print(f"{n:<6}{run.scenario:<28} {run.rate:8.0f} {run.ms(50):8.1f} {run.ms(99):8.1f} "
                  f"{max(run.latencies) * 1000:8.1f} {run.rate / runs[bare_name].rate:8.2f}")
    print()
    for name in names[1:]:
        ratio = statistics.median(r[name].rate / r[bare_name].rate for r in rounds)
        p99 = statistics.median(r[name].ms(99) for r in rounds)
        ok_p99, ok_rate = p99 < TARGET_P99_MS, ratio >= TARGET_RATIO
        median = " (medians of the rounds)" if len(rounds) > 1 else ""
        print(f"{name}: p99 {p99:.1f} ms (target < {TARGET_P99_MS:.0f}) {'PASS' if ok_p99 else 'MISS'}; "
              f"rate {ratio:.0%} of bare (target >= {TARGET_RATIO:.0%}) {'PASS' if ok_rate else 'MISS'}{median}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.connect_webhook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every scenario this many times, interleaved; targets use the medians")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args(argv)
    print(f"bench.connect_webhook: {args.requests} notices per scenario, {args.concurrency} concurrent senders, "
          f"{args.rounds} round(s); Python {platform.python_version()}, waitress {_version('waitress')}, "
          f"SQLAlchemy {_version('sqlalchemy')}")
    admin = postgres_admin()
    try:
        with tempfile.TemporaryDirectory(prefix="closeloop-bench-connect-") as tmp, ExitStack() as stack:
            work = Path(tmp)
            env = clean_env(PORT=str(free_port()), DOCUSIGN_CONNECT_HMAC_KEYS=KEYS,
                            PYTHONPATH=str(Path(__file__).resolve().parent.parent))
            servers = {"bare HMAC endpoint": stack.enter_context(
                serving([sys.executable, "-m", "bench.bare_connect_app"], env, work / "bare.log"))}
            send_load(servers["bare HMAC endpoint"], "bare warm-up", 40, 4)
            urls = {"closeloop web, PostgreSQL": stack.enter_context(postgres_database(admin))}
            if not args.skip_sqlite:
                urls["closeloop web, SQLite"] = f"sqlite:///{work}/closeloop.db"
            for n, (name, url) in enumerate(urls.items()):
                servers[name] = closeloop_server(f"closeloop{n}", url, work, stack)
            rounds = measure(servers, args)
            for name, url in urls.items():
                if stored(url) != args.rounds * args.requests + 40:
                    raise BenchError(f"{name}: {stored(url)} notices stored, expected "
                                     f"{args.rounds * args.requests + 40}")
    except BenchError as error:
        print(f"\nERROR: {error}")
        return 1
    finally:
        admin.dispose()
    report(rounds)
    print("every notice stored exactly once (inbound_events rows = notices sent)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
