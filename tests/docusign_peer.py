"""Fixtures for the e-signature tests: the loopback DocuSign (TLS, JWT, the official
spec's request schemas), settings pointing the SDK at it, and Connect posting."""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from waitress.server import create_server

from closeloop.bootstrap import Services, build
from closeloop.config import Settings
from closeloop.demo.loopback_docusign import INTEGRATION_KEY, USER, LoopbackDocuSign, free_port, public_pem, rsa_key_pem
from closeloop.web import web_app
from flows.deals import SignatureEnvelope

KEYS = ("old-connect-key", "new-connect-key")  # two active keys: rotation in progress


@pytest.fixture(scope="session")
def jwt_key() -> bytes:
    return rsa_key_pem()


@pytest.fixture(scope="session")
def jwt_public_key(jwt_key: bytes) -> bytes:
    return public_pem(jwt_key)


@pytest.fixture
def docusign(jwt_public_key: bytes, tmp_path) -> Iterator[LoopbackDocuSign]:
    server = LoopbackDocuSign(jwt_public_key, directory=tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def esign_settings(settings: Settings, docusign: LoopbackDocuSign, jwt_key: bytes, tmp_path) -> Settings:
    return settings.model_copy(update={
        "docusign_integration_key": INTEGRATION_KEY, "docusign_user_id": USER,
        "docusign_private_key": jwt_key.decode(), "docusign_oauth_host": docusign.host,
        "docusign_ca_cert": docusign.cert_path, "docusign_connect_hmac_keys": ",".join(KEYS),
        "documents_dir": tmp_path / "documents", "esign_reconcile_minutes": 30})


@pytest.fixture
def esign(esign_settings: Settings, clock) -> Iterator[Services]:
    built = build(esign_settings, clock)
    yield built
    built.close()


@pytest.fixture
def connect_url(esign: Services) -> Iterator[str]:
    server = create_server(web_app(esign), host="127.0.0.1", port=free_port(), threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}/webhooks/docusign"
    server.close()


def post(url: str, body: bytes, signatures: list[str] | tuple[str, ...] = ()) -> int:
    headers = {"Content-Type": "application/json", "X-Authorization-Digest": "HMACSHA256"}
    for n, signature in enumerate(signatures, start=1):
        headers[f"X-DocuSign-Signature-{n}"] = signature
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def envelope_of(services: Services, deal_id: int) -> SignatureEnvelope:
    from sqlalchemy import select
    return services.ledger.read(lambda s: s.scalars(select(SignatureEnvelope).where(
        SignatureEnvelope.deal_id == deal_id).order_by(SignatureEnvelope.id.desc())).first())
