"""The inbound path end to end: a real Dovecot on loopback, the real watcher, the
ledger on SQLite and PostgreSQL. Mail is delivered by another IMAP connection, as
the MTA would; nothing of ours is replaced."""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from adapters.imap_watcher import ImapWatcher, Mailbox
from closeloop.bootstrap import build
from closeloop.demo.mail_servers import PASSWORD, USER, CutProxy, ImapServer, start_dovecot
from flows.deals import Stage
from flows.mail import ContactFlag, InboundMail, MailCheckpoint, MailStatus, OutboundMail, OutboundStatus, queue_email
from flows.outbox import OutboxMessage
from flows.parties import Contact
from handlers.mail_watch import LedgerSink, read_config
from parsers.mail_token import reply_address
from tests.factories import deal_at, seed
from tests.mail_samples import AUTHSERV, SECRET, auto_reply, dsn, reply, tiny_pdf

BASE = "sales@ourco.example"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[ImapServer]:
    server = start_dovecot()
    yield server
    server.stop()


@dataclass
class Folder:
    """A fresh folder of the module's Dovecot for each test (a server start costs ~1 s)."""

    server: ImapServer
    folder: str

    @property
    def port(self) -> int:
        return self.server.port

    def deliver(self, *messages: bytes) -> None:
        self.server.deliver(*messages, folder=self.folder)

    def reset_uidvalidity(self) -> None:
        self.server.reset_uidvalidity(self.folder)


_folders = itertools.count(1)


@pytest.fixture
def imap(dovecot: ImapServer) -> Folder:
    name = f"t{next(_folders)}"
    client = dovecot.client()
    client.create_folder(name)
    client.logout()
    return Folder(dovecot, name)


@pytest.fixture
def mail_services(settings, clock, tmp_path):
    built = build(settings.model_copy(update={"mail_secret": SECRET, "mail_authserv_id": AUTHSERV,
                                              "mail_from": BASE}), clock)
    yield built
    built.close()


def watcher_for(services, port: int, folder: Folder, **kwargs) -> ImapWatcher:
    mailbox = Mailbox(role="sales", host="127.0.0.1", port=port, username=USER, password=PASSWORD, ssl=False,
                      folder=folder.folder)
    kwargs.setdefault("backoff_base", 0.05)
    kwargs.setdefault("timeout", 5)
    return ImapWatcher(mailbox, LedgerSink(services, read_config(services)), **kwargs)


def mails(services) -> list[InboundMail]:
    return services.ledger.read(lambda s: list(s.scalars(select(InboundMail).order_by(InboundMail.id))))


def outbox_kinds(services) -> list[str]:
    return services.ledger.read(lambda s: list(s.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id))))


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds} s")


@pytest.fixture
def deal(mail_services) -> int:
    customer = seed(mail_services.ledger)
    return deal_at(mail_services.ledger, customer, Stage.SENT)


def test_customer_question_to_the_tokened_address_reaches_the_deal_thread(mail_services, imap, deal):
    imap.deliver(reply(to=reply_address(BASE, deal, SECRET), body="Can we pay in two parts?\n\nOn Mon, 9 Mar 2026 at 10:02, Kowalski Sales <sales@example.com> wrote:\n> q"))
    before = outbox_kinds(mail_services)
    assert watcher_for(mail_services, imap.port, imap).sync_once() == 1
    [mail] = mails(mail_services)
    assert (mail.status, mail.deal_id, mail.matched_by, mail.intent) == (MailStatus.ROUTED, deal, "token", "question")
    assert mail.text == "Can we pay in two parts?"
    assert outbox_kinds(mail_services)[len(before):] == ["slack.deal_thread"]
    checkpoint = mail_services.ledger.read(lambda s: s.scalar(select(MailCheckpoint)))
    assert checkpoint.last_uid == 1


def test_a_forged_token_does_not_attach_mail_to_a_deal(mail_services, imap, deal):
    forged = reply_address(BASE, deal, "not-our-secret")
    imap.deliver(reply(to=forged, body="Signed.", attachments=[("quote.pdf", "application/pdf", tiny_pdf())]))
    watcher_for(mail_services, imap.port, imap).sync_once()
    [mail] = mails(mail_services)
    assert mail.status is MailStatus.TRIAGE and mail.deal_id is None
    assert "slack.triage" in outbox_kinds(mail_services)


def test_threading_on_our_message_id_and_quote_numbers_match_too(mail_services, imap, deal):
    sent = mail_services.ledger.run(lambda tx: queue_email(
        tx, key="t1", deal_id=deal, to=["ada@acme.example"], template="quote", locale="en", subject="Quote",
        context={}, domain="ourco.example"))
    number = mail_services.ledger.read(lambda s: s.scalar(select(OutboundMail.deal_id)))
    from flows.quotes import Quote
    quote_number = mail_services.ledger.read(lambda s: s.scalar(select(Quote.number)))
    imap.deliver(reply(to=BASE, body="Thanks, looks fine", in_reply_to=sent),
                 reply(to=BASE, subject=f"Question about {quote_number}", body="When does it start?"))
    watcher_for(mail_services, imap.port, imap).sync_once()
    first, second = mails(mail_services)
    assert (first.deal_id, first.matched_by) == (number, "thread")
    assert (second.deal_id, second.matched_by) == (deal, "number")


def test_idle_wakes_up_for_new_mail_and_renews_itself(mail_services, imap, deal):
    watcher = watcher_for(mail_services, imap.port, imap, idle_seconds=0.4)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(watcher.synced.is_set)
        wait_for(lambda: watcher.stats.idles >= 3)  # renewed well before any server timeout
        imap.deliver(reply(to=reply_address(BASE, deal, SECRET), body="Is onboarding included?"))
        wait_for(lambda: len(mails(mail_services)) == 1)
    finally:
        stop.set()
        thread.join(10)
    assert watcher.stats.sessions == 1 and watcher.stats.reconnects == 0


def test_connection_dropped_mid_idle_reconnects_and_loses_nothing(mail_services, imap, deal):
    proxy = CutProxy(imap.port)
    watcher = watcher_for(mail_services, proxy.port, imap, idle_seconds=30)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.stats.idles >= 1)
        proxy.cut()
        imap.deliver(reply(to=reply_address(BASE, deal, SECRET), body="Arrived while you were away?"))
        wait_for(lambda: len(mails(mail_services)) == 1)
        imap.deliver(reply(to=reply_address(BASE, deal, SECRET), body="And another one?"))
        wait_for(lambda: len(mails(mail_services)) == 2)
    finally:
        stop.set()
        thread.join(10)
        proxy.stop()
    assert watcher.stats.reconnects >= 1 and proxy.connections >= 2
    assert [m.uid for m in mails(mail_services)] == [1, 2]


def test_connection_dropped_mid_fetch_stores_every_message_once(mail_services, imap, deal):
    to = reply_address(BASE, deal, SECRET)
    imap.deliver(*[reply(to=to, body=f"Message {n}?\n" + "x" * 60_000) for n in range(12)])
    proxy = CutProxy(imap.port, cut_after_bytes=250_000)  # cut once, in the middle of the second batch
    watcher = watcher_for(mail_services, proxy.port, imap, batch=3, idle_seconds=30)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(mails(mail_services)) == 12, 20)
    finally:
        stop.set()
        thread.join(10)
        proxy.stop()
    assert watcher.stats.reconnects >= 1
    assert sorted(m.uid for m in mails(mail_services)) == list(range(1, 13))


def test_uidvalidity_reset_resyncs_and_reprocesses_nothing(mail_services, imap, deal):
    to = reply_address(BASE, deal, SECRET)
    imap.deliver(*[reply(to=to, body=f"Question {n}?") for n in range(3)])
    watcher = watcher_for(mail_services, imap.port, imap)
    watcher.sync_once()
    before = (len(mails(mail_services)), len(outbox_kinds(mail_services)))
    old = mail_services.ledger.read(lambda s: s.scalar(select(MailCheckpoint.uidvalidity)))
    imap.reset_uidvalidity()
    imap.deliver(reply(to=to, body="A new one after the reset?"))
    watcher.sync_once()
    checkpoint = mail_services.ledger.read(lambda s: s.scalar(select(MailCheckpoint)))
    assert checkpoint.uidvalidity != old and checkpoint.last_uid == 4
    assert len(mails(mail_services)) == before[0] + 1
    assert len(outbox_kinds(mail_services)) == before[1] + 1  # only the new message was routed


def test_the_same_mail_delivered_twice_is_stored_once(mail_services, imap, deal):
    raw = reply(to=reply_address(BASE, deal, SECRET), body="Is this twice?")
    imap.deliver(raw, b"Received: from relay2.example by mx.ourco.example\r\n" + raw)
    watcher_for(mail_services, imap.port, imap).sync_once()
    assert len(mails(mail_services)) == 1


def test_a_bounce_is_tied_to_our_message_and_flags_the_contact(mail_services, imap, deal):
    sent = mail_services.ledger.run(lambda tx: queue_email(
        tx, key="inv1", deal_id=deal, to=["billing@acme.example"], template="invoice", locale="en",
        subject="Invoice", context={}, domain="ourco.example"))
    imap.deliver(dsn(original_message_id=sent, recipient="billing@acme.example"))
    watcher_for(mail_services, imap.port, imap).sync_once()
    [mail] = mails(mail_services)
    assert (mail.kind, mail.status, mail.deal_id, mail.intent) == ("bounce", MailStatus.BOUNCE, deal, None)

    def state(s):
        return (s.scalar(select(OutboundMail.status)),
                s.scalar(select(Contact.bounced_at).where(Contact.email == "billing@acme.example")),
                s.scalar(select(ContactFlag.flag)))
    status, bounced_at, flag = mail_services.ledger.read(state)
    assert status is OutboundStatus.BOUNCED and bounced_at is not None and flag == "bouncing"
    from flows.queries import timeline
    kinds = [e.kind for e in mail_services.ledger.read(timeline, deal)]
    assert "mail.bounced" in kinds


def test_an_auto_reply_is_recorded_and_ignored(mail_services, imap, deal):
    imap.deliver(auto_reply(to=reply_address(BASE, deal, SECRET)))
    before = outbox_kinds(mail_services)
    watcher_for(mail_services, imap.port, imap).sync_once()
    [mail] = mails(mail_services)
    assert (mail.kind, mail.status, mail.deal_id) == ("auto_reply", MailStatus.IGNORED, deal)
    assert outbox_kinds(mail_services) == before


def test_unmatched_mail_is_listed_for_triage_never_dropped(mail_services, imap, monkeypatch):
    imap.deliver(reply(to=BASE, subject="Hello", body="Who do I talk to about pricing?"))
    watcher_for(mail_services, imap.port, imap).sync_once()
    [mail] = mails(mail_services)
    assert mail.status is MailStatus.TRIAGE
    assert outbox_kinds(mail_services) == ["slack.triage"]
    from closeloop.cli import main
    monkeypatch.setenv("DATABASE_URL", mail_services.settings.database_url)
    result = CliRunner().invoke(main, ["mail", "triage"])
    assert result.exit_code == 0, result.output
    assert "Who do I talk to about pricing?" in result.output and "triage" in result.output


def test_signed_pdf_from_the_contact_goes_to_verification(mail_services, imap, deal):
    imap.deliver(reply(to=reply_address(BASE, deal, SECRET), body="Signed copy attached.",
                       attachments=[("Q-signed.pdf", "application/pdf", tiny_pdf())]))
    watcher_for(mail_services, imap.port, imap).sync_once()
    [mail] = mails(mail_services)
    assert (mail.status, mail.intent) == (MailStatus.ROUTED, "signed_document")
    assert "mail.signed_return" in outbox_kinds(mail_services)
    count = mail_services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundMail)))
    assert count == 1


def test_closeloop_mail_watch_once_reads_the_configured_mailbox(mail_services, imap, deal, monkeypatch, tmp_path):
    from closeloop.cli import main
    imap.deliver(reply(to=reply_address(BASE, deal, SECRET), body="Does the price include support?"))
    for name, value in {"DATABASE_URL": mail_services.settings.database_url, "CLOSELOOP_MAIL_SECRET": SECRET,
                        "CLOSELOOP_MAILBOXES": f"sales=imap://{USER}:{PASSWORD}@127.0.0.1:{imap.port}/{imap.folder}",
                        "CLOSELOOP_OUTBOX_DIR": str(tmp_path / "outbox")}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["mail", "watch", "--once"])
    assert result.exit_code == 0, result.output
    assert f"sales:{USER}@127.0.0.1/{imap.folder}: 1 fetched" in result.output
    [mail] = mails(mail_services)
    assert (mail.deal_id, mail.status) == (deal, MailStatus.ROUTED)


def test_without_a_mailbox_the_watcher_has_nothing_to_do(monkeypatch, tmp_path):
    from closeloop.cli import main
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.delenv("CLOSELOOP_MAILBOXES", raising=False)
    monkeypatch.delenv("IMAP_HOST", raising=False)
    result = CliRunner().invoke(main, ["mail", "watch", "--once"])  # without --once it idles until stopped
    assert result.exit_code == 0 and "nothing to watch" in result.output


def test_idle_renewal_beyond_29_minutes_and_malformed_mailboxes_are_refused():
    from pydantic import ValidationError

    from closeloop.config import Settings
    with pytest.raises(ValidationError):
        Settings(CLOSELOOP_IMAP_IDLE_SECONDS=30 * 60)
    with pytest.raises(ValueError, match="must look like"):
        Settings(CLOSELOOP_MAILBOXES="sales=http://x").mailbox_urls()
    [(role, url)] = Settings(IMAP_HOST="imap.example", IMAP_USERNAME="a@b", IMAP_PASSWORD="p;w").mailbox_urls()
    assert role == "sales" and Mailbox.from_url(role, url).password == "p;w"


def test_parsing_spread_over_processes_stores_the_same(mail_services, imap, deal):
    from handlers.mail_watch import parse_pool
    imap.deliver(*[reply(to=reply_address(BASE, deal, SECRET), body=f"Question {n}?") for n in range(6)])
    pool = parse_pool(2)
    try:
        mailbox = Mailbox(role="sales", host="127.0.0.1", port=imap.port, username=USER, password=PASSWORD,
                          ssl=False, folder=imap.folder)
        ImapWatcher(mailbox, LedgerSink(mail_services, read_config(mail_services), pool), timeout=5).sync_once()
    finally:
        pool.shutdown()
    assert sorted(m.uid for m in mails(mail_services)) == [1, 2, 3, 4, 5, 6]
    assert {m.status for m in mails(mail_services)} == {MailStatus.ROUTED}
