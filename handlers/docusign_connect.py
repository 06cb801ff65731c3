"""POST /webhooks/docusign: DocuSign Connect notices.

The HMAC is checked on the raw body before anything reads it as JSON: DocuSign sends
one `X-DocuSign-Signature-N` header per active key (base64 HMAC-SHA256 of the body),
and any of ours matching any of them passes, so keys can be rotated. Anything else
is 401 with nothing stored. A verified notice is claimed (a re-delivery is a
duplicate, answered 200) and its work queued on the outbox in one short
transaction; the answer goes back at once, the relay does the work.

The 200 is only sent once the notice is committed (DocuSign does not retry what we
acknowledged). Notices arriving together share one transaction (group commit): a
request holding one of the two pens writes whatever is waiting in one go and wakes
every request in the group — so a burst costs one commit, not one per notice. On
PostgreSQL that transaction is a single statement on the pen's own autocommit
connection: one round trip per group; on SQLite two statements in one BEGIN
IMMEDIATE on the pen's sqlite3 connection."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection

from flows.connect_notices import store_on_postgres, store_on_sqlite
from flows.ledger import Ledger
from parsers.docusign_connect import NotAConnectNotice, parse_connect

log = logging.getLogger("closeloop.connect")

# Groups written at once. Bench (20 senders, loaded 2-core machine, PostgreSQL): one
# pen 1,400 notices/s, two 1,900/s, four 1,300/s (groups too small to pay for themselves).
PENS = 2
MAX_BODY = 2 * 1024 * 1024  # Connect JSON without documents is a few kB; documents are fetched by API
MAX_SIGNATURES = 10


def signature_headers(environ: dict[str, Any]) -> list[str]:
    return [environ[f"HTTP_X_DOCUSIGN_SIGNATURE_{n}"] for n in range(1, MAX_SIGNATURES + 1)
            if f"HTTP_X_DOCUSIGN_SIGNATURE_{n}" in environ]


def verified(body: bytes, signatures: list[str], keys: Iterable[bytes]) -> bool:
    """True when any signature is base64(HMAC-SHA256(key, body)) for any active key."""
    if not signatures:
        return False
    expected = [base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()) for key in keys]
    return any(hmac.compare_digest(e, s.strip().encode("ascii", "replace")) for e in expected for s in signatures)


def read_body(environ: dict[str, Any]) -> bytes | None:
    """The raw body, or None when it is missing, too large or cut short."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0 or length > MAX_BODY:
        return None
    body = environ["wsgi.input"].read(length)
    return body if len(body) == length else None


class _Pending:
    __slots__ = ("notice", "done", "accepted", "error", "lead")

    def __init__(self, notice: dict[str, Any]) -> None:
        self.notice, self.done = notice, threading.Event()
        self.accepted: bool | None = None
        self.error: BaseException | None = None
        self.lead = False  # handed the pen: this request writes the next group


class GroupCommit:
    """Claims notices in groups: whoever waits while a group is written goes in the next one.

    There is no writer thread: a request that finds a pen free writes the group itself
    (it is in it), then hands the pen to the first request left waiting, whose group is
    everything that came meanwhile — a thread switch fewer per group than waking a
    writer. Two pens, each group on a connection of its own: one group's round trip
    overlaps the next instead of every request waiting for both."""

    def __init__(self, ledger: Ledger, *, max_group: int = 200, wait_seconds: float = 30.0) -> None:
        self.ledger, self.max_group, self.wait_seconds = ledger, max_group, wait_seconds
        self._waiting: list[_Pending] = []
        self._lock = threading.Lock()
        self._writing = 0  # groups being written, at most PENS
        self._connections: list[Connection] = []  # the writers' own, kept across groups

    def accept(self, notice: dict[str, Any]) -> bool:
        """Store the notice; True when new, False for a duplicate. Raises when the
        database failed (the caller answers 5xx and DocuSign delivers it again)."""
        pending = _Pending(notice)
        with self._lock:
            self._waiting.append(pending)
            lead = self._writing < PENS
            self._writing += lead
        if lead or self._await_turn(pending):
            self._write_group()
        if pending.error is not None:
            raise pending.error
        return bool(pending.accepted)

    def _await_turn(self, pending: _Pending) -> bool:
        """Wait until this notice's group was written (False) or it is to write it (True)."""
        if pending.done.wait(self.wait_seconds):
            return pending.lead
        with self._lock:
            if pending in self._waiting and not pending.lead:  # nobody took it up in time: answer 5xx
                self._waiting.remove(pending)
                raise TimeoutError("the Connect notice was not stored in time")
        pending.done.wait()  # its group is being written, or it was handed the pen just now
        return pending.lead

    def _write_group(self) -> None:
        with self._lock:
            group, self._waiting = self._waiting[:self.max_group], self._waiting[self.max_group:]
            connection = self._connections.pop() if self._connections else None
        try:
            results, connection = self._store(connection, [p.notice for p in group])
            with self._lock:
                self._connections.append(connection)
        except Exception as error:  # noqa: BLE001 — each request answers for itself
            log.exception("storing %d Connect notice(s) failed", len(group))
            for p in group:
                p.error = error
            _discard(connection)
        else:
            for p, accepted in zip(group, results):
                p.accepted = accepted
        with self._lock:
            successor = self._waiting[0] if self._waiting else None
            if successor is not None:
                successor.lead = True
            else:
                self._writing -= 1
        if successor is not None:  # the next group starts before this one's requests wake
            successor.done.set()
        for p in group:
            p.done.set()

    def _store(self, connection: Connection | None,
               notices: list[dict[str, Any]]) -> tuple[list[bool], Connection]:
        """On the writer's connection; once more on a fresh one when that was lost (the
        server restarted, an idle timeout). Safe to repeat: if the lost statement did
        commit, the repeat finds its notices claimed and answers them as duplicates."""
        store = store_on_postgres if self.ledger.engine.dialect.name == "postgresql" else store_on_sqlite
        if connection is not None:
            try:
                return self.ledger.run_statement(connection, store, notices), connection
            except Exception:  # noqa: BLE001 — not yet known whether it is the connection
                if not getattr(connection.connection.driver_connection, "closed", False):  # psycopg's; sqlite3 has none
                    raise
                log.warning("the Connect writer's database connection was lost: storing on a new one")
                _discard(connection)
        fresh = self.ledger.statement_connection()
        try:
            return self.ledger.run_statement(fresh, store, notices), fresh
        except Exception:
            _discard(fresh)
            raise


def _discard(connection: Connection | None) -> None:
    """Drop the writer's connection after a failure (it may be broken, or mid-way in
    something): the next group starts on a fresh one."""
    if connection is not None:
        try:
            connection.invalidate()
            connection.close()
        except Exception:  # noqa: BLE001 — already broken; the pool replaces it
            log.debug("closing the Connect writer's connection failed", exc_info=True)


def connect_wsgi(ledger: Ledger, keys: tuple[str, ...]) -> Callable[..., Iterable[bytes]]:
    secrets = [k.encode() for k in keys]
    inbox = GroupCommit(ledger)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", {"ok": False, "error": "POST only"})
        body = read_body(environ)
        if body is None:
            return _answer(start_response, "413 Payload Too Large" if _too_large(environ) else "400 Bad Request",
                           {"ok": False, "error": "a Connect notice needs a body of at most 2 MB"})
        if not secrets or not verified(body, signature_headers(environ), secrets):
            log.warning("Connect notice refused: HMAC missing or wrong (%d bytes)", len(body))
            return _answer(start_response, "401 Unauthorized", {"ok": False, "error": "invalid signature"})
        try:
            notice = parse_connect(body)
        except NotAConnectNotice as error:  # signed by DocuSign but not an envelope notice: nothing to do
            log.warning("Connect notice ignored: %s", error)
            return _answer(start_response, "200 OK", {"ok": True, "ignored": str(error)})
        try:
            new = inbox.accept({**notice.as_payload(), "body_hash": hashlib.sha256(body).hexdigest()})
        except Exception as error:  # noqa: BLE001 — DocuSign delivers it again after a 5xx
            return _answer(start_response, "503 Service Unavailable",
                           {"ok": False, "error": f"could not store the notice: {type(error).__name__}"})
        return _answer(start_response, "200 OK", {"ok": True, "duplicate": not new})

    return application


def _too_large(environ: dict[str, Any]) -> bool:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > MAX_BODY
    except ValueError:
        return False


def _answer(start_response: Callable[..., Any], status: str, data: dict[str, Any]) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
