"""Ingestion in two steps: the watcher stores each fetched batch as raw bytes and moves
the checkpoint (one transaction), and classification (parse, match, route) follows
from the stored rows. A process that dies between the two loses nothing: the rows
wait, and the next pass classifies each exactly once. Real Dovecot on loopback, the
ledger on SQLite and PostgreSQL; the crash is a real SIGKILL of a child process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures.process import BrokenProcessPool

import pytest

from sqlalchemy import func, select

from flows.mail import InboundMail, MailCheckpoint, MailStatus
from flows.timeline import Event
from adapters.imap_watcher import ImapWatcher
from handlers.mail_store_process import StoreProcess
from handlers.mail_watch import LedgerSink, read_config, watch
from parsers.mail_token import reply_address
from tests.mail_samples import SECRET, reply
from tests import test_mail_inbound as inbound
from tests.test_mail_inbound import BASE, mails, outbox_kinds, wait_for, watcher_for

# The inbound tests' fixtures: a Dovecot for the module, a fresh folder, mail services, a deal.
dovecot, imap, mail_services, deal = inbound.dovecot, inbound.imap, inbound.mail_services, inbound.deal

# The watcher process, cut short: it stores what it fetched (no classification, as
# `closeloop mail watch` leaves that to its classifier thread), then is killed at once.
STORE_THEN_DIE = """
import json, os, signal, sys
from adapters.imap_watcher import ImapWatcher, Mailbox
from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.demo.mail_servers import PASSWORD, USER
from flows.clock import SystemClock
from handlers.mail_watch import LedgerSink, read_config
settings, port, folder = Settings(**json.loads(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
services = build(settings, SystemClock())
mailbox = Mailbox(role="sales", host="127.0.0.1", port=port, username=USER, password=PASSWORD, ssl=False,
                  folder=folder)
watcher = ImapWatcher(mailbox, LedgerSink(services, read_config(services)), timeout=5, settle=False)
print(watcher.sync_once(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def store_in_a_process_that_dies(services, imap) -> int:
    keep = {"database_url", "outbox_dir", "documents_dir", "data_dir", "mail_secret", "mail_authserv_id"}
    settings = json.dumps(services.settings.model_dump(mode="json", include=keep))
    done = subprocess.run([sys.executable, "-c", STORE_THEN_DIE, settings, str(imap.port), imap.folder],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr  # killed, not exited: nothing ran after the store
    return int(done.stdout.strip())


def routed_events(services, deal_id: int) -> list[str]:
    return services.ledger.read(lambda s: list(s.scalars(select(Event.kind).where(
        Event.deal_id == deal_id, Event.kind.like("mail.%")))))


def question(deal_id: int, n: int = 0) -> bytes:
    return reply(to=reply_address(BASE, deal_id, SECRET), body=f"Can we pay in {n + 2} parts?",
                 message_id=f"<q{n}-{deal_id}@acme.example>")


def test_mail_stored_before_a_crash_is_classified_after_the_restart_exactly_once(mail_services, imap, deal):
    imap.deliver(question(deal))
    before = outbox_kinds(mail_services)
    assert store_in_a_process_that_dies(mail_services, imap) == 1
    [stored] = mails(mail_services)
    assert stored.status is MailStatus.PENDING and stored.deal_id is None
    assert b"Can we pay in 2 parts?" in stored.raw and stored.text == ""
    assert mail_services.ledger.read(lambda s: s.scalar(select(MailCheckpoint.last_uid))) == 1
    assert outbox_kinds(mail_services) == before and routed_events(mail_services, deal) == []

    watcher = watcher_for(mail_services, imap.port, imap)  # the restarted watcher
    assert watcher.sync_once() == 0  # nothing fetched again: the checkpoint was durable
    [mail] = mails(mail_services)
    assert (mail.status, mail.deal_id, mail.matched_by, mail.intent) == (MailStatus.ROUTED, deal, "token", "question")
    assert mail.text == "Can we pay in 2 parts?"
    assert outbox_kinds(mail_services)[len(before):] == ["slack.deal_thread"]

    assert watcher.sync_once() == 0 and watcher.sink.settle() == 0  # later passes change nothing
    assert outbox_kinds(mail_services)[len(before):] == ["slack.deal_thread"]
    assert routed_events(mail_services, deal) == ["mail.question"]


def test_the_watch_process_classifies_what_a_crash_left_as_soon_as_it_starts(mail_services, imap, deal):
    imap.deliver(*(question(deal, n) for n in range(3)))
    assert store_in_a_process_that_dies(mail_services, imap) == 3
    stop = threading.Event()
    watcher = watcher_for(mail_services, imap.port, imap, idle_seconds=0.5)
    threads = watch(mail_services, stop, [watcher])
    try:
        wait_for(lambda: all(m.status is MailStatus.ROUTED for m in mails(mail_services)))
        imap.deliver(question(deal, 3))  # and what arrives afterwards, behind the fetch
        wait_for(lambda: len(mails(mail_services)) == 4
                 and all(m.status is MailStatus.ROUTED for m in mails(mail_services)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not watcher.settle  # the watcher thread only stored; the classifier thread routed
    assert routed_events(mail_services, deal) == ["mail.question"] * 4


def test_two_classifiers_at_once_route_each_stored_message_once(mail_services, imap, deal):
    imap.deliver(*(question(deal, n) for n in range(12)))
    assert watcher_for(mail_services, imap.port, imap, settle=False, batch=5).sync_once() == 12
    assert {m.status for m in mails(mail_services)} == {MailStatus.PENDING}
    sinks = [LedgerSink(mail_services, read_config(mail_services), settle_batch=4) for _ in range(2)]
    counts: list[int] = []
    threads = [threading.Thread(target=lambda s=s: counts.append(s.settle())) for s in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(counts) == 12
    assert {m.status for m in mails(mail_services)} == {MailStatus.ROUTED}
    assert routed_events(mail_services, deal) == ["mail.question"] * 12


def test_the_same_mail_delivered_twice_is_stored_once_before_any_parsing(mail_services, imap, deal):
    imap.deliver(question(deal), question(deal))
    watcher = watcher_for(mail_services, imap.port, imap, settle=False)
    assert watcher.sync_once() == 2
    count = mail_services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundMail)))
    assert count == 1
    assert watcher.sink.settle() == 1 and routed_events(mail_services, deal) == ["mail.question"]


def store_process_sink(services):
    process = StoreProcess(services.settings.database_url)
    process.start()
    return LedgerSink(services, read_config(services), store_process=process)


def test_the_store_process_stores_each_batch_with_its_checkpoint_at_the_watchers_time(mail_services, imap, deal,
                                                                                      clock):
    imap.deliver(*(question(deal, n) for n in range(7)))
    sink = store_process_sink(mail_services)
    try:
        watcher = ImapWatcher(watcher_for(mail_services, imap.port, imap).mailbox, sink, timeout=5, batch=3,
                              settle=False)
        assert watcher.sync_once() == 7
        stored = mails(mail_services)
        assert [m.status for m in stored] == [MailStatus.PENDING] * 7
        assert {m.received_at.replace(tzinfo=None) for m in stored} == {clock.now().replace(tzinfo=None)}
        assert mail_services.ledger.read(lambda s: s.scalar(select(MailCheckpoint.last_uid))) == 7
        assert watcher.sync_once() == 0 and sink.settle() == 7
    finally:
        sink.close()
    assert routed_events(mail_services, deal) == ["mail.question"] * 7


def test_a_store_process_killed_loses_nothing_and_a_new_one_stores_the_batch(mail_services, imap, deal):
    imap.deliver(*(question(deal, n) for n in range(4)))
    sink = store_process_sink(mail_services)
    try:
        watcher = ImapWatcher(watcher_for(mail_services, imap.port, imap).mailbox, sink, timeout=5, settle=False)
        first = sink.store_process.pid()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            watcher.sync_once()
        assert mails(mail_services) == []  # nothing half-stored, the checkpoint not moved
        assert mail_services.ledger.read(lambda s: s.scalar(select(MailCheckpoint.last_uid))) is None
        assert watcher.sync_once() == 4  # the next session: a fresh store process
        assert sink.store_process.pid() != first
        assert len(mails(mail_services)) == 4 and sink.settle() == 4
    finally:
        sink.close()
    assert routed_events(mail_services, deal) == ["mail.question"] * 4
