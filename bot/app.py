"""The Bolt app: one module per Slack feature, each with register(app, services).

Every listener acks first (Slack's 3-second rule) and does slow work after; one error
handler turns a ledger refusal into a plain answer and anything else into an apology
that says nothing was changed."""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Executor, Future
from typing import Any, Callable

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest

from adapters.slack import slack_client
from bot import approvals, deal, esign, finance, gaps, home, mail_bridge, quote
from bot.identity import Identity
from closeloop.bootstrap import Services
from closeloop.logs import request_scope
from flows.access import record_denial
from flows.errors import LedgerError

log = logging.getLogger("closeloop.bot")

FEATURES = (quote, deal, finance, gaps, approvals, home, mail_bridge, esign)


def build_app(services: Services) -> App:
    settings = services.settings
    if not settings.slack_enabled:
        raise RuntimeError("Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    app = App(client=slack_client(settings.slack_bot_token, settings.slack_api_url),  # type: ignore[arg-type]
              signing_secret=settings.slack_signing_secret, token_verification_enabled=False,
              request_verification_enabled=True, raise_error_for_unhandled_request=False,
              listener_executor=ThreadPerListener())
    identity = Identity(services, app.client)
    app.middleware(_only_our_workspace(services))

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Callable[..., Any] | None = None) -> None:
        if isinstance(error, LedgerError):
            text = f":warning: {error}"
        else:
            log.exception("slack listener failed", exc_info=error)
            text = ":x: Something went wrong on our side. Nothing was changed; please try again in a minute."
        if respond is not None and body.get("response_url"):
            respond(text=text, response_type="ephemeral", replace_original=False)

    for feature in FEATURES:
        feature.register(app, services, identity)
    return app


class ThreadPerListener(Executor):
    """Bolt answers Slack as soon as a listener calls ack(), but the listener runs on
    this executor; with a bounded pool, a new request's ack waits for a free thread
    while earlier requests do their slow work after acking. A thread per listener means
    an ack never queues behind anyone's work; the database pool still bounds how much
    of that work runs at once (threads waiting for a connection hold no CPU). Each run
    is one request for the logs (closeloop.logs.request_scope): Bolt calls the error
    handler in the same thread, so its line names the deal the listener was about."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                with request_scope():
                    future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # noqa: BLE001 — handed to whoever waits on the future
                future.set_exception(error)

        threading.Thread(target=run, name="slack-listener", daemon=True).start()
        return future


def _only_our_workspace(services: Services) -> Callable[..., Any]:
    """Refuse requests from another workspace or for another app (when configured),
    with a plain answer and an audit row, before any listener runs."""
    settings = services.settings

    def middleware(req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        body = req.body
        team = body.get("team_id") or (body.get("team") or {}).get("id")
        app_id = body.get("api_app_id")
        wrong = ((settings.slack_team_id and team != settings.slack_team_id and "team")
                 or (settings.slack_app_id and app_id and app_id != settings.slack_app_id and "app"))
        if not wrong:
            return next()
        user = body.get("user_id") or (body.get("user") or {}).get("id") or "unknown"
        services.ledger.run(record_denial, user=user, action=f"slack.{wrong}",
                            detail=f"request from team {team} for app {app_id}")
        text = "This app does not serve your workspace." if wrong == "team" else "This request is not for this app."
        return BoltResponse(status=200, body=json.dumps({"response_type": "ephemeral", "text": text}),
                            headers={"content-type": "application/json"})

    return middleware
