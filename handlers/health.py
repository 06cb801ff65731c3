"""GET /healthz (the process answers) and GET /readyz (the database answers too)."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from sqlalchemy import text

from closeloop.bootstrap import Services


def health_wsgi(services: Services) -> Callable[..., Iterable[bytes]]:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, body = "200 OK", {"ok": True}
        if environ.get("PATH_INFO") == "/readyz":
            try:
                with services.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                body["database"] = "ok"
            except Exception as error:  # noqa: BLE001 — any failure means not ready
                status, body = "503 Service Unavailable", {"ok": False, "database": str(error)[:200]}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    return application
