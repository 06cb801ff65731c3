"""A loopback Slack, for the tests and the demo: a Web API server that records every call and answers
like Slack (or with 429 / 500 when told), and requests signed the way Slack signs them."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEAM = "T0CLOSE"
APP = "A0CLOSE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Call:
    method: str          # e.g. "chat.postMessage", or "respond" for response_url posts
    args: dict[str, Any]


@dataclass
class FakeSlackApi:
    """Speaks the Slack Web API on 127.0.0.1; `script` maps a method to queued answers
    (status, headers, body) served before the default {"ok": true, …}."""

    calls: list[Call] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = field(default_factory=dict)
    usergroups: list[dict[str, Any]] = field(default_factory=list)
    socket_url: str = ""  # what apps.connections.open hands out (a loopback Socket Mode server)
    _ts: int = 0

    def start(self) -> FakeSlackApi:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — the http.server API
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/upload/"):  # files_upload_v2's step 2: the file's bytes
                    peer.calls.append(Call("upload", {"file_id": self.path.rsplit("/", 1)[-1], "data": data}))
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                    return
                raw = data.decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    args = json.loads(raw or "{}")
                else:
                    args = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                    for key in ("blocks", "metadata", "view"):
                        if isinstance(args.get(key), str):
                            try:
                                args[key] = json.loads(args[key])
                            except json.JSONDecodeError:
                                pass
                path, _, query = self.path.partition("?")
                args.update({k: v[0] for k, v in urllib.parse.parse_qs(query).items()})
                if isinstance(args.get("files"), str):
                    args["files"] = json.loads(args["files"])
                method = "respond" if path.startswith("/respond") else path.rsplit("/", 1)[-1]
                status, headers, body = peer.answer(method, args)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    @property
    def response_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/respond"

    def answer(self, method: str, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        self.calls.append(Call(method, args))
        queued = self.script.get(method)
        if queued:
            return queued.pop(0)
        self._ts += 1
        body: dict[str, Any] = {"ok": True}
        if method == "chat.postMessage":
            body.update(channel=args.get("channel", "C0DEALS").lstrip("#") and "C0DEALS",
                        ts=f"1700000000.{self._ts:06d}", message={"text": args.get("text")})
        elif method == "apps.connections.open":
            body["url"] = self.socket_url
        elif method == "usergroups.list":
            body["usergroups"] = self.usergroups
        elif method == "files.getUploadURLExternal":
            body.update(file_id=f"F{self._ts:06d}", upload_url=f"{self.base_url[:-len('/api/')]}/upload/F{self._ts:06d}")
        elif method == "files.completeUploadExternal":
            body["files"] = [{"id": f.get("id"), "title": f.get("title")} for f in args.get("files") or []]
        elif method == "views.open" or method == "views.publish" or method == "views.update":
            body["view"] = {"id": f"V{self._ts}", **(args.get("view") or {})}
        return 200, {}, body

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]


def sign(body: bytes, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def command_body(command: str, text: str, *, user: str = "U0REP", response_url: str = "",
                 team: str = TEAM, app: str = APP, trigger: str = "13345224609.738474920.8088930838d88f") -> bytes:
    return urllib.parse.urlencode({
        "token": "legacy", "team_id": team, "team_domain": "closeloop", "channel_id": "C0DEALS",
        "channel_name": "deals", "user_id": user, "user_name": user.lower(), "command": command, "text": text,
        "api_app_id": app, "is_enterprise_install": "false", "response_url": response_url, "trigger_id": trigger,
    }).encode()


def interaction_body(payload: dict[str, Any]) -> bytes:
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def block_action(action_id: str, value: str, *, user: str, response_url: str = "", team: str = TEAM,
                 app: str = APP, action_ts: str = "1700000001.000100") -> dict[str, Any]:
    return {"type": "block_actions", "team": {"id": team, "domain": "closeloop"}, "api_app_id": app,
            "user": {"id": user, "username": user.lower(), "team_id": team}, "trigger_id": "1.2.3",
            "response_url": response_url, "container": {"type": "message", "channel_id": "C0DEALS"},
            "channel": {"id": "C0DEALS"}, "message": {"ts": "1700000000.000001", "text": ""},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                         "action_ts": action_ts}]}
