"""Structured logs: one JSON object per line, carrying the deal (and the task, the
outbox message and its kind) that the line is about, wherever in the call it was
written. The relay and the tasks set the context, and so does every ledger step that
takes a deal (`step_context`, wired in closeloop.bootstrap): a Slack click, a Connect
notice or a mail routed to a deal logs with it too. Inside a `request_scope` (each Slack
listener runs in one), the first deal a step or an access check names stays on the
request's later lines too, the error handler's among them. Adapters and flows just log."""
from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("closeloop_log_context",
                                                                                default=None)
# The fields of the request in progress: the same dict as its scope's context, so a deal
# noted inside a step is still there when the step's own context has gone.
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("closeloop_log_request",
                                                                                default=None)


@contextmanager
def deal_context(**fields: Any) -> Iterator[None]:
    """Add fields (deal, kind, task, message…) to every log line written inside."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


@contextmanager
def request_scope() -> Iterator[None]:
    """One request (a Slack listener's run): the deal it turns out to be about is added to
    every line written after that is known, until the request ends."""
    fields = {**(_context.get() or {})}
    context, request = _context.set(fields), _request.set(fields)
    try:
        yield
    finally:
        _request.reset(request)
        _context.reset(context)


def about_deal(deal: int | None) -> None:
    """The request in progress is about this deal (the first one named wins)."""
    fields = _request.get()
    if fields is not None and deal is not None and "deal" not in fields:
        fields["deal"] = deal


def step_context(step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> AbstractContextManager[Any]:
    """The deal of a ledger step, `step(tx, deal_id, ...)` or `deal_id=`, in the log context."""
    deal = kwargs.get("deal_id")
    if deal is None and args and _takes_deal_first(step):
        deal = args[0]
    if not isinstance(deal, int):
        return nullcontext()
    about_deal(deal)
    return deal_context(deal=deal)


@functools.lru_cache(maxsize=512)
def _takes_deal_first(step: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(step).parameters)
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return False
    return parameters[1:2] == ["deal_id"]


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
    # fontTools logs some thirty INFO lines per invoice PDF it subsets: noise, not news.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
