"""The Procfile as shipped, under `honcho start`, against PostgreSQL and Redis: every
process comes up, the web answers /healthz and /readyz (database and broker), a signed
deal goes through the loop on the workers, and SIGTERM stops it all."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from closeloop.bootstrap import build
from closeloop.config import Settings
from flows.clock import SystemClock
from flows.deals import Deal, Stage
from flows.outbox import OutboxMessage, OutboxStatus
from flows.steps import record_signature
from handlers.health import readiness
from tests.celery_kit import environment, wait_until
from tests.factories import deal_at, seed
from tests.slack_peer import free_port

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ("release", "web", "bot", "worker", "pdfworker", "beat", "mail")


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_honcho_runs_the_procfile_and_a_deal_goes_through(pg_settings, tmp_path):
    services = build(pg_settings, SystemClock())
    env = environment(pg_settings)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = tmp_path / "honcho.log"
    base = free_port()
    with log.open("wb") as out:
        honcho = subprocess.Popen([str(Path(sys.executable).with_name("honcho")), "-f", str(ROOT / "Procfile"),
                                   "-d", str(tmp_path), "start", "-p", str(base)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def text() -> str:
            return log.read_text(errors="replace")
        wait_until("every process of the Procfile to say it is up", lambda: all(
            marker in text() for marker in ("database at head", "HTTP on", "Socket Mode is off",
                                            "beat: Starting", "nothing to watch"))
            and text().count(" ready.") >= 2 or honcho.poll() is not None, timeout=90)
        assert honcho.poll() is None, text()[-3000:]
        port = int(re.search(r"HTTP on [\d.]+:(\d+)", text()).group(1))
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"ok": True})
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, {"ok": True, "database": "ok", "broker": "ok"})

        customer = seed(services.ledger)
        deal_id = deal_at(services.ledger, customer, Stage.SENT)
        services.ledger.run(record_signature, deal_id, version=1, signer="ada@acme.example", evidence={"method": "t"})

        def undelivered() -> int:
            return services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.LEASED]))))
        # Nothing in this process dispatches: the beat and the workers under honcho do it all.
        wait_until("the workers to deliver the deal's messages", lambda: undelivered() == 0, timeout=90)
        assert services.ledger.read(lambda s: s.get(Deal, deal_id).stage) is Stage.BILLING_ACTIVE
        lines = [json.loads(line.split("| ", 1)[1]) for line in text().splitlines()
                 if "| {" in line and '"kind": "invoice.deliver"' in line]
        assert lines and all(line["deal"] == deal_id for line in lines), "log lines carry the deal they are about"
        assert any(" pdfworker.1 " in line for line in text().splitlines() if "invoice.deliver" in line)
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            raise
        services.close()
    stopped = [name for name in PROCESSES if re.search(rf"{name}\.1\s.*(stopped|exited)", text(), re.I)]
    assert honcho.returncode is not None and len(stopped) == len(PROCESSES), text()[-2000:]


def test_readiness_says_which_dependency_is_missing(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", broker_url=f"redis://127.0.0.1:{free_port()}/0")
    services = build(settings)
    started = time.monotonic()
    checks = readiness(services)
    assert checks["database"] == "ok"
    assert checks["broker"] != "ok" and "Connection" in checks["broker"] or "refused" in checks["broker"].lower()
    assert time.monotonic() - started < 10
    services.close()
