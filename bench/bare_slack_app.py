"""The baseline of bench.slack_ack: a Bolt app that only acks /quote, nothing else.

    PORT=3000 SLACK_SIGNING_SECRET=… python -m bench.bare_slack_app

Served like `closeloop web` serves closeloop (waitress with closeloop.web.WEB_THREADS
threads, POST /slack/events, Bolt's own request verification), so the difference
between the two is what closeloop does before its ack: its middleware, its listener up
to ack(), and whatever else the process is busy with."""
from __future__ import annotations

import os
import signal
import sys
import threading

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress.server import create_server

from closeloop.web import WEB_THREADS


def build() -> App:
    client = WebClient(token="xoxb-bare", base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"))
    app = App(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"], token_verification_enabled=False,
              request_verification_enabled=True, raise_error_for_unhandled_request=False)

    @app.command("/quote")
    def quote(ack) -> None:  # type: ignore[no-untyped-def]
        ack()

    return app


def main() -> int:
    handler = SlackRequestHandler(build(), path="/slack/events")

    def application(environ, start_response):  # type: ignore[no-untyped-def]
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
            return [b'{"ok":true}']
        return handler(environ, start_response)

    server = create_server(application, host=os.environ.get("CLOSELOOP_HOST", "127.0.0.1"),
                           port=int(os.environ["PORT"]), threads=WEB_THREADS, ident="bare-bolt",
                           clear_untrusted_proxy_headers=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.run, daemon=True).start()
    print(f"bare Bolt app on {server.effective_host}:{server.effective_port}", flush=True)
    stop.wait()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
