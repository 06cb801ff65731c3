"""Faults at every adapter while real Celery workers deliver (PostgreSQL, Redis):
the broker restarted mid-run (RELIABILITY 12), reminders waiting in the ledger, never
in the broker (13), Slack 429 / 500 (23), SMTP 4xx then 550 (28), DocuSign 5xx and a
hang, a real deadlock during invoice creation (36), and one pipeline step run by two
workers at once (8). The outside services are the loopback peers, reached over TCP."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.pool import NullPool

from closeloop.bootstrap import build
from closeloop.demo.loopback_slack import FakeSlackApi
from closeloop.demo.mail_servers import SmtpServer
from closeloop.tasks import wake_dispatch_on_commit
from flows.clock import SystemClock
from flows.collections import DunningNotice
from flows.deals import Deal, Stage
from flows.invoices import Invoice
from flows.licenses import License
from flows.mail import OutboundMail, OutboundStatus, queue_email
from flows.outbox import OutboxMessage, OutboxStatus
from flows.queries import timeline
from flows.steps import record_signature, send_quote
from tests.celery_kit import CeleryRig, PrivateRedis, environment, wait_until, outbox, settled
from tests.docusign_peer import envelope_of
from tests.factories import deal_at, quoted_deal, seed
from tests.mail_samples import SECRET

MAIL = {"mail_secret": SECRET, "mail_from": "sales@ourco.example", "mail_company": "OurCo", "smtp_starttls": False,
        "smtp_host": "127.0.0.1", "smtp_timeout": 5}


@pytest.fixture
def rig_for(tmp_path):
    """A rig on settings of the test's own (the processes read them from their environment)."""
    made: list[CeleryRig] = []

    def make(settings) -> CeleryRig:
        made.append(CeleryRig(settings, tmp_path))
        return made[-1]
    yield make
    for each in made:
        each.stop()


def messages(services, kind: str) -> list[OutboxMessage]:
    return services.ledger.read(lambda s: s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == kind).order_by(OutboxMessage.id)).all())


def pull_forward(services, kind: str) -> int:
    """The backoff's wait, skipped: a pending retry of `kind` made due now (the clock of a
    real worker cannot be moved; the row's due time can). Returns how many were pending."""
    def step(tx):
        return tx.session.execute(update(OutboxMessage).where(
            OutboxMessage.kind == kind, OutboxMessage.status == OutboxStatus.PENDING)
            .values(available_at=tx.now)).rowcount
    return services.ledger.run(step)


def sign_alone(services, deal_id: int) -> None:
    """The signature, with every following step left to the outbox (so to the workers)."""
    services.ledger.run_alone(record_signature, deal_id, version=1, signer="ada@acme.example",
                              evidence={"method": "t"})


def effects(services) -> dict[str, object]:
    def read(s):
        invoices = s.execute(select(Invoice.deal_id, func.count()).group_by(Invoice.deal_id)).all()
        licenses = s.execute(select(License.deal_id, func.count()).group_by(License.deal_id)).all()
        sequences = sorted(s.scalars(select(Invoice.sequence)).all())
        return {"invoices": dict(invoices), "licenses": dict(licenses), "sequences": sequences}
    return services.ledger.read(read)


def sink_keys(folder, kind: str) -> list[str]:
    path = folder / f"{kind}.jsonl"
    return [json.loads(line)["key"] for line in path.read_text().splitlines()] if path.exists() else []


# --- 12: the broker restarted mid-run ------------------------------------------------

def test_a_broker_restarted_mid_run_loses_no_deal_and_doubles_no_effect(private_settings, private_broker, rig_for):
    broker, settings = private_broker, private_settings
    rig = rig_for(settings)
    services = build(settings, SystemClock())
    wake_dispatch_on_commit(services)
    try:
        worker, beat = rig.worker(concurrency=2), rig.beat()
        customer = seed(services.ledger)
        deals = [deal_at(services.ledger, customer, Stage.SENT) for _ in range(6)]
        for deal_id in deals:
            sign_alone(services, deal_id)
        wait_until("the first deals to be invoiced", lambda: len(effects(services)["invoices"]) >= 1, timeout=60,
                   every=0.05)
        held = broker.task_ids()
        broker.stop()  # every queued and unacknowledged task is gone with it
        in_flight = outbox(services)
        assert in_flight[OutboxStatus.PENDING] + in_flight[OutboxStatus.LEASED] > 0, "nothing was in flight"
        time.sleep(2)
        broker.start()
        # It came back empty: none of the tasks it held is in it (the workers and the beat
        # reconnect at once and may already have sent new ones).
        assert not held & broker.task_ids()
        wait_until("every deal to finish after the restart", lambda: settled(services), timeout=120)
        # Both still up: Celery's worker sometimes stops on a broker restart and then starts
        # itself again in place (closeloop/respawn.py).
        assert worker.popen.poll() is None and beat.popen.poll() is None
        # The lost tasks were sent again on the reconnect, not after the hand-out's lease.
        assert "message(s) handed out again" in worker.log.read_text()
        stages = services.ledger.read(lambda s: {d: s.get(Deal, d).stage for d in deals})
        assert set(stages.values()) == {Stage.BILLING_ACTIVE}
        done = effects(services)
        assert done["invoices"] == {d: 1 for d in deals}
        assert done["licenses"] == {d: 1 for d in deals}  # one licensable line per deal
        assert done["sequences"] == list(range(1, len(deals) + 1))  # no number lost or taken twice
        assert outbox(services)[OutboxStatus.DEAD] == 0
        for kind in ("slack.deal_thread", "license.provision", "esign.send"):
            keys = sink_keys(settings.outbox_dir, kind)
            assert keys and len(keys) == len(set(keys)), f"{kind} written twice"
    finally:
        services.close()


DISPATCH_ONCE = ("from closeloop.bootstrap import build; from closeloop.config import load_settings; "
                 "from closeloop.tasks import dispatch_due; from flows.clock import SystemClock; "
                 "dispatch_due(build(load_settings(), SystemClock()))")


def test_a_dispatch_while_the_broker_is_down_leaves_every_message_due(private_settings, private_broker):
    """Handed out, then the task could not be sent: given back at once, not left leased until
    the hand-out's lease runs out (minutes in production)."""
    services = build(private_settings, SystemClock())
    try:
        customer = seed(services.ledger)
        for _ in range(3):
            sign_alone(services, deal_at(services.ledger, customer, Stage.SENT))
        private_broker.stop()
        run = subprocess.run([sys.executable, "-c", DISPATCH_ONCE], env=environment(private_settings),
                             capture_output=True, text=True, timeout=120)
        assert run.returncode != 0 and "Connection refused" in run.stderr, run.stderr[-2000:]
        counts = outbox(services)
        assert counts[OutboxStatus.LEASED] == 0 and counts[OutboxStatus.PENDING] >= 3
    finally:
        services.close()


# --- 13: a reminder waits in the ledger, never in the broker ---------------------------

class Publishes:
    """Every task published to a private broker, read from Redis MONITOR."""

    def __init__(self, broker: PrivateRedis) -> None:
        self.lines: list[str] = []
        self.error: Exception | None = None
        self.port = broker.port
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        wait_until("the monitor to listen", lambda: self.listening, timeout=10)

    listening = False

    def _listen(self) -> None:
        import redis
        try:
            with redis.Redis(port=self.port, socket_timeout=3600).monitor() as monitor:
                self.listening = True
                for command in monitor.listen():
                    if command["command"].upper().startswith("LPUSH"):
                        self.lines.append(command["command"].replace('\\"', '"'))
        except Exception as error:  # noqa: BLE001 — the broker stopped: the listening is over
            self.error = error

    def tasks(self) -> Counter:
        return Counter(re.search(r'"task": "([^"]+)"', line).group(1) for line in self.lines
                       if '"task": "' in line)

    def scheduled_ahead(self) -> list[str]:
        return [line[:300] for line in self.lines if '"eta": null' not in line or '"countdown"' in line]


def subjects(smtp) -> list[str]:
    return [str(message_from_bytes(m.data, policy=policy.default)["Subject"]) for m in smtp.received]


def test_a_reminder_due_later_is_not_in_the_broker_and_goes_out_once_when_due(private_settings, private_broker,
                                                                              rig_for):
    broker, smtp = private_broker, SmtpServer()
    settings = private_settings.model_copy(update={"money_tick_seconds": 0.5, "smtp_port": smtp.port, **MAIL})
    rig = rig_for(settings)
    services = build(settings, SystemClock())
    publishes = Publishes(broker)
    try:
        customer = seed(services.ledger)
        deal_id = deal_at(services.ledger, customer, Stage.INVOICED)  # due in 30 days: its reminder in 25
        rig.worker(concurrency=2)
        rig.beat()
        wait_until("six money ticks", lambda: publishes.error or publishes.tasks()["closeloop.tick"] >= 6,
                   timeout=60)
        assert publishes.error is None, publishes.error
        wait_until("the outbox to drain", lambda: settled(services), timeout=60)
        assert services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(DunningNotice))) == 0
        assert [s for s in subjects(smtp) if "due on" in s] == [], "a reminder went out 25 days early"
        assert publishes.tasks()["closeloop.deliver"] > 0 and publishes.scheduled_ahead() == []
        assert set(publishes.tasks()) <= {"closeloop.deliver", "closeloop.dispatch", "closeloop.tick", "closeloop.reclaim"}

        # The calendar reaches the reminder window (three days before the due date).
        def three_days_left(tx):
            invoice = tx.session.scalars(select(Invoice).where(Invoice.deal_id == deal_id)).one()
            invoice.due_on = tx.now.date() + timedelta(days=3)
            return invoice.number
        number = services.ledger.run(three_days_left)
        ticks = publishes.tasks()["closeloop.tick"]
        wait_until("the reminder email", lambda: any("due on" in s for s in subjects(smtp)), timeout=60)
        wait_until("eight more ticks", lambda: publishes.tasks()["closeloop.tick"] >= ticks + 8, timeout=60)
        wait_until("the outbox to drain", lambda: settled(services), timeout=60)
        sent = [s for s in subjects(smtp) if "due on" in s]
        assert len(sent) == 1, f"the reminder went out {len(sent)} times"
        assert number in sent[0]
        assert services.ledger.read(lambda s: s.scalars(select(DunningNotice.rung)).all()) == ["reminder"]
        assert publishes.scheduled_ahead() == []
    finally:
        rig.stop()
        smtp.stop()
        services.close()


# --- 23: Slack rate limits and errors, delivered by a worker ---------------------------

class TimedSlack(FakeSlackApi):
    """The loopback Slack, noting when each call came and what it was answered."""

    def answer(self, method, args):
        status, headers, body = super().answer(method, args)
        self.calls[-1].args["_at"], self.calls[-1].args["_status"] = time.monotonic(), status
        return status, headers, body


def test_slack_429_with_retry_after_and_a_500_are_waited_out_and_each_line_is_posted_once(private_settings, rig_for):
    slack = TimedSlack().start()
    slack.script["chat.postMessage"] = [(500, {}, {"ok": False, "error": "fatal_error"}),
                                        (429, {"Retry-After": "2"}, {"ok": False, "error": "ratelimited"}),
                                        (429, {"Retry-After": "2"}, {"ok": False, "error": "ratelimited"})]
    settings = private_settings.model_copy(update={
        "slack_bot_token": "xoxb-test", "slack_signing_secret": "s" * 32, "slack_api_url": slack.base_url,
        "slack_deals_channel": "C0DEALS"})
    rig = rig_for(settings)
    services = build(settings, SystemClock())
    wake_dispatch_on_commit(services)
    try:
        deal_id = deal_at(services.ledger, seed(services.ledger), Stage.SENT)
        rig.worker(concurrency=2)
        rig.beat()
        wait_until("every Slack line to be posted",
                   lambda: all(m.status is OutboxStatus.DONE for m in messages(services, "slack.deal_thread")),
                   timeout=90)
        posts = slack.of("chat.postMessage")
        refused = [p for p in posts if p.args["_status"] != 200]
        assert [p.args["_status"] for p in refused] == [500, 429, 429]
        gaps = [later.args["_at"] - earlier.args["_at"] for earlier, later in zip(posts[:3], posts[1:4])]
        assert gaps[0] >= 2.5, "the 500 was retried without backoff"  # half the first backoff, at least
        assert min(gaps[1:]) >= 2.0, "Retry-After was not waited out"
        posted = [p for p in posts if p.args["_status"] == 200]
        lines = messages(services, "slack.deal_thread")
        keys = [p.args["metadata"]["event_payload"]["key"] for p in posted if p.args.get("metadata")]
        assert sorted(keys) == sorted(m.idempotency_key for m in lines)  # each line once, none twice
        roots = [p for p in posted if not p.args.get("thread_ts")]
        assert len(roots) == 1  # one thread for the deal, however often the first post was refused
        assert lines[0].attempts == 4  # 500, 429, 429, then posted
        assert services.ledger.read(lambda s: s.get(Deal, deal_id).slack_thread) is not None
    finally:
        slack.stop()
        services.close()


# --- 28: SMTP 4xx then success, and 550, delivered by a worker --------------------------

def test_smtp_4xx_is_retried_with_the_same_message_id_and_550_is_dead_lettered_with_an_alert(private_settings, rig_for):
    smtp = SmtpServer()
    settings = private_settings.model_copy(update={"smtp_port": smtp.port, **MAIL})
    rig = rig_for(settings)
    services = build(settings, SystemClock())
    wake_dispatch_on_commit(services)
    context = {"name": "Ada", "number": "Q-2026-0001", "version": 1, "amount_minor": 123456, "currency": "EUR",
               "valid_until": "2026-04-09"}

    def send(deal_id, key):
        return services.ledger.run(lambda tx: queue_email(tx, key=key, deal_id=deal_id, to=["ada@acme.example"],
                                                          template="quote", locale="en", subject="", context=context,
                                                          domain="ourco.example"))
    try:
        customer = seed(services.ledger)
        first, second = (deal_at(services.ledger, customer, Stage.SENT) for _ in range(2))
        rig.worker(concurrency=2)
        rig.beat()
        smtp.handler.on_data.extend(["451 4.3.0 try again later", "421 4.7.0 closing connection"])
        message_id = send(first, "m-first")
        for attempt in (1, 2):
            wait_until(f"4xx number {attempt}", lambda left=2 - attempt: len(smtp.handler.on_data) == left and
                       messages(services, "email.send")[0].status is OutboxStatus.PENDING, timeout=60)
            row = messages(services, "email.send")[0]
            assert row.available_at >= services.ledger.clock.now() + timedelta(seconds=20)  # backoff, no hot loop
            pull_forward(services, "email.send")
        wait_until("the mail to be accepted", lambda: len(smtp.received) == 1, timeout=60)
        assert message_from_bytes(smtp.received[0].data, policy=policy.default)["Message-ID"] == message_id
        wait_until("the first mail's row done", lambda: messages(services, "email.send")[0].status is OutboxStatus.DONE)
        assert messages(services, "email.send")[0].attempts == 3

        smtp.handler.on_data.append("550 5.1.1 mailbox unavailable")
        send(second, "m-second")
        wait_until("the 550 to be dead-lettered", lambda: messages(services, "email.send")[1].status
                   is OutboxStatus.DEAD, timeout=60)
        wait_until("the outbox to settle", lambda: settled(services), timeout=60)
        rows = services.ledger.read(lambda s: s.scalars(select(OutboundMail).order_by(OutboundMail.id)).all())
        assert [r.status for r in rows] == [OutboundStatus.SENT, OutboundStatus.FAILED] and "550" in rows[1].error
        assert messages(services, "email.send")[1].attempts == 1  # permanent: not retried
        assert len(smtp.received) == 1
        assert "mail.delivery_failed" in [e.kind for e in services.ledger.read(timeline, second)]
        alert = [m for m in messages(services, "slack.deal_thread") if m.payload["kind"] == "mail.delivery_failed"]
        assert len(alert) == 1 and "550" in alert[0].payload["text"] and alert[0].status is OutboxStatus.DONE
    finally:
        smtp.stop()
        services.close()


# --- DocuSign 5xx and a hang, delivered by a worker -------------------------------------

def test_docusign_503_500_after_create_and_a_hang_end_in_one_envelope(private_settings, rig_for, docusign, jwt_key):
    from closeloop.demo.loopback_docusign import INTEGRATION_KEY, USER
    docusign.create_faults = ["503", "hang", "500-after-create"]
    docusign.hang_seconds = 30
    settings = private_settings.model_copy(update={
        "docusign_integration_key": INTEGRATION_KEY, "docusign_user_id": USER,
        "docusign_private_key": jwt_key.decode(), "docusign_oauth_host": docusign.host,
        "docusign_ca_cert": docusign.cert_path, "docusign_timeout_seconds": 3,
        "relay_lease_seconds": 30})  # longer than a quote PDF takes to render on a busy machine
    rig = rig_for(settings)
    services = build(settings, SystemClock())
    wake_dispatch_on_commit(services)
    try:
        customer = seed(services.ledger)
        deals = [quoted_deal(services.ledger, customer) for _ in range(2)]
        rig.worker(concurrency=2)
        rig.beat()
        started = time.monotonic()
        for deal_id in deals:
            services.ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")

        def sent() -> bool:
            rows = messages(services, "esign.send")
            if any(row.status is OutboxStatus.PENDING for row in rows):
                pull_forward(services, "esign.send")  # skip the backoff's wait, not the fault
            return all(row.status is OutboxStatus.DONE for row in rows)
        wait_until("both envelopes after the faults", sent, timeout=90, every=0.5)
        assert time.monotonic() - started < 60, "a hung DocuSign held the worker past its own timeout"
        assert docusign.create_faults == []
        creates = [p for m, p in docusign.requests if m == "POST" and p.endswith("/envelopes")]
        per_send = Counter(e.custom_fields["closeloop_key"] for e in docusign.envelopes.values())
        assert sorted(per_send.values()) == [1, 1], f"an envelope was created twice for one send: {per_send}"
        assert len(creates) == 3, docusign.requests  # 503 (nothing made), the hang and the 500 (each made one, unheard)
        # the 503 is one attempt; the hang and the 500 one each, plus the retry that finds the envelope
        assert sum(row.attempts for row in messages(services, "esign.send")) == 5
        assert {envelope_of(services, d).external_id for d in deals} == set(docusign.envelopes)
        wait_until("the hung create to time out on our side (the peer hangs for 30 s)",
                   lambda: "Read timed out. (read timeout=3" in rig.logs(), timeout=20)
    finally:
        services.close()


def _waiting(connection) -> list[int]:
    waiting = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'")).scalars().all()
    connection.rollback()
    return waiting


# --- 36: a real deadlock during invoice creation ----------------------------------------

def _blocked_by(connection, pid: int) -> list[int]:
    """The backends waiting for a lock `pid` holds (each look in its own transaction:
    pg_stat_activity is a snapshot taken once per transaction)."""
    blocked = connection.execute(text(
        "SELECT pid FROM pg_stat_activity WHERE :me = ANY(pg_blocking_pids(pid))"), {"me": pid}).scalars().all()
    connection.rollback()
    return blocked


def test_a_deadlock_with_invoice_creation_is_retried_and_makes_one_invoice(private_settings, rig_for):
    rig = rig_for(private_settings)
    services = build(rig.settings, SystemClock())
    wake_dispatch_on_commit(services)
    customer = seed(services.ledger)
    deal_at(services.ledger, customer, Stage.BILLING_ACTIVE)  # the invoice series exists: its counter can be held
    services.relay.drain()  # that deal's side effects done here, so the worker meets only the next deal's
    deal_id = deal_at(services.ledger, customer, Stage.WON)  # issue_invoice waits on the outbox
    engine = create_engine(rig.settings.database_url, poolclass=NullPool)
    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    try:
        with engine.connect() as other:
            before = other.execute(text(deadlocks)).scalar()
            other.execute(text("SET deadlock_timeout = '60s'"))  # the worker detects it, so the worker is the victim
            me = other.execute(text("SELECT pg_backend_pid()")).scalar()
            series = other.execute(text("SELECT series FROM number_series")).scalar()
            other.execute(text("SELECT next_value FROM number_series WHERE series = :s FOR UPDATE"), {"s": series})
            with engine.connect() as watch:
                rig.worker(concurrency=1)
                wait_until("the worker to hold the deal and wait for the number", lambda: _blocked_by(watch, me),
                           timeout=60, every=0.02)
            # Now take the deal the worker holds: a cycle, which PostgreSQL breaks by aborting the worker.
            other.execute(text("SELECT id FROM deals WHERE id = :d FOR UPDATE"), {"d": deal_id})
            other.rollback()
        wait_until("the deadlock to be counted", lambda: services.ledger.read(
            lambda s: s.execute(text(deadlocks)).scalar()) > before, timeout=30, every=0.2)
        rig.beat()
        wait_until("the pipeline to finish", lambda: settled(services), timeout=90)
        assert services.ledger.read(lambda s: s.get(Deal, deal_id).stage) is Stage.BILLING_ACTIVE
        done = effects(services)
        assert done["invoices"][deal_id] == 1
        assert done["sequences"] == list(range(1, len(done["sequences"]) + 1))  # gapless
        [step] = [m for m in messages(services, "pipeline.step") if m.payload["step"] == "issue_invoice"
                  and m.deal_id == deal_id]
        assert step.attempts == 1 and step.status is OutboxStatus.DONE  # retried inside the ledger, not redelivered
        assert outbox(services)[OutboxStatus.DEAD] == 0
    finally:
        engine.dispose()
        services.close()


# --- 8: two workers run the same pipeline step at once ---------------------------------

def test_two_workers_running_one_invoice_step_at_once_make_one_invoice(private_settings, rig_for):
    """The broker hands one task to two workers (a redelivery while the first still runs):
    both claim the message, both run issue_invoice; one invoice, one number, both exit cleanly."""
    from closeloop.celery_app import make_app
    rig = rig_for(private_settings)
    services = build(rig.settings, SystemClock())
    customer = seed(services.ledger)
    deal_id = deal_at(services.ledger, customer, Stage.WON)
    rig.worker("billing", concurrency=1, name="one")
    rig.worker("billing", concurrency=1, name="two")
    engine = create_engine(rig.settings.database_url, poolclass=NullPool)
    try:
        def head_is_invoice() -> bool:  # deliver what stands before issue_invoice in the deal's stream
            handed = services.relay.hand_out(1, stream=f"deal:{deal_id}")
            for message_id, _kind, owner in handed:
                row = services.ledger.read(lambda s, m=message_id: s.get(OutboxMessage, m))
                if row.payload.get("step") == "issue_invoice":
                    head.append((message_id, owner))
                    return True
                services.relay.deliver_handed(message_id, owner)
            return False
        head: list[tuple[int, str]] = []
        wait_until("issue_invoice at the head of the deal's stream", head_is_invoice, timeout=30)
        [(message_id, owner)] = head
        sender = make_app(rig.settings)  # an app of this test's own: no producer pool of an earlier test
        with engine.connect() as other:
            other.execute(text("SELECT id FROM deals WHERE id = :d FOR UPDATE"), {"d": deal_id})
            for _ in range(2):  # the same task, twice: what a redelivery looks like
                sender.send_task("closeloop.deliver", (message_id,), task_id=owner, queue="billing")
            with engine.connect() as watch:  # the second waits behind the first in the row's lock queue
                wait_until("both workers inside the step, waiting for the deal",
                           lambda: len(_waiting(watch)) == 2, timeout=60, every=0.05)
            other.rollback()
        wait_until("the step to be done", lambda: services.ledger.read(
            lambda s: s.get(OutboxMessage, message_id).status) is OutboxStatus.DONE, timeout=60)
        wait_until("both tasks to finish", lambda: rig.logs().count("succeeded in") >= 2, timeout=60)
        row = services.ledger.read(lambda s: s.get(OutboxMessage, message_id))
        assert row.attempts == 2
        done = effects(services)
        assert done["invoices"] == {deal_id: 1} and done["sequences"] == [1]
        assert "Traceback" not in rig.logs() and "raised unexpected" not in rig.logs()
        assert (rig.folder / "one.log").read_text().count("succeeded in") == 1
        assert (rig.folder / "two.log").read_text().count("succeeded in") == 1
    finally:
        engine.dispose()
        services.close()

