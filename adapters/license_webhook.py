"""Provisioning licenses to the product: one signed HTTP POST per `license.provision`
outbox message (issued, seats changed, suspended, reinstated, revoked).

The body is the license's current state and key (minted or re-signed first, in the
ledger). Headers:
  X-Closeloop-Timestamp: Unix seconds when signed
  X-Closeloop-Signature: v1=hex(HMAC-SHA256(secret, f"{timestamp}.{body}"))
  Idempotency-Key: the outbox message's key (the same on every retry of it)
The receiver checks the signature, refuses old timestamps, and de-duplicates by the
idempotency key. 2xx: delivered. 5xx, 408, timeouts, refused connections: retried by
the relay with backoff. 429: retried after Retry-After. Other 4xx: dead-lettered, since
sending the same request again cannot help."""
from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from adapters.crashpoints import crashpoint
from flows.clock import Clock
from flows.errors import LedgerError
from flows.ledger import Ledger
from flows.license_keys import Signer, provision_request
from flows.outbox import Delivery, PermanentFailure, RetryAfter

SIGNATURE_HEADER = "X-Closeloop-Signature"
TIMESTAMP_HEADER = "X-Closeloop-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class LicenseWebhook:
    def __init__(self, ledger: Ledger, signer: Signer, url: str, secret: str, *, clock: Clock,
                 timeout: float = 10.0) -> None:
        self.ledger, self.signer, self.url, self.secret = ledger, signer, url, secret
        self.clock, self.timeout = clock, timeout

    def body(self, delivery: Delivery) -> bytes:
        try:
            state = self.ledger.run(provision_request, int(delivery.payload["deal_id"]),
                                    str(delivery.payload["product"]), self.signer)
        except LedgerError as error:
            raise PermanentFailure(str(error)) from error
        # `status` is the license's state now (apply it: order-tolerant); `change` what this message is for.
        state["event"], state["change"] = delivery.idempotency_key, delivery.payload.get("status", "issued")
        return json.dumps(state, sort_keys=True, ensure_ascii=False).encode()

    def deliver(self, delivery: Delivery) -> None:
        body = self.body(delivery)
        timestamp = str(int(self.clock.now().timestamp()))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(self.secret, timestamp, body),
            "Idempotency-Key": delivery.idempotency_key, "User-Agent": "closeloop-license-provisioning"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            detail = f"license webhook answered {error.code} {error.reason}"
            if error.code == 429:
                raise RetryAfter(_seconds(error.headers.get("Retry-After")), detail) from None
            if 400 <= error.code < 500 and error.code != 408:
                raise PermanentFailure(detail) from None
            raise ConnectionError(detail) from None  # 5xx, 408: the relay retries with backoff
        crashpoint("webhook.answered")  # provisioned, not yet recorded: the retry carries the same Idempotency-Key


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, float(value or 60))
    except ValueError:
        return 60.0
