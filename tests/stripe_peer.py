"""Stripe on loopback for the tests: localstripe (PyPI) in a child process, and a
small proxy in front of it that adds what localstripe lacks and what the tests need:

* Idempotency-Key replay: the first response for a key is replayed, as Stripe does
  (localstripe ignores the header and would create a second PaymentIntent);
* `drop_after_forward(n)`: the next n POSTs to /v1/payment_intents reach localstripe
  (which commits them), then the socket is closed before any response — the
  "gateway committed, answer lost" case;
* GET /v1/payment_intents?customer=… filtered by customer (localstripe refuses it);
* Checkout Sessions (/v1/checkout/sessions), which localstripe does not implement:
  `complete(session_id, card)` pays one with a real localstripe PaymentIntent.
Webhook events are built and signed here exactly as Stripe signs them."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import stripe

API_KEY = "sk_test_closeloop"
WEBHOOK_SECRET = "whsec_closeloop_test"
CARDS = {"ok": "4242424242424242", "soft": "4000000000000341", "auth": "4000002760003184",
         "refused": "4000000000000002"}

_RUNNER = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None  # it would pickle every write to /tmp, shared by all runs
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStripe:
        self.process = subprocess.Popen([sys.executable, "-c", _RUNNER, str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"localstripe exited: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("localstripe did not start within 20 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # it keeps no state worth a graceful stop (aiohttp waits ~10 s for one)
            self.process.wait(timeout=10)


class StripeProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.replayed: dict[str, tuple[int, bytes]] = {}
        self.bodies: dict[str, bytes] = {}  # the parameters each key was first used with
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.drops = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                proxy.handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                proxy.handle(self, "POST")

            def do_DELETE(self) -> None:  # noqa: N802
                proxy.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> StripeProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def drop_after_forward(self, times: int = 1) -> None:
        self.drops = times

    # --- the proxy ------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(request.path)
        self.requests.append((method, parsed.path))
        if parsed.path.startswith("/v1/checkout/sessions"):
            self._checkout(request, method, parsed, body)
            return
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        with self.lock:
            if key and key in self.replayed:
                if self.bodies.get(key, body) != body:  # Stripe compares the parameters of a reused key
                    self._reply(request, 400, json.dumps({"error": {
                        "type": "idempotency_error", "message": "Keys for idempotent requests can only be used "
                        f"with the same parameters they were first used with. Try using a key other than '{key}' "
                        "if you meant to execute a different request."}}).encode())
                    return
                status, data = self.replayed[key]
                self._reply(request, status, data, replay=True)
                return
            status, data = self._forward(method, parsed, body, request.headers.get("Authorization", ""))
            if key:
                self.replayed[key], self.bodies[key] = (status, data), body
            if method == "POST" and parsed.path == "/v1/payment_intents" and self.drops > 0:
                self.drops -= 1
                request.close_connection = True
                request.connection.shutdown(socket.SHUT_RDWR)  # committed upstream; the answer is lost
                return
        self._reply(request, status, data)

    def _forward(self, method: str, parsed: urllib.parse.SplitResult, body: bytes, auth: str) -> tuple[int, bytes]:
        query = urllib.parse.parse_qs(parsed.query)
        customer = None
        if method == "GET" and parsed.path == "/v1/payment_intents":
            customer = (query.pop("customer", [None]))[0]
            query["limit"] = ["100"]
        status, data = self._upstream(method, parsed.path, query, body, auth)
        if customer is not None and status == 200:
            # Filter every page, not just the first: past 100 intents (a sweep's thousand deals)
            # the customer's own would otherwise be missing, and a lookup would find nothing.
            listing = json.loads(data)
            found = [i for i in listing["data"] if i.get("customer") == customer]
            while listing.get("has_more") and listing["data"] and status == 200:
                status, page = self._upstream(method, parsed.path, {**query, "starting_after": [listing["data"][-1]["id"]]},
                                              body, auth)
                listing = json.loads(page)
                found += [i for i in listing.get("data", []) if i.get("customer") == customer]
            listing["data"], listing["has_more"] = found, False
            data = json.dumps(listing).encode()
        return status, data

    def _upstream(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                  auth: str) -> tuple[int, bytes]:
        url = self.upstream + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        upstream = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                          headers={"Authorization": auth,
                                                   "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(upstream, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _reply(self, request: BaseHTTPRequestHandler, status: int, data: bytes, replay: bool = False) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if replay:
            request.send_header("Idempotent-Replayed", "true")
        request.end_headers()
        request.wfile.write(data)

    # --- Checkout Sessions ----------------------------------------------------------

    def _checkout(self, request: BaseHTTPRequestHandler, method: str, parsed: urllib.parse.SplitResult,
                  body: bytes) -> None:
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            if method == "POST" and parsed.path == "/v1/checkout/sessions":
                if key and key in self.replayed:
                    self._reply(request, *self.replayed[key], replay=True)
                    return
                form = _unflatten(urllib.parse.parse_qs(body.decode()))
                item = form["line_items"]["0"]
                session_id = f"cs_test_{uuid.uuid4().hex[:20]}"
                session = {"id": session_id, "object": "checkout.session", "mode": form.get("mode"),
                           "url": f"{self.url}/pay/{session_id}", "customer": form.get("customer"),
                           "client_reference_id": form.get("client_reference_id"),
                           "amount_total": int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)),
                           "currency": item["price_data"]["currency"], "metadata": form.get("metadata", {}),
                           "payment_status": "unpaid", "status": "open", "payment_intent": None}
                self.sessions[session_id] = session
                data = json.dumps(session).encode()
                if key:
                    self.replayed[key] = (200, data)
                self._reply(request, 200, data)
                return
            session_id = parsed.path.rsplit("/", 1)[-1]
            session = self.sessions.get(session_id)
            if method != "GET" or session is None:
                self._reply(request, 404, json.dumps({"error": {"type": "invalid_request_error",
                                                                "message": "No such checkout session"}}).encode())
                return
            self._reply(request, 200, json.dumps(session).encode())

    def complete(self, session_id: str, card: str = CARDS["ok"]) -> dict[str, Any]:
        """The customer pays on the checkout page: a real PaymentIntent in localstripe."""
        client = stripe_client(self.upstream)
        session = self.sessions[session_id]
        method = client.v1.payment_methods.create({"type": "card", "card": {
            "number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
        intent = client.v1.payment_intents.create({
            "amount": session["amount_total"], "currency": session["currency"], "payment_method": method.id,
            "confirm": True, "metadata": session["metadata"]})
        session.update(payment_status="paid", status="complete", payment_intent=intent.id)
        return session


def _unflatten(query: dict[str, list[str]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, values in query.items():
        parts = key.replace("]", "").split("[")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = values[0]
    return tree


def stripe_client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": base}, max_network_retries=0)


def card(base: str, kind: str) -> str:
    """A PaymentMethod for one of localstripe's test cards; returns its pm_… id."""
    method = stripe_client(base).v1.payment_methods.create({"type": "card", "card": {
        "number": CARDS[kind], "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
    return str(method.id)


def signed_event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None,
                 timestamp: int | None = None, secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header (t=…,v1=HMAC-SHA256 of "t.body")."""
    body = json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": event_type,
                       "api_version": "2024-06-20", "created": int(time.time()),
                       "data": {"object": obj}}).encode()
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},v1={signature}"


def post_webhook(base_url: str, body: bytes, signature: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{base_url}/webhooks/payments", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Stripe-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


__all__ = ["API_KEY", "CARDS", "LocalStripe", "Path", "StripeProxy", "WEBHOOK_SECRET", "card", "post_webhook",
           "signed_event", "stripe_client"]
