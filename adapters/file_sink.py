"""Where side effects go when the service they are for is not configured (or has
not been built yet): one JSON line per message in a file per kind. Nothing is lost —
a reader can see exactly what would have been sent — and a redelivered message is
written once, recognised by its idempotency key, whichever process delivers it."""
from __future__ import annotations

import fcntl
import json
import threading
from pathlib import Path
from typing import BinaryIO

from flows.outbox import Delivery


class FileSink:
    """Safe across processes (Celery's pool processes write the same files): each write
    takes the file's lock and first reads what other processes appended since."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._seen: dict[str, set[str]] = {}
        self._read_up_to: dict[str, int] = {}

    def handler(self, note: str):  # type: ignore[no-untyped-def]
        """A relay handler that writes the message with a note saying why it was not sent."""
        def write(delivery: Delivery) -> None:
            self.write(delivery, note)
        return write

    def write(self, delivery: Delivery, note: str) -> bool:
        kind = delivery.kind
        record = {"key": delivery.idempotency_key, "kind": kind, "deal_id": delivery.deal_id,
                  "payload": delivery.payload, "note": note}
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with (self.directory / f"{kind}.jsonl").open("ab+") as out:
                fcntl.flock(out, fcntl.LOCK_EX)  # released when the file closes
                seen = self._catch_up(kind, out)
                if delivery.idempotency_key in seen:
                    return False
                out.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
                out.flush()
                seen.add(delivery.idempotency_key)
                self._read_up_to[kind] = out.tell()
                return True

    def read(self, kind: str) -> list[dict]:  # type: ignore[type-arg]
        path = self.directory / f"{kind}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def _catch_up(self, kind: str, out: BinaryIO) -> set[str]:
        """The keys written so far, by this process or any other: only the lines appended
        since this process last looked are read."""
        seen = self._seen.setdefault(kind, set())
        out.seek(self._read_up_to.get(kind, 0))
        new = out.read()
        complete = new[:new.rfind(b"\n") + 1]  # a line is whole once its newline is written
        seen.update(json.loads(line)["key"] for line in complete.splitlines() if line.strip())
        self._read_up_to[kind] = self._read_up_to.get(kind, 0) + len(complete)
        return seen
