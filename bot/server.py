"""Serving the Bolt app: over HTTP (a WSGI callable for /slack/events) or Socket Mode."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from closeloop.bootstrap import Services


def slack_events_wsgi(app: App) -> Callable[..., Iterable[bytes]]:
    handler = SlackRequestHandler(app, path="/slack/events")

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Bolt verifies the signature, but a timestamp that is not a number makes it
        # raise (a 500); Slack never sends one, so it is a forgery: 401, like the rest.
        if not environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "").isdigit():
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", "12")])
            return [b"unauthorized"]
        return handler(environ, start_response)

    return application


def socket_mode(app: App, services: Services) -> SocketModeHandler:
    return SocketModeHandler(app, services.settings.slack_app_token)
