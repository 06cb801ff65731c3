"""N deals through the whole loop on Celery (2 worker processes, PostgreSQL + Redis),
beside the embedded single-process mode (`closeloop run`'s relay thread), in one run.

Setup, not timed: a temporary PostgreSQL database migrated with `closeloop.migrate`,
the catalog, one customer per ten deals (signer and billing contacts), N deals drafted
and sent for signature through the real steps; their own outbox rows (quote posts, the
envelope) are marked done unsent, so only what a signature causes is measured. Each
mode then gets a copy of that database (`CREATE DATABASE … TEMPLATE`) and the same
loopback peers: a Slack Web API (closeloop/demo/loopback_slack.py), an SMTP server
(aiosmtpd) and the license provisioning webhook.

Timed, per mode: one client thread records the N signatures back to back
(`record_signature`: won -> invoice -> license -> billing start in one transaction),
and the mode delivers every outbox message that follows — Slack thread posts, the
invoice PDF (Factur-X) rendered and emailed with the PDF attached, the license key
minted and provisioned, the payment collection (manual gateway) — until nothing is
pending or leased. Figures: deals/s (N over first signature to last delivery) and
p50/p95/max latency per deal from its signature (the `quote.signed` event) to its
`license.provision` message done.

  * embedded: `closeloop.bootstrap.Embedded` in the benchmark process, as `closeloop
    run` does: one relay thread woken on commit, beside the signing client thread;
  * celery: `closeloop worker` x2 (each `--concurrency 1`, every queue) and `closeloop
    beat` as subprocesses; the client wakes the dispatch on commit, as web does.

    .venv/bin/python -m bench.celery_load                 # N = 10,000
    .venv/bin/python -m bench.celery_load --deals 25      # what .ci/run does (about 2.5 min)

Exits non-zero when something is wrong: a message dead or attempted twice, a deal not
billing, an email or a provisioning call missing or repeated (PostgreSQL or Redis
unreachable: 2)."""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url

from closeloop import migrate
from closeloop.bootstrap import Embedded, Services, build
from closeloop.config import Settings
from closeloop.demo.loopback_slack import SIGNING_SECRET, FakeSlackApi
from flows.catalog_file import read_catalog
from flows.clock import SystemClock
from flows.deals import Deal, Stage
from flows.outbox import OutboxMessage, OutboxStatus
from flows.parties import ContactRole
from flows.steps import ContactRequest, LineRequest, add_customer, draft_quote, load_catalog, record_signature, send_quote
from flows.timeline import Event

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER = "redis://127.0.0.1:6379/15"
WEBHOOK_SECRET = "bench-license-secret"
CATALOG = """
currencies = ["EUR"]
[tax_categories]
standard = "19"
[[sku]]
code = "SEAT"
name = "Pro seat"
kind = "recurring"
unit = "seat"
interval = "month"
licensable = true
features = ["sso"]
tax_category = "standard"
prices = { EUR = "40.00" }
[[sku]]
code = "SETUP"
name = "Onboarding"
kind = "one_off"
unit = "project"
tax_category = "standard"
prices = { EUR = "1500.00" }
"""


# --- the loopback peers -----------------------------------------------------------

class Peers:
    """Slack, SMTP and the license webhook on loopback, counting what they receive
    (the SMTP server keeps no message bodies: 10,000 PDFs would not fit in memory)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from closeloop.demo.mail_servers import free_port
        self.slack = FakeSlackApi().start()
        self.mails: Counter[str] = Counter()   # recipient -> messages
        self.provisioned: Counter[str] = Counter()  # idempotency key -> calls
        peers = self

        class Smtp:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's API
                for rcpt in envelope.rcpt_tos:
                    peers.mails[rcpt] += 1
                return "250 2.0.0 queued"

        class Webhook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                peers.provisioned[self.headers["Idempotency-Key"]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.smtp_port = free_port()
        self.smtp = Controller(Smtp(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()
        self.webhook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
        threading.Thread(target=self.webhook.serve_forever, daemon=True).start()

    def settings(self) -> dict[str, object]:
        return {"slack_bot_token": "xoxb-bench", "slack_signing_secret": SIGNING_SECRET,
                "slack_api_url": self.slack.base_url, "smtp_host": "127.0.0.1", "smtp_port": self.smtp_port,
                "smtp_starttls": False, "smtp_timeout": 10, "mail_secret": "bench-mail-secret",
                "mail_from": "billing@nordlicht.example",
                "license_webhook_url": f"http://127.0.0.1:{self.webhook.server_port}/provision",
                "license_webhook_secret": WEBHOOK_SECRET}

    def reset(self) -> None:
        self.slack.calls.clear()
        self.mails.clear()
        self.provisioned.clear()

    def stop(self) -> None:
        self.slack.stop()
        self.smtp.stop()
        self.webhook.shutdown()
        self.webhook.server_close()


# --- setup --------------------------------------------------------------------------

def seed(services: Services, n: int) -> tuple[list[int], int]:
    """N deals sent for signature, drafted through the real steps (100 to a transaction);
    returns them and the last outbox id the setup wrote."""
    ledger = services.ledger
    ledger.run(load_catalog, read_catalog(CATALOG, "bench"), source="bench")
    customers = [ledger.run(add_customer, name=f"Kunde {i} GmbH", country="DE", currency="EUR", language="de",
                            contacts=(ContactRequest(f"Ada {i}", f"ada{i}@kunde.example", ContactRole.SIGNER),
                                      ContactRequest(f"Bob {i}", f"billing{i}@kunde.example", ContactRole.BILLING)))
                 for i in range(max(1, n // 10))]
    lines = [LineRequest("SEAT", Decimal(10)), LineRequest("SETUP", Decimal(1))]

    def draft_and_send(tx, start: int, stop: int) -> list[int]:  # type: ignore[no-untyped-def]
        made = []
        for i in range(start, stop):
            deal_id = draft_quote(tx, key=f"bench:{i}", customer_id=customers[i % len(customers)], owner="U0REP",
                                  currency="EUR", lines=lines)
            send_quote(tx, deal_id, provider="docusign", actor="U0REP")
            made.append(deal_id)
        return made
    deals: list[int] = []
    for start in range(0, n, 100):
        deals += ledger.run(draft_and_send, start, min(n, start + 100))
    with services.engine.begin() as c:  # the setup's own side effects: not what is measured
        c.execute(update(OutboxMessage).values(status=OutboxStatus.DONE, done_at=func.now()))
        last = c.scalar(select(func.max(OutboxMessage.id))) or 0
    return deals, last



# --- one mode -----------------------------------------------------------------------

def sign_all(services: Services, deals: list[int]) -> None:
    """The client: every signature recorded back to back."""
    for deal_id in deals:
        services.ledger.run(record_signature, deal_id, version=1, signer="ada@kunde.example",
                            evidence={"method": "bench"})


def wait_settled(services: Services, n: int, timeout: float, label: str) -> None:
    deadline, shown = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        counts = dict(services.ledger.read(lambda s: s.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()))
        provisioned = services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "license.provision", OutboxMessage.status == OutboxStatus.DONE)))
        if provisioned >= n and not counts.get(OutboxStatus.PENDING) and not counts.get(OutboxStatus.LEASED):
            return
        if time.monotonic() - shown > 15:
            shown = time.monotonic()
            print(f"  {label}: {provisioned}/{n} licenses provisioned, "
                  f"{counts.get(OutboxStatus.PENDING, 0)} pending, {counts.get(OutboxStatus.LEASED, 0)} leased",
                  flush=True)
        time.sleep(0.25)
    raise TimeoutError(f"{label}: the outbox did not drain within {timeout:.0f} s")


def figures(services: Services, deals: list[int], after: int) -> dict[str, float]:
    def read(session):  # type: ignore[no-untyped-def]
        signed = dict(session.execute(select(Event.deal_id, Event.occurred_at).where(
            Event.kind == "quote.signed", Event.deal_id.in_(deals))).all())
        licensed = dict(session.execute(select(OutboxMessage.deal_id, OutboxMessage.done_at).where(
            OutboxMessage.kind == "license.provision", OutboxMessage.deal_id.in_(deals))).all())
        last = session.scalar(select(func.max(OutboxMessage.done_at)).where(OutboxMessage.id > after))
        return signed, licensed, last
    signed, licensed, last = services.ledger.read(read)
    latencies = sorted((licensed[d] - signed[d]).total_seconds() for d in deals)
    first = min(signed.values()).timestamp()
    wall = last.timestamp() - first
    return {"n": len(deals), "wall": wall, "rate": len(deals) / wall, "sign": max(signed.values()).timestamp() - first,
            "p50": statistics.median(latencies), "p95": latencies[int(0.95 * (len(latencies) - 1))],
            "max": latencies[-1]}


def check(services: Services, peers: Peers, deals: list[int], after: int, label: str) -> list[str]:
    """What must hold after a mode: every deal billing, every message delivered once."""
    def read(session):  # type: ignore[no-untyped-def]
        mine = OutboxMessage.id > after
        stages = Counter(session.scalars(select(Deal.stage).where(Deal.id.in_(deals))))
        statuses = Counter(session.scalars(select(OutboxMessage.status).where(mine)))
        retried = session.scalar(select(func.count()).select_from(OutboxMessage).where(mine, OutboxMessage.attempts > 1))
        kinds = Counter(session.scalars(select(OutboxMessage.kind).where(mine, OutboxMessage.status == OutboxStatus.DONE)))
        return stages, statuses, retried, kinds
    stages, statuses, retried, kinds = services.ledger.read(read)
    n, wrong = len(deals), []
    if stages[Stage.BILLING_ACTIVE] != n:
        wrong.append(f"{label}: stages {dict(stages)}")
    if statuses.get(OutboxStatus.DEAD):
        wrong.append(f"{label}: {statuses[OutboxStatus.DEAD]} dead messages")
    if retried:
        wrong.append(f"{label}: {retried} messages attempted more than once")
    if sum(peers.mails.values()) != n:
        wrong.append(f"{label}: {sum(peers.mails.values())} emails for {n} invoices")
    if len(peers.provisioned) != kinds["license.provision"] or any(c > 1 for c in peers.provisioned.values()):
        wrong.append(f"{label}: {len(peers.provisioned)} licenses provisioned, some more than once")
    print(f"  {label}: delivered {sum(kinds.values())} messages ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))});"
          f" {len(peers.slack.of('chat.postMessage'))} Slack posts, {sum(peers.mails.values())} emails, "
          f"{len(peers.provisioned)} provisioning calls", flush=True)
    return wrong


def run_embedded(settings: Settings, deals: list[int], after: int, timeout: float) -> Services:
    services = build(settings, SystemClock())
    with Embedded(services):
        sign_all(services, deals)
        wait_settled(services, len(deals), timeout, "embedded")
    services.figures = figures(services, deals, after)  # type: ignore[attr-defined]
    return services


def run_celery(settings: Settings, deals: list[int], after: int, timeout: float, folder: Path,
               workers: int) -> Services:
    from closeloop.tasks import wake_dispatch_on_commit
    from tests.celery_kit import CeleryRig
    services = build(settings, SystemClock())
    folder.mkdir(parents=True, exist_ok=True)
    rig = CeleryRig(settings, folder)
    try:
        for i in range(workers):
            rig.worker(concurrency=1, name=f"worker{i}")
        rig.beat()
        wake_dispatch_on_commit(services)
        sign_all(services, deals)
        wait_settled(services, len(deals), timeout, "celery")
    finally:
        rig.stop()
    task_seconds(sorted(folder.glob("worker*.log")))
    services.figures = figures(services, deals, after)  # type: ignore[attr-defined]
    return services


def task_seconds(logs: list[Path]) -> None:
    """Where the workers' time went: Celery's 'succeeded in' by message kind (the kind
    is on every line a delivery logs; a delivery that logs nothing counts as 'other')."""
    kinds, spent = {}, {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("task") and record.get("kind"):
                kinds[record["task"]] = record["kind"]
            found = re.search(r"Task (\S+)\[(.+?)\] succeeded in ([\d.]+)s", record.get("msg", ""))
            if found:
                spent[found[2]] = (found[1], float(found[3]))
    by_kind: dict[str, list[float]] = {}
    for task, (name, seconds) in spent.items():
        by_kind.setdefault(kinds.get(task, "other deliveries" if name == "closeloop.deliver" else name), []).append(seconds)
    total = sum(map(sum, by_kind.values()))
    print(f"  celery: {total:.1f} task seconds in {len(spent)} tasks:", ", ".join(
        f"{kind} {len(times)} x {statistics.mean(times) * 1000:.0f} ms"
        for kind, times in sorted(by_kind.items(), key=lambda item: -sum(item[1]))), flush=True)


# --- the run ------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (each --concurrency 1)")
    parser.add_argument("--modes", default="embedded,celery")
    parser.add_argument("--keep", type=Path, help="keep the workers' logs and the outbox files in this folder")
    parser.add_argument("--pg-admin-url", default=os.environ.get("CLOSELOOP_BENCH_POSTGRES_URL", DEFAULT_PG_ADMIN_URL))
    parser.add_argument("--broker", default=os.environ.get("CLOSELOOP_BENCH_BROKER_URL", DEFAULT_BROKER),
                        help="a Redis database of its own: it is emptied")
    args = parser.parse_args()
    import redis
    admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    base = f"closeloop_bench_load_{uuid.uuid4().hex[:8]}"
    try:
        redis.Redis.from_url(args.broker, socket_timeout=3).flushdb()
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{base}"'))
    except Exception as error:  # noqa: BLE001 — say what is missing and stop
        print(f"PostgreSQL ({args.pg_admin_url}) and Redis ({args.broker}) are required: {error}", file=sys.stderr)
        return 2
    made, peers, wrong, results = [base], Peers(), [], {}
    timeout = 300 + args.deals * 2.0

    def url(name: str) -> str:
        return make_url(args.pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with TemporaryDirectory(prefix="closeloop-bench-load-") as tmp:
            folder = args.keep or Path(tmp)
            migrate.upgrade(url(base))
            seeding = build(Settings(database_url=url(base), outbox_dir=folder / "seed-outbox"), SystemClock())
            t0 = time.perf_counter()
            deals, after = seed(seeding, args.deals)
            seeding.close()
            print(f"seeded {len(deals)} deals sent for signature in {time.perf_counter() - t0:.1f} s "
                  f"(PostgreSQL; {args.workers} Celery workers, broker {args.broker})", flush=True)
            for mode in args.modes.split(","):
                name = f"{base}_{mode}"
                with admin.connect() as c:
                    c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base}"'))
                made.append(name)
                settings = Settings(database_url=url(name), broker_url=args.broker, outbox_dir=folder / mode / "outbox",
                                    documents_dir=folder / mode / "documents", data_dir=folder / mode / "data",
                                    dispatch_seconds=1.0, **peers.settings())
                peers.reset()
                print(f"== {mode}", flush=True)
                if mode == "embedded":
                    services = run_embedded(settings, deals, after, timeout)
                else:
                    services = run_celery(settings, deals, after, timeout, folder / mode, args.workers)
                wrong += check(services, peers, deals, after, mode)
                results[mode] = services.figures  # type: ignore[attr-defined]
                services.close()
    finally:
        peers.stop()
        with admin.connect() as c:
            for name in reversed(made):
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report(results, args.deals, args.workers)
    for line in wrong:
        print(f"WRONG: {line}", file=sys.stderr)
    return 1 if wrong else 0


def report(results: dict[str, dict[str, float]], n: int, workers: int) -> None:
    print(f"\n{n} deals, signature -> license provisioned, every outbox message delivered "
          f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'mode':<28}{'deals/s':>9}{'wall s':>9}{'signing s':>11}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    labels = {"embedded": "embedded (1 process)", "celery": f"celery ({workers} workers)"}
    for mode, f in results.items():
        print(f"{labels.get(mode, mode):<28}{f['rate']:>9.1f}{f['wall']:>9.1f}{f['sign']:>11.1f}"
              f"{f['p50']:>9.2f}{f['p95']:>9.2f}{f['max']:>9.2f}")
    if "embedded" in results and "celery" in results:
        e, c = results["embedded"], results["celery"]
        print(f"celery / embedded: throughput {c['rate'] / e['rate']:.2f}x, p50 {c['p50'] / e['p50']:.2f}x, "
              f"p95 {c['p95'] / e['p95']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
