"""GET /healthz (the process answers) and GET /readyz (the database answers, and the
broker too when BROKER_URL is set: a web process that cannot reach the broker still
answers Slack, but its work waits for the beat's dispatch, so it is not ready)."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from sqlalchemy import text

from closeloop.bootstrap import Services


def health_wsgi(services: Services) -> Callable[..., Iterable[bytes]]:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, body = "200 OK", {"ok": True}
        if environ.get("PATH_INFO") == "/readyz":
            body.update(readiness(services))
            if not all(value == "ok" for key, value in body.items() if key != "ok"):
                status, body["ok"] = "503 Service Unavailable", False
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    return application


def readiness(services: Services) -> dict[str, str]:
    checks = {"database": _database(services)}
    if services.settings.broker_url:
        checks["broker"] = _broker(services.settings.broker_url)
    return checks


def _database(services: Services) -> str:
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as error:  # noqa: BLE001 — any failure means not ready
        return str(error)[:200]


def _broker(url: str) -> str:
    from kombu import Connection
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as error:  # noqa: BLE001 — any failure means not ready
        return f"{type(error).__name__}: {error}"[:200]
