"""POST /webhooks/payments: Stripe events, verified (signature, 300 s tolerance),
claimed once by event id, answered 2xx at once; the work follows on the outbox
(`payment.event`), which reads the object's current state from the API."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import stripe

from closeloop.bootstrap import Services
from flows.charges import accept_payment_event

MAX_BODY = 1 << 20  # Stripe events are a few KB; refuse anything absurd before reading it


def payments_webhook_wsgi(services: Services) -> Callable[..., Iterable[bytes]]:
    money = services.money

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def answer(status: str, body: dict[str, Any]) -> list[bytes]:
            data = json.dumps(body).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]

        if environ.get("REQUEST_METHOD") != "POST":
            return answer("405 Method Not Allowed", {"ok": False, "error": "POST only"})
        if not money.webhook_secret:
            return answer("503 Service Unavailable", {"ok": False, "error": "STRIPE_WEBHOOK_SECRET is not set"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return answer("400 Bad Request", {"ok": False, "error": "a JSON body of at most 1 MiB is expected"})
        body = environ["wsgi.input"].read(length)
        try:
            stripe.Webhook.construct_event(body, environ.get("HTTP_STRIPE_SIGNATURE"), money.webhook_secret,
                                           tolerance=300)
            event = json.loads(body)  # verified: read it as plain data
        except stripe.SignatureVerificationError as error:
            return answer("400 Bad Request", {"ok": False, "error": f"signature: {error.user_message or error}"})
        except ValueError as error:
            return answer("400 Bad Request", {"ok": False, "error": f"not a Stripe event: {error}"})
        obj = (event.get("data") or {}).get("object") or {}
        new = services.ledger.run(accept_payment_event, event_id=str(event.get("id")),
                                  event_type=str(event.get("type") or ""), object_type=str(obj.get("object") or ""),
                                  object_id=str(obj.get("id") or ""))
        return answer("200 OK", {"ok": True, "duplicate": not new})

    return application
