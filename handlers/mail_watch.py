"""The IMAP watcher process (`closeloop mail watch`): one watcher thread per
configured mailbox, each storing what it fetches through the ledger. Without a
configured mailbox (the embedded default) it has nothing to do and says so."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial

from adapters.imap_watcher import Fetched, ImapWatcher, Mailbox
from closeloop.bootstrap import Services
from flows.mail import InboundFacts, RouteFailed, classify_stored, pending_mail, read_checkpoint
from handlers.mail_read import ReadConfig, read_message
from handlers.mail_store_process import StoreProcess, store_fetched
from parsers.email_attachments import Limits

log = logging.getLogger("closeloop.mail")


@dataclass
class LedgerSink:
    """Where the watcher's batches go. `store` keeps each batch as fetched (raw bytes
    and identity, one transaction, checkpoint included) at the speed of the FETCH;
    `settle` then parses (pure), classifies, matches and routes every message stored
    but not classified yet — after a store, and at start for what a crash left."""

    services: Services
    config: ReadConfig
    # Parsing is the CPU-bound part of ingestion: spread it over processes when configured.
    pool: Executor | None = None
    settle_batch: int = 200
    # Set when a store left messages to classify: the classifier thread waits on it.
    waiting: threading.Event = field(default_factory=threading.Event)
    # Where batches are stored: a child process (what `closeloop mail watch` runs), or
    # this process when None (an in-memory database, tests of the sink alone).
    store_process: StoreProcess | None = None

    def checkpoint(self, mailbox: Mailbox) -> tuple[int, int] | None:
        return self.services.ledger.read(read_checkpoint, mailbox.name)

    def store(self, mailbox: Mailbox, uidvalidity: int, batch: list[Fetched], last_uid: int) -> None:
        if self.store_process is not None:
            pending, duplicates = self.store_process.store(mailbox, uidvalidity, batch, last_uid,
                                                           self.services.ledger.clock.now())
        else:
            pending, duplicates = store_fetched(self.services.ledger, mailbox.name, mailbox.role, uidvalidity,
                                                last_uid, [(item.uid, item.raw) for item in batch])
        if pending:
            self.waiting.set()
        if pending or duplicates:
            log.info("mail %s: %d stored, %d duplicates (checkpoint %s:%s)", mailbox.name, pending,
                     duplicates, uidvalidity, last_uid)

    def close(self) -> None:
        """Stop the store process and the parsing processes, if any."""
        if self.store_process is not None:
            self.store_process.close()
        if self.pool is not None:
            self.pool.shutdown()

    def settle(self) -> int:
        """Classify every stored-but-unclassified message, a batch per transaction; returns how many."""
        self.waiting.clear()
        done, after = 0, 0
        head_over = self.config.limits.max_message_bytes  # refused by size from the headers: no need of the rest
        while pending := self.services.ledger.read(pending_mail, self.settle_batch, after, head_over=head_over):
            after = pending[-1][0]
            todo = [(raw.uid, raw.raw, self.config, (raw.message_id, raw.content_hash), raw.size)
                    for _, raw in pending]
            if self.pool is not None and len(todo) > 1:
                facts = list(self.pool.map(_read, todo, chunksize=max(1, len(todo) // 16)))
            else:
                facts = [_read(args) for args in todo]
            messages = [(mail_id, f) for (mail_id, _), f in zip(pending, facts)]
            classify = partial(self.services.ledger.run, classify_stored, messages=messages)
            try:
                done += len(classify().new)
            except RouteFailed as error:  # rare: redo this batch message by message, keeping the failure
                log.warning("mail: %s; classifying the batch message by message", error)
                done += len(classify(guarded=True).new)
        return done


def _read(args: tuple) -> InboundFacts:  # type: ignore[type-arg] — module level: it crosses processes
    return read_message(*args)


def parse_pool(workers: int) -> Executor | None:
    return ProcessPoolExecutor(max_workers=workers) if workers > 1 else None


def read_config(services: Services) -> ReadConfig:
    s = services.settings
    dns_txt = None
    if s.mail_dkim_dns:  # DKIM checked against DNS by dkimpy when our MX wrote no Authentication-Results
        from dkim.dnsplug import get_txt as dns_txt
    return ReadConfig(secret=s.mail_token_secret(), authserv_id=s.mail_authserv_id, dns_txt=dns_txt,
                      limits=Limits(max_attachment_bytes=s.mail_max_attachment_mb << 20,
                                    max_total_bytes=2 * (s.mail_max_attachment_mb << 20),
                                    max_parts=s.mail_max_parts, max_depth=s.mail_max_depth))


def store_process(services: Services) -> StoreProcess | None:
    """The child that stores fetched mail, started; None when the database is in memory."""
    if not StoreProcess.can_serve(services.settings.database_url):
        return None
    process = StoreProcess(services.settings.database_url)
    process.start()
    return process


def watchers(services: Services) -> list[ImapWatcher]:
    s = services.settings
    sink = LedgerSink(services, read_config(services), parse_pool(s.mail_parse_workers),
                      store_process=store_process(services) if s.mailbox_urls() else None)
    return [ImapWatcher(Mailbox.from_url(role, url), sink, idle_seconds=s.imap_idle_seconds,
                        backoff_max=s.imap_backoff_max_seconds, batch=s.imap_batch)
            for role, url in s.mailbox_urls()]


def close(found: list[ImapWatcher]) -> None:
    """Once the watchers stopped: their sinks' processes go too."""
    for sink in {id(w.sink): w.sink for w in found}.values():
        if isinstance(sink, LedgerSink):
            sink.close()


def watch(services: Services, stop: threading.Event, found: list[ImapWatcher] | None = None) -> list[threading.Thread]:
    """Start a thread per mailbox, and one classifier thread per sink that settles what
    they store (so IMAP fetching never waits for parsing); they run until `stop` is set."""
    threads = []
    found = found if found is not None else watchers(services)
    sinks = {id(w.sink): w.sink for w in found if isinstance(w.sink, LedgerSink)}
    for watcher in found:
        watcher.settle = not isinstance(watcher.sink, LedgerSink)
        threads.append(threading.Thread(target=watcher.run, args=(stop,), name=f"imap-{watcher.mailbox.role}",
                                        daemon=True))
    threads += [threading.Thread(target=classify_until, args=(sink, stop), name="mail-classify", daemon=True)
                for sink in sinks.values()]
    for thread in threads:
        thread.start()
    return threads


def classify_until(sink: LedgerSink, stop: threading.Event, every: float = 1.0) -> None:
    """Settle at start (what a crash left), then whenever a store says so, or every `every` s."""
    while not stop.is_set():
        try:
            sink.settle()
        except Exception:  # noqa: BLE001 — the database is down: the rows wait, the next round retries
            log.exception("mail: classifying stored messages failed; retrying")
            stop.wait(every)
        sink.waiting.wait(every)
