"""The demo's DocuSign scene: a second quote for the same customer, sent through a
loopback DocuSign server (TLS, JWT grant, the official spec's request schemas) with
the real SDK; the signer signs, DocuSign Connect posts "completed" signed with the
HMAC key to `closeloop web`'s webhook, the relay fetches and verifies the signed PDF,
and the deal closes on its own."""
from __future__ import annotations

import threading
import urllib.request
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from waitress.server import create_server

from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.demo.loopback_docusign import INTEGRATION_KEY, USER, LoopbackDocuSign, free_port, public_pem, rsa_key_pem
from closeloop.web import web_app
from flows.clock import ManualClock
from flows.deals import Deal, SignatureEnvelope, Stage
from flows.esign import DocuSignEnvelope
from flows.steps import LineRequest, draft_quote, send_quote

HMAC_KEY = "demo-connect-key"


def run(log: Any, settings: Settings, clock: ManualClock, customer_id: int, owner: str, out: Path) -> None:
    log.say()
    log.say("3b. The same through DocuSign: a loopback DocuSign on https://127.0.0.1 (test certificate), "
            "the docusign-esign SDK, Connect back to closeloop web")
    key = rsa_key_pem()
    (out / "docusign").mkdir(exist_ok=True)
    docusign = LoopbackDocuSign(public_pem(key), directory=out / "docusign").start()
    try:
        _scene(log, settings.model_copy(update={
            "docusign_integration_key": INTEGRATION_KEY, "docusign_user_id": USER,
            "docusign_private_key": key.decode(), "docusign_oauth_host": docusign.host,
            "docusign_ca_cert": docusign.cert_path, "docusign_connect_hmac_keys": HMAC_KEY,
            "documents_dir": out / "documents", "host": "127.0.0.1", "port": free_port()}),
            clock, customer_id, owner, docusign)
    finally:
        docusign.stop()


def _scene(log: Any, settings: Settings, clock: ManualClock, customer_id: int, owner: str,
           docusign: LoopbackDocuSign) -> None:
    services = build(settings, clock)
    ledger = services.ledger
    server = create_server(web_app(services), host="127.0.0.1", port=settings.port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        deal_id = log.step("quote drafted: 10 × PRO-SEAT", lambda: ledger.run(
            draft_quote, key="demo:docusign:1", customer_id=customer_id, owner=owner, currency="EUR",
            lines=[LineRequest("PRO-SEAT", Decimal(10))]))
        log.step("sent for signature through DocuSign (the step /quote send … via docusign calls)",
                 lambda: ledger.run(send_quote, deal_id, provider="docusign", actor=owner))
        log.step("relay: JWT grant, user info, envelope created (anchor tabs /sn1/ /dt1/ /fn1/, Polish subject)",
                 services.relay.drain)
        envelope = ledger.read(lambda s: s.query(SignatureEnvelope).filter_by(deal_id=deal_id).one().external_id)
        stored = docusign.envelopes[envelope]
        log.say(f"    envelope {envelope}: “{stored.definition['emailSubject']}”, custom field "
                f"closeloop_key={stored.custom_fields['closeloop_key']}, "
                f"{len(docusign.invalid)} request(s) invalid against the eSignature OpenAPI spec")
        clock.advance(timedelta(hours=5))
        docusign.set_status(envelope, "completed")
        body = docusign.connect_body(envelope)
        request = urllib.request.Request(
            f"http://127.0.0.1:{settings.port}/webhooks/docusign", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-DocuSign-Signature-1": docusign.sign(body, HMAC_KEY)})
        status = log.step("five hours later the signer signs; Connect posts envelope-completed (HMAC-signed)",
                          lambda: urllib.request.urlopen(request, timeout=10).status)
        log.say(f"    closeloop web answered {status}; the work is queued on the outbox")
        log.step("relay: signed PDF and certificate downloaded, stored, verified; quote signed",
                 services.relay.drain)
        stage = ledger.read(lambda s: s.get(Deal, deal_id).stage)
        row = ledger.read(lambda s: s.query(DocuSignEnvelope).filter_by(deal_id=deal_id).one())
        mark = "✓" if stage is Stage.BILLING_ACTIVE else "✗"
        log.say(f"  {mark} deal {deal_id} is now '{stage.value}' (verdict {row.verdict}); signed PDF "
                f"{Path(row.signed_pdf or '').name}, certificate {Path(row.certificate_pdf or '').name}")
    finally:
        server.close()
        services.close()
