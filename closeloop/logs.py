"""Structured logs: one JSON object per line, carrying the deal (and the task, the
outbox message and its kind) that the line is about, wherever in the call it was
written. The relay and the tasks set the context; adapters and flows just log."""
from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("closeloop_log_context",
                                                                                default=None)


@contextmanager
def deal_context(**fields: Any) -> Iterator[None]:
    """Add fields (deal, kind, task, message…) to every log line written inside."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
            "process": record.processName, "pid": record.process,
        }
        line.update(_context.get() or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup(*, verbose: bool, json_lines: bool) -> None:
    """Root logging for a closeloop process: JSON lines for the long-running ones."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if json_lines else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
