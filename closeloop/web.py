"""The HTTP surface of `closeloop web`: one WSGI app routing by path to the Slack
endpoint (bot/) and the other web routes (handlers/)."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from closeloop.bootstrap import Services

WSGI = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Request threads of waitress. A web request mostly waits — a Connect notice for its
# group commit, a Slack event for the database — and a waiting thread takes no new
# request, so with 16 a burst of 20 deliveries was cut into groups of ~8 (bench:
# PostgreSQL Connect notices 626 -> 1,300-1,500/s on the loaded 2-core machine).
WEB_THREADS = 32


def web_app(services: Services) -> WSGI:
    from handlers.health import health_wsgi  # the entrypoints this process serves

    routes: dict[str, WSGI] = {"/healthz": health_wsgi(services), "/readyz": health_wsgi(services)}
    from handlers.payments_webhook import payments_webhook_wsgi
    routes["/webhooks/payments"] = payments_webhook_wsgi(services)
    if services.settings.slack_enabled:
        from bot.app import build_app
        from bot.server import slack_events_wsgi
        routes["/slack/events"] = slack_events_wsgi(build_app(services))
    from handlers.docusign_connect import connect_wsgi  # 401 for every post while no HMAC key is set
    routes["/webhooks/docusign"] = connect_wsgi(services.ledger, services.settings.connect_hmac_keys)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is not None:
            return route(environ, start_response)
        data = json.dumps({"ok": False, "error": "not found"}).encode()
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return application
