"""The IMAP watcher process (`closeloop mail watch`): one watcher thread per
configured mailbox, each storing what it fetches through the ledger. Without a
configured mailbox (the embedded default) it has nothing to do and says so."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from adapters.imap_watcher import Fetched, ImapWatcher, Mailbox
from closeloop.bootstrap import Services
from flows.mail import read_checkpoint, store_messages
from handlers.mail_read import ReadConfig, read_message
from parsers.email_attachments import Limits

log = logging.getLogger("closeloop.mail")


@dataclass
class LedgerSink:
    """Where the watcher's batches go: parsed (pure), then stored, routed and
    checkpointed in one ledger transaction per batch."""

    services: Services
    config: ReadConfig

    def checkpoint(self, mailbox: Mailbox) -> tuple[int, int] | None:
        return self.services.ledger.read(read_checkpoint, mailbox.name)

    def store(self, mailbox: Mailbox, uidvalidity: int, batch: list[Fetched], last_uid: int) -> None:
        facts = [read_message(item.uid, item.raw, self.config) for item in batch]
        stored = self.services.ledger.run(store_messages, mailbox=mailbox.name, role=mailbox.role,
                                          uidvalidity=uidvalidity, last_uid=last_uid, messages=facts)
        if stored.new or stored.duplicates:
            log.info("mail %s: %d stored, %d duplicates (checkpoint %s:%s)", mailbox.name, len(stored.new),
                     stored.duplicates, uidvalidity, last_uid)


def read_config(services: Services) -> ReadConfig:
    s = services.settings
    return ReadConfig(secret=s.mail_token_secret(), authserv_id=s.mail_authserv_id,
                      limits=Limits(max_attachment_bytes=s.mail_max_attachment_mb << 20,
                                    max_total_bytes=2 * (s.mail_max_attachment_mb << 20),
                                    max_parts=s.mail_max_parts, max_depth=s.mail_max_depth))


def watchers(services: Services) -> list[ImapWatcher]:
    s = services.settings
    sink = LedgerSink(services, read_config(services))
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
