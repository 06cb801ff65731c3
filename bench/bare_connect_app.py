"""The baseline of bench.connect_webhook: an endpoint that only verifies the Connect
HMAC (the same function closeloop uses) and answers 200, served like `closeloop web`
(waitress, closeloop.web.WEB_THREADS threads).

    PORT=3000 DOCUSIGN_CONNECT_HMAC_KEYS=k1,k2 python -m bench.bare_connect_app
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from waitress.server import create_server

from closeloop.web import WEB_THREADS
from handlers.docusign_connect import read_body, signature_headers, verified


def main() -> int:
    keys = [k.strip().encode() for k in os.environ["DOCUSIGN_CONNECT_HMAC_KEYS"].split(",") if k.strip()]

    def application(environ, start_response):  # type: ignore[no-untyped-def]
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
            return [b'{"ok":true}']
        body = read_body(environ)
        ok = body is not None and verified(body, signature_headers(environ), keys)
        answer = b'{"ok":true}' if ok else b'{"ok":false}'
        start_response("200 OK" if ok else "401 Unauthorized",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]

    server = create_server(application, host="127.0.0.1", port=int(os.environ["PORT"]), threads=WEB_THREADS,
                           ident="bare-connect", clear_untrusted_proxy_headers=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.run, daemon=True).start()
    print(f"bare Connect endpoint on {server.effective_host}:{server.effective_port}", flush=True)
    stop.wait()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
