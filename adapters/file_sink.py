"""Where side effects go when the service they are for is not configured (or has
not been built yet): one JSON line per message in a file per kind. Nothing is lost —
a reader can see exactly what would have been sent — and a redelivered message is
written once, recognised by its idempotency key."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from flows.outbox import Delivery


class FileSink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._seen: dict[str, set[str]] = {}

    def handler(self, note: str):  # type: ignore[no-untyped-def]
        """A relay handler that writes the message with a note saying why it was not sent."""
        def write(delivery: Delivery) -> None:
            self.write(delivery, note)
        return write

    def write(self, delivery: Delivery, note: str) -> bool:
        path = self.directory / f"{delivery.kind}.jsonl"
        with self._lock:
            seen = self._keys(delivery.kind, path)
            if delivery.idempotency_key in seen:
                return False
            self.directory.mkdir(parents=True, exist_ok=True)
            record = {"key": delivery.idempotency_key, "kind": delivery.kind, "deal_id": delivery.deal_id,
                      "payload": delivery.payload, "note": note}
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            seen.add(delivery.idempotency_key)
            return True

    def read(self, kind: str) -> list[dict]:  # type: ignore[type-arg]
        path = self.directory / f"{kind}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def _keys(self, kind: str, path: Path) -> set[str]:
        if kind not in self._seen:
            self._seen[kind] = {r["key"] for r in self.read(kind)} if path.exists() else set()
        return self._seen[kind]
