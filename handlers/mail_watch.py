"""The IMAP watcher process (`closeloop mail watch`): one watcher thread per
configured mailbox, each storing what it fetches through the ledger. Without a
configured mailbox (the embedded default) it has nothing to do and says so."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial

from adapters.imap_watcher import Fetched, ImapWatcher, Mailbox
from closeloop.bootstrap import Services
from flows.mail import InboundFacts, RouteFailed, mail_key, read_checkpoint, seen_mail, store_messages
from handlers.mail_read import ReadConfig, identity, read_message
from parsers.email_attachments import Limits

log = logging.getLogger("closeloop.mail")


@dataclass
class LedgerSink:
    """Where the watcher's batches go: parsed (pure), then stored, routed and
    checkpointed in one ledger transaction per batch."""

    services: Services
    config: ReadConfig
    # Parsing is the CPU-bound part of ingestion: spread it over processes when configured.
    pool: Executor | None = None

    def checkpoint(self, mailbox: Mailbox) -> tuple[int, int] | None:
        return self.services.ledger.read(read_checkpoint, mailbox.name)

    def store(self, mailbox: Mailbox, uidvalidity: int, batch: list[Fetched], last_uid: int) -> None:
        # Recognise what is stored already (a resync, a redelivery) before parsing it.
        identities = [identity(item.raw) for item in batch]
        seen = self.services.ledger.read(seen_mail, [mail_key(*i) for i in identities])
        todo = [(item.uid, item.raw, self.config, known) for item, known in zip(batch, identities)
                if mail_key(*known) not in seen]
        if self.pool is not None and len(todo) > 1:
            facts = list(self.pool.map(_read, todo, chunksize=max(1, len(todo) // 16)))
        else:
            facts = [_read(args) for args in todo]
        store = partial(self.services.ledger.run, store_messages, mailbox=mailbox.name, role=mailbox.role,
                        uidvalidity=uidvalidity, last_uid=last_uid, messages=facts)
        try:
            stored = store()
        except RouteFailed as error:  # rare: redo this batch message by message, keeping the failure
            log.warning("mail %s: %s; storing the batch message by message", mailbox.name, error)
            stored = store(guarded=True)
        stored.duplicates += len(batch) - len(facts)
        if stored.new or stored.duplicates:
            log.info("mail %s: %d stored, %d duplicates (checkpoint %s:%s)", mailbox.name, len(stored.new),
                     stored.duplicates, uidvalidity, last_uid)


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


def watchers(services: Services) -> list[ImapWatcher]:
    s = services.settings
    sink = LedgerSink(services, read_config(services), parse_pool(s.mail_parse_workers))
    return [ImapWatcher(Mailbox.from_url(role, url), sink, idle_seconds=s.imap_idle_seconds,
                        backoff_max=s.imap_backoff_max_seconds, batch=s.imap_batch)
            for role, url in s.mailbox_urls()]


def watch(services: Services, stop: threading.Event, found: list[ImapWatcher] | None = None) -> list[threading.Thread]:
    """Start a thread per mailbox; they run until `stop` is set."""
    threads = []
    for watcher in found if found is not None else watchers(services):
        thread = threading.Thread(target=watcher.run, args=(stop,), name=f"imap-{watcher.mailbox.role}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
