"""The demo's Slack: people type slash commands and press buttons, signed the way Slack
signs them, into the real Bolt app (bot.app.build_app); its Web API is a loopback
FakeSlackApi that records every call, so the transcript shows what the bot answered
and what it posted. Nothing here talks to slack.com.

A command whose code is not written yet (a listener not registered, a parser that
still raises NotImplementedError) is reported as not yet available; the demo goes on."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from closeloop.bootstrap import Services
from closeloop.demo.loopback_slack import Call, FakeSlackApi, block_action, command_body, interaction_body, sign

REP, MANAGER, FINANCE = "U0REP", "U0MANAGER", "U0FINANCE"
PEOPLE = {REP: "Marta (rep)", MANAGER: "Piotr (sales manager)", FINANCE: "Ewa (finance)"}
ROLES = f"{REP}=rep;{MANAGER}=manager;{FINANCE}=finance"

_QUIET = ("closeloop.bot", "slack_bolt", "slack_sdk")  # their logs go to the transcript, not stderr
_INTERNAL = {"auth.test", "usergroups.list", "users.info", "conversations.open", "conversations.info"}


@dataclass
class Answer:
    """What one request to the bot led to."""

    status: int = 0                                      # HTTP status of the ack
    ack_ms: float = 0.0                                  # how long the ack took
    ack: str = ""                                        # text of the ack body, if any
    calls: list[Call] = field(default_factory=list)      # Slack API calls made since the request
    errors: list[BaseException] = field(default_factory=list)
    missing: str = ""                                    # why this is not available yet ("" if it is)

    @property
    def available(self) -> bool:
        return not self.missing


class _Tracked(Executor):
    """Bolt's listener executor, remembering what it started so the demo can wait for it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="demo-slack")
        self._futures: list[Future[Any]] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = self._pool.submit(fn, *args, **kwargs)
        with self._lock:
            self._futures.append(future)
        return future

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
                self._futures = pending
            if not pending or time.monotonic() > deadline:
                return
            wait(pending, timeout=max(0.0, deadline - time.monotonic()))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class SlackScene:
    """The bot as a workspace sees it. `command` and `press` return an Answer; a failure
    to build the app at all leaves `unavailable` set and every answer not available."""

    def __init__(self, services: Services, api: FakeSlackApi) -> None:
        self.services, self.api = services, api
        self.unavailable = ""
        self._triggers = count(1)
        self._executor = _Tracked()
        self._capture = _Capture()
        self._saved: list[tuple[logging.Logger, bool]] = []
        for name in _QUIET:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.propagate))
            logger.addHandler(self._capture)
            logger.propagate = False
        try:
            from bot.app import build_app  # the demo drives the real app
            self.app: Any = build_app(services)
        except Exception as error:  # noqa: BLE001 — an unfinished bot must not stop the demo
            self.app = None
            self.unavailable = f"the Slack app could not be built ({type(error).__name__}: {error})"
            return
        runner = self.app.listener_runner
        runner.listener_executor = self._executor
        runner.lazy_listener_runner.executor = self._executor

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for logger, propagate in self._saved:
            logger.removeHandler(self._capture)
            logger.propagate = propagate

    # -- what people do ----------------------------------------------------------------

    def command(self, user: str, command: str, text: str) -> Answer:
        body = command_body(command, text, user=user, response_url=self.api.response_url,
                            trigger=f"demo.{next(self._triggers)}.{int(time.time())}")
        return self._send(body)

    def press(self, user: str, action_id: str, value: str) -> Answer:
        payload = block_action(action_id, value, user=user, response_url=self.api.response_url,
                               action_ts=f"{time.time():.6f}")
        return self._send(interaction_body(payload))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait for the listeners' work after their acks, then for the relay to deliver
        what they committed to the outbox, until Slack has been quiet for a moment."""
        deadline = time.monotonic() + timeout
        quiet_since, seen = time.monotonic(), -1
        while time.monotonic() < deadline:
            self._executor.wait(max(0.0, deadline - time.monotonic()))
            delivered = self.services.relay.drain()
            if delivered or len(self.api.calls) != seen:
                quiet_since, seen = time.monotonic(), len(self.api.calls)
            elif time.monotonic() - quiet_since > 0.05:
                return
            time.sleep(0.02)

    def _send(self, body: bytes) -> Answer:
        if self.app is None:
            return Answer(missing=self.unavailable)
        from slack_bolt.request import BoltRequest

        mark, logged = len(self.api.calls), len(self._capture.records)
        headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
        began = time.perf_counter()
        try:
            response = self.app.dispatch(BoltRequest(body=body.decode(), headers=headers))
        except NotImplementedError:
            return Answer(missing="its code is not written yet")
        ack_ms = (time.perf_counter() - began) * 1000
        self.settle()
        answer = Answer(status=response.status, ack_ms=ack_ms, ack=_ack_text(response.body),
                        calls=self.api.calls[mark:])
        records = self._capture.records[logged:]
        answer.errors = [r.exc_info[1] for r in records if r.exc_info and r.exc_info[1] is not None]
        if response.status == 404 or any("nhandled request" in r.getMessage() for r in records):
            answer.missing = "no listener answers it yet"
        elif any(isinstance(e, NotImplementedError) for e in answer.errors):
            answer.missing = "its code is not written yet (NotImplementedError)"
        return answer


# --- showing what the bot did -----------------------------------------------------------

def describe(answer: Answer, *, max_lines: int = 10, channels: dict[str, str] | None = None) -> list[str]:
    """The answer as a person in Slack would see it, one line per message line;
    `channels` names channel IDs (C0DEALS -> deals)."""
    names = channels or {}
    shown: list[str] = []
    if answer.ack:
        shown += _message("answers (only you)", answer.ack, max_lines)
    for call in answer.calls:
        args = call.args
        if call.method in _INTERNAL:
            continue
        text = _text_of(args)
        if call.method == "respond":
            where = "answers in the channel" if args.get("response_type") == "in_channel" else "answers (only you)"
            if args.get("replace_original"):
                where = "updates the message"
            shown += _message(where, text, max_lines)
            shown += _buttons(args.get("blocks"))
        elif call.method == "chat.postEphemeral":
            shown += _message(f"answers (only <@{args.get('user')}>)", text, max_lines)
        elif call.method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            channel = names.get(channel, channel)
            where = (f"DMs <@{channel}>" if channel.startswith(("U", "W", "D")) else
                     f"posts in the #{channel.lstrip('#')} thread" if args.get("thread_ts") else
                     f"opens a thread in #{channel.lstrip('#')}")
            shown += _message(where, text, max_lines)
            shown += _buttons(args.get("blocks"))
        elif call.method == "chat.update":
            shown += _message("updates the message", text, max_lines)
        elif call.method in ("views.open", "views.push"):
            view = args.get("view") or {}
            title = ((view.get("title") or {}).get("text")) if isinstance(view, dict) else None
            shown.append(f"      ↳ opens a form: {title or 'a modal'}")
        elif call.method == "views.publish":
            shown.append(f"      ↳ refreshes the App Home of <@{args.get('user_id')}>")
        else:
            shown.append(f"      ↳ calls {call.method}")
    if not shown:
        shown.append("      ↳ (acknowledged; nothing posted)")
    return shown


def _message(where: str, text: str, max_lines: int) -> list[str]:
    # as Slack shows it: its three escapes undone, code fences dropped
    text = (text or "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    lines = [line for line in text.splitlines() if line.strip() and line.strip() != "```"] or ["(no text)"]
    out = [f"      ↳ {where}: {lines[0]}"]
    out += [f"          {line}" for line in lines[1:max_lines]]
    if len(lines) > max_lines:
        out.append(f"          … ({len(lines) - max_lines} more lines)")
    return out


def _buttons(blocks: Any) -> list[str]:
    labels = [(element.get("text") or {}).get("text", "?")
              for block in (blocks if isinstance(blocks, list) else [])
              if isinstance(block, dict) and block.get("type") == "actions"
              for element in block.get("elements", []) if isinstance(element, dict)]
    return [f"          [{'] ['.join(labels)}]"] if labels else []


def _text_of(args: dict[str, Any]) -> str:
    blocks = args.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except json.JSONDecodeError:
            blocks = None
    if blocks:
        text = blocks_text(blocks)
        if text.strip():
            return text
    return str(args.get("text") or "")


def blocks_text(blocks: list[Any]) -> str:
    """The readable text of Block Kit blocks (sections, headers, fields, context)."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("section", "header") and isinstance(block.get("text"), dict):
            lines.append(block["text"].get("text", ""))
        if kind == "section":
            lines += [" ".join(f.get("text", "").split("\n")) for f in block.get("fields", []) if isinstance(f, dict)]
        elif kind == "context":
            lines.append("  ".join(e.get("text", "") for e in block.get("elements", []) if isinstance(e, dict)))
        elif kind == "rich_text":
            lines.append(json.dumps(block.get("elements", []), ensure_ascii=False)[:200])
    return "\n".join(line for line in lines if line)


def _ack_text(body: Any) -> str:
    if not body:
        return ""
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except json.JSONDecodeError:
        return str(body)
    if isinstance(data, dict):
        return _text_of(data)
    return str(data)


def calls_json(api: FakeSlackApi) -> list[dict[str, Any]]:
    return [{"method": call.method, "args": call.args} for call in api.calls]
