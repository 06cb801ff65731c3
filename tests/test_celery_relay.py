"""The outbox relay on real Celery workers (Redis broker, PostgreSQL): every message
delivered once through the queue of its kind, a worker killed mid-task loses nothing,
a task that kills every worker it touches ends in the dead-letter queue."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from closeloop.bootstrap import build
from closeloop.celery_app import make_app, queue_for
from closeloop.tasks import wake_dispatch_on_commit
from flows.clock import SystemClock
from flows.deals import Deal, Stage
from flows.outbox import OutboxMessage, OutboxStatus
from flows.steps import record_signature
from tests.celery_kit import CeleryRig, amqp_url, wait_until, outbox, settled
from tests.factories import deal_at, seed


def signed_deals(services, n: int) -> list[int]:
    customer = seed(services.ledger)
    deals = [deal_at(services.ledger, customer, Stage.SENT) for _ in range(n)]
    for deal_id in deals:
        services.ledger.run(record_signature, deal_id, version=1, signer="ada@acme.example", evidence={"method": "t"})
    return deals


def test_the_app_is_configured_never_to_lose_a_task(pg_settings):
    conf = make_app(pg_settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert {entry["options"]["queue"] for entry in conf.beat_schedule.values()} == {"control"}


def test_kinds_go_to_the_queue_of_their_work():
    assert queue_for("slack.deal_thread") == queue_for("slack.alert") == "slack"
    assert queue_for("email.send") == "mail"
    assert queue_for("invoice.deliver") == queue_for("esign.send") == "pdf"
    assert queue_for("payment.collect") == queue_for("license.provision") == queue_for("pipeline.step") == "billing"
    assert queue_for("something.new") == "default"


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_workers_deliver_every_message_once_through_the_queues(pg_settings, tmp_path, broker):
    if broker == "rabbitmq":
        pg_settings = pg_settings.model_copy(update={"broker_url": amqp_url()})
    rig = CeleryRig(pg_settings, tmp_path)
    try:
        delivered_once(pg_settings, rig)
    finally:
        rig.stop()


def delivered_once(pg_settings, rig) -> None:
    services = build(pg_settings, SystemClock())
    wake_dispatch_on_commit(services)
    rig.worker("control,slack,mail,billing,default", concurrency=2, name="main")
    rig.worker("pdf", concurrency=1, name="pdf")
    deals = signed_deals(services, 4)
    wait_until("the outbox to drain", lambda: settled(services), timeout=90)
    counts = outbox(services)
    assert counts[OutboxStatus.DEAD] == 0 and counts[OutboxStatus.DONE] > 0
    attempts = services.ledger.read(lambda s: s.scalars(select(OutboxMessage.attempts)).all())
    assert set(attempts) == {1}, "a message was attempted more than once with no fault"
    stages = services.ledger.read(lambda s: {d: s.get(Deal, d).stage for d in deals})
    assert set(stages.values()) == {Stage.BILLING_ACTIVE}
    pdf_log = (rig.folder / "pdf.log").read_text()
    assert '"kind": "invoice.deliver"' in pdf_log and '"kind": "slack.deal_thread"' not in pdf_log
    services.close()


def test_a_worker_killed_mid_delivery_loses_nothing_and_the_retry_counts_as_an_attempt(pg_settings, rig, tmp_path):
    """RELIABILITY 9 and 10: SIGKILL before the effect, and after it before the ack."""
    services = build(pg_settings, SystemClock())
    wake_dispatch_on_commit(services)
    crash = tmp_path / "crash"
    crash.mkdir()
    customer = seed(services.ledger)
    deals = [deal_at(services.ledger, customer, Stage.SENT) for _ in range(2)]
    (crash / "plan.json").write_text(json.dumps([f"deliver.before:license.provision:{deals[0]}",
                                                 f"deliver.after:invoice.deliver:{deals[1]}"]))
    rig.env["CLOSELOOP_CRASHPOINTS"] = str(crash)
    rig.worker(concurrency=2)
    rig.beat()
    for deal_id in deals:
        services.ledger.run(record_signature, deal_id, version=1, signer="ada@acme.example", evidence={"method": "t"})
    wait_until("the outbox to drain after two crashes", lambda: settled(services), timeout=120)
    assert sorted(p.name for p in (crash / "fired").iterdir()) == sorted(json.loads((crash / "plan.json").read_text()))

    def attempts(kind, deal_id):
        return services.ledger.read(lambda s: s.scalar(select(OutboxMessage.attempts).where(
            OutboxMessage.kind == kind, OutboxMessage.deal_id == deal_id)))
    assert attempts("license.provision", deals[0]) == 2
    assert attempts("invoice.deliver", deals[1]) == 2
    assert outbox(services)[OutboxStatus.DEAD] == 0
    assert "WorkerLostError" in rig.logs() or "exited with 'signal 9" in rig.logs()
    services.close()


def test_a_poison_message_that_kills_every_worker_is_dead_lettered(pg_settings, rig, tmp_path):
    """RELIABILITY 11: after N attempts it goes to the dead-letter queue, no endless redelivery."""
    settings = pg_settings.model_copy(update={"relay_max_attempts": 3})
    services = build(settings, SystemClock())
    wake_dispatch_on_commit(services)
    crash = tmp_path / "crash"
    (crash / "fired").mkdir(parents=True)
    customer = seed(services.ledger)
    deal_id = deal_at(services.ledger, customer, Stage.SENT)
    plan = [f"deliver.before:invoice.deliver:{deal_id}"]
    (crash / "plan.json").write_text(json.dumps(plan))
    rig.env.update({"CLOSELOOP_CRASHPOINTS": str(crash), "CLOSELOOP_RELAY_MAX_ATTEMPTS": "3"})
    rig.worker(concurrency=1)
    rig.beat()
    services.ledger.run(record_signature, deal_id, version=1, signer="ada@acme.example", evidence={"method": "t"})

    def rearm() -> bool:  # a poison: every attempt dies, so re-arm the point after each death
        for fired in (crash / "fired").iterdir():
            fired.unlink()
        return services.ledger.read(lambda s: s.scalar(select(OutboxMessage.status).where(
            OutboxMessage.kind == "invoice.deliver"))) is OutboxStatus.DEAD
    wait_until("the poison message to be dead-lettered", rearm, timeout=120, every=0.05)
    row = services.ledger.read(lambda s: s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "invoice.deliver")).one())
    assert row.attempts == 4 and "never finished" in row.last_error
    services.close()


def test_the_beat_sends_the_ticks_and_the_workers_run_them(pg_settings, rig):
    from flows.gap_digest import DIGEST_KIND, GapDigest
    services = build(pg_settings, SystemClock())
    rig.env.update({"CLOSELOOP_SCHEDULER_SECONDS": "1", "CLOSELOOP_DIGEST_TIME": "00:00"})
    rig.worker("control,slack,default", concurrency=1)
    rig.beat()
    wait_until("the gap digest tick to queue today's digest", lambda: services.ledger.read(
        lambda s: s.scalar(select(func.count()).select_from(GapDigest))) == 1, timeout=60)
    time.sleep(3)  # more ticks come; the digest is queued once a day all the same
    assert services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == DIGEST_KIND))) == 1
    assert rig.logs().count("closeloop.tick") >= 2
    services.close()


def test_a_second_beat_stands_by_until_the_first_is_gone(pg_settings, rig):
    from tests.celery_kit import Process
    first = rig.beat()
    second = Process("beat2", ["beat"], rig.env, rig.folder / "beat2.log", "standing by")
    rig.processes.append(second)
    second.start()
    assert "beat: Starting" not in second.log.read_text()
    first.kill()
    wait_until("the standby beat to take over", lambda: "beat: Starting" in second.log.read_text(), timeout=30)
