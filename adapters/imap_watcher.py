"""The IMAP side of the email agent (imapclient): watch one mailbox, hand every new
message to a sink in batches, and never skip or repeat one.

- New mail is found by UID above the sink's checkpoint; the sink stores a batch and
  moves the checkpoint in one transaction, so a crash or a cut connection mid-FETCH
  means the batch is fetched again — and the sink de-duplicates it.
- Storing keeps the bytes only; understanding them is the sink's `settle`, after the
  sync (or in a thread of its own), so fetching runs at the speed of the FETCH.
- IDLE waits for mail; it is renewed every `idle_seconds` (servers may log out a
  client idle for 30 minutes, RFC 2177), and a dropped connection is reopened with
  exponential backoff.
- A changed UIDVALIDITY (the server renumbered the mailbox) restarts from UID 1; the
  sink's de-duplication by Message-ID and content makes that re-process nothing.

The mailbox is opened read-only and bodies fetched with BODY.PEEK: the watcher never
changes flags, so a person reading the same mailbox sees it as it was."""
from __future__ import annotations

import imaplib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

log = logging.getLogger("closeloop.imap")

# What a lost connection looks like through imapclient and imaplib.
CONNECTION_ERRORS = (OSError, IMAPClientError, imaplib.IMAP4.abort, imaplib.IMAP4.error, socket.timeout, EOFError)


@dataclass(frozen=True)
class Mailbox:
    role: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    ssl: bool = True

    @property
    def name(self) -> str:
        """Stable identity of the checkpoint: role, account and folder."""
        return f"{self.role}:{self.username}@{self.host}/{self.folder}"

    @classmethod
    def from_url(cls, role: str, url: str) -> Mailbox:
        parts = urlsplit(url)
        ssl = parts.scheme == "imaps"
        return cls(role=role, host=parts.hostname or "localhost", port=parts.port or (993 if ssl else 143),
                   username=unquote(parts.username or ""), password=unquote(parts.password or ""),
                   folder=unquote(parts.path.lstrip("/")) or "INBOX", ssl=ssl)


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes


class Sink(Protocol):
    def checkpoint(self, mailbox: Mailbox) -> tuple[int, int] | None:
        """(uidvalidity, last stored uid) or None when nothing was stored yet."""

    def store(self, mailbox: Mailbox, uidvalidity: int, batch: list[Fetched], last_uid: int) -> None:
        """Store the batch and move the checkpoint to last_uid, durably, or raise."""

    def settle(self) -> int:
        """Process what was stored and not processed yet (also what a crash left); how many."""


@dataclass
class WatchStats:
    sessions: int = 0
    fetched: int = 0
    idles: int = 0
    reconnects: int = 0
    last_error: str = ""


class ImapWatcher:
    def __init__(self, mailbox: Mailbox, sink: Sink, *, idle_seconds: float = 25 * 60,
                 backoff_max: float = 300.0, backoff_base: float = 0.5, batch: int = 200, timeout: float = 60.0,
                 rng: random.Random | None = None, monotonic: Callable[[], float] = time.monotonic,
                 settle: bool = True, large_bytes: int = 1 << 20) -> None:
        self.mailbox, self.sink = mailbox, sink
        # False when another thread settles what this one stores (handlers.mail_watch.watch).
        self.settle = settle
        self.idle_seconds, self.batch, self.timeout = idle_seconds, batch, timeout
        self.large_bytes = large_bytes
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.stats = WatchStats()
        self.synced = threading.Event()  # set after each completed sync (tests, the demo)
        self._failures = 0

    def run(self, stop: threading.Event) -> None:
        """Watch until `stop` is set, reconnecting with backoff after every failure."""
        self._failures = 0
        while not stop.is_set():
            try:
                self._session(stop)
            except CONNECTION_ERRORS as error:
                self._failures += 1
                failures = self._failures
                self.stats.reconnects += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
                delay = delay / 2 + delay / 2 * self.rng.random()
                log.warning("imap %s: %s; reconnecting in %.1f s", self.mailbox.name, self.stats.last_error, delay)
                stop.wait(delay)
            except Exception as error:  # the sink failed (database down): same backoff, never a crash
                self._failures += 1
                failures = self._failures
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.exception("imap %s: storing failed; retrying", self.mailbox.name)
                stop.wait(min(self.backoff_max, self.backoff_base * 2 ** (failures - 1)))

    def connect(self) -> IMAPClient:
        client = IMAPClient(self.mailbox.host, port=self.mailbox.port, ssl=self.mailbox.ssl, timeout=self.timeout)
        client.login(self.mailbox.username, self.mailbox.password)
        return client

    def sync_once(self) -> int:
        """Connect, fetch everything new, disconnect (the CLI's --once, the benchmark)."""
        client = self.connect()
        try:
            info = client.select_folder(self.mailbox.folder, readonly=True)
            return self._sync(client, int(info[b"UIDVALIDITY"]))
        finally:
            _logout(client)

    def _session(self, stop: threading.Event) -> None:
        client = self.connect()
        self.stats.sessions += 1
        try:
            info = client.select_folder(self.mailbox.folder, readonly=True)
            uidvalidity = int(info[b"UIDVALIDITY"])
            self._sync(client, uidvalidity)
            self._failures = 0  # a session that synced is a success: the next drop starts the backoff anew
            while not stop.is_set():
                # NOOP before each IDLE proves the session is alive, and reports what arrived
                # while the last sync (or the last IDLE's end) kept us busy.
                if _changed(client.noop()[1]) or self._idle(client, stop):
                    uidvalidity = self._uidvalidity(client, uidvalidity)
                    self._sync(client, uidvalidity)
        finally:
            _logout(client)

    def _idle(self, client: IMAPClient, stop: threading.Event) -> bool:
        """IDLE until new mail, `idle_seconds`, or stop; True when the mailbox changed."""
        client.idle()
        self.stats.idles += 1
        changed = False
        deadline = self.monotonic() + self.idle_seconds
        try:
            while not stop.is_set() and not changed:
                left = deadline - self.monotonic()
                if left <= 0:
                    break
                began = self.monotonic()
                responses = client.idle_check(timeout=min(1.0, left))
                # imapclient swallows EOF in idle_check: a socket readable without data
                # returns at once with nothing. Tell that apart from a quiet mailbox.
                if not responses and self.monotonic() - began < min(1.0, left) / 2 and _peer_closed(client):
                    raise imaplib.IMAP4.abort("connection closed during IDLE")
                changed = _changed(responses)
        finally:
            done = client.idle_done()
        return changed or _changed(done[1])

    def _uidvalidity(self, client: IMAPClient, known: int) -> int:
        status = client.folder_status(self.mailbox.folder, [b"UIDVALIDITY"])
        current = int(status[b"UIDVALIDITY"])
        if current != known:  # renumbered under us: reselect so UIDs mean what they say
            client.select_folder(self.mailbox.folder, readonly=True)
        return current

    def _sync(self, client: IMAPClient, uidvalidity: int) -> int:
        checkpoint = self.sink.checkpoint(self.mailbox)
        last = checkpoint[1] if checkpoint is not None and checkpoint[0] == uidvalidity else 0
        if checkpoint is not None and checkpoint[0] != uidvalidity:
            log.warning("imap %s: UIDVALIDITY changed %s -> %s: resyncing from the start (duplicates are dropped)",
                        self.mailbox.name, checkpoint[0], uidvalidity)
        # "n:*" always matches the highest UID, even below n: keep only what is new.
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        count = 0
        # The next batch is fetched while the last one is stored: one store in flight at
        # most, in order, so memory stays at two batches and the checkpoint never passes
        # a batch that is not stored. A failure waits for the store in flight, then raises.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imap-store-{self.mailbox.role}") as storing:
            storing_now: Future[None] | None = None
            for chunk in self._chunks(client, uids):
                response = client.fetch(chunk, [b"BODY.PEEK[]"])
                batch = [Fetched(uid, response[uid][b"BODY[]"]) for uid in chunk if uid in response]
                del response
                if storing_now is not None:
                    storing_now.result()
                storing_now = storing.submit(self.sink.store, self.mailbox, uidvalidity, batch, chunk[-1])
                count += len(batch)
                self.stats.fetched += len(batch)
            if storing_now is not None:
                storing_now.result()
        if self.settle:
            self.sink.settle()
        self.synced.set()
        return count


    def _chunks(self, client: IMAPClient, uids: list[int]) -> list[list[int]]:
        """Batches of `batch` UIDs, but a message over `large_bytes` is fetched alone:
        a batch holds at most `batch` ordinary messages or one large one in memory."""
        if not uids:
            return []
        large = set(client.search(["UID", f"{uids[0]}:{uids[-1]}", "LARGER", str(self.large_bytes)]))
        chunks: list[list[int]] = [[]]
        for uid in uids:
            if uid in large:
                chunks += [[uid], []]
            elif len(chunks[-1]) >= self.batch:
                chunks.append([uid])
            else:
                chunks[-1].append(uid)
        return [c for c in chunks if c]


def _changed(responses: list[tuple]) -> bool:  # type: ignore[type-arg]
    """Whether untagged responses say the mailbox has new messages."""
    for response in responses:
        if response and response[0] == b"BYE":
            raise imaplib.IMAP4.abort("server said BYE")
        if len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT"):
            return True
    return False


def _peer_closed(client: IMAPClient) -> bool:
    sock = client.socket()
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        try:
            sock.setblocking(True)
            client._set_read_timeout()
        except OSError:
            pass


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except CONNECTION_ERRORS:
        try:
            client.shutdown()
        except CONNECTION_ERRORS:
            pass
