"""A Celery worker that stops on an unrecoverable error starts itself again (closeloop/respawn.py);
one asked to stop stays stopped. Real workers on PostgreSQL and Redis."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from closeloop.bootstrap import build
from closeloop.respawn import delay_before_restart
from closeloop.tasks import wake_dispatch_on_commit
from flows.clock import SystemClock
from flows.deals import Deal, Stage
from flows.invoices import Invoice
from flows.outbox import OutboxStatus
from tests.celery_kit import CeleryRig, outbox, settled, wait_until
from tests.test_celery_relay import signed_deals

FAULT = Path(__file__).parent / "worker_fault"  # its sitecustomize makes the worker fail once, on cue


def test_the_wait_before_a_restart_doubles_up_to_thirty_seconds():
    assert [delay_before_restart(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_worker_stopped_by_an_unrecoverable_error_starts_again_and_loses_nothing(pg_settings, tmp_path):
    fired = tmp_path / "fault-fired"
    rig = CeleryRig(pg_settings, tmp_path, PYTHONPATH=FAULT, CLOSELOOP_TEST_WORKER_FAULT=fired,
                    CLOSELOOP_TEST_WORKER_FAULT_AFTER=2)
    services = build(pg_settings, SystemClock())
    wake_dispatch_on_commit(services)
    try:
        worker = rig.worker(concurrency=2)
        rig.beat()
        deals = signed_deals(services, 4)  # in flight when the worker fails
        wait_until("the worker to fail and start again", lambda: worker.log.read_text().count(" ready.") == 2,
                   timeout=60)
        text = worker.log.read_text()
        assert fired.exists() and "Unrecoverable error" in text
        assert "the Celery worker exited with code 1; starting it again in 1 s (restart 1 in a row)" in text
        wait_until("every deal to finish", lambda: settled(services), timeout=120)
        assert worker.popen.poll() is None, "the worker process ended instead of starting again in place"
        stages = services.ledger.read(lambda s: {d: s.get(Deal, d).stage for d in deals})
        assert set(stages.values()) == {Stage.BILLING_ACTIVE}
        invoices = services.ledger.read(lambda s: dict(s.execute(
            select(Invoice.deal_id, func.count()).group_by(Invoice.deal_id)).all()))
        assert invoices == {d: 1 for d in deals}
        assert outbox(services)[OutboxStatus.DEAD] == 0
    finally:
        rig.stop()
        services.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_a_worker_asked_to_stop_stays_stopped(pg_settings, tmp_path, sig):
    """Celery exits 1 after Ctrl-C and SIGQUIT: still a stop that was asked for."""
    rig = CeleryRig(pg_settings, tmp_path)
    try:
        worker = rig.worker(concurrency=1)
        worker.popen.send_signal(sig)  # the main process only, as a supervisor does
        assert worker.popen.wait(30) == 0
        assert "starting it again" not in worker.log.read_text()
    finally:
        rig.stop()
