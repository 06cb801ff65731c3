"""Signed license keys (sign, verify, tamper, expire), the `closeloop license` and
`closeloop billing` commands as real processes, and provisioning to a loopback HTTP
server that checks the HMAC and fails once before it accepts."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select

from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.license_signing import load_signing_key, public_key_pem
from flows.deals import Stage
from flows.finance import reinstate_license, suspend_license
from flows.license_keys import (LicenseKeyError, LicenseKeyExpired, key_id, read_claims, revoke_license, sign_key,
                                verify_key)
from flows.licenses import License, LicenseStatus
from flows.outbox import OutboxMessage, OutboxStatus
from flows.timeline import Event
from tests.factories import deal_at, seed

CLOSELOOP = str(Path(sys.executable).with_name("closeloop"))
NOW = datetime(2026, 3, 10, 9, tzinfo=timezone.utc)
CLAIMS = {"lic": 7, "customer": "Acme GmbH", "product": "SEAT", "seats": 10, "features": ["sso"],
          "nbf": int(NOW.timestamp()), "exp": int((NOW + timedelta(days=31)).timestamp())}


def test_a_key_verifies_with_the_public_key_and_carries_its_claims():
    private = Ed25519PrivateKey.generate()
    key = sign_key(private, CLAIMS)
    claims = verify_key(key, private.public_key(), NOW + timedelta(days=1))
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert claims["kid"] == key_id(private.public_key()) and claims["v"] == 1


def test_a_tampered_key_or_another_signer_is_refused():
    private = Ed25519PrivateKey.generate()
    body, _, signature = sign_key(private, CLAIMS).partition(".")
    forged = dict(read_claims(f"{body}.{signature}"), seats=500)
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(LicenseKeyError, match="bad signature"):
        verify_key(f"{forged_body}.{signature}", private.public_key(), NOW)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(LicenseKeyError, match="not one of ours"):
        verify_key(sign_key(other, CLAIMS), private.public_key(), NOW)
    with pytest.raises(LicenseKeyError, match="two base64url parts"):
        verify_key("garbage", private.public_key(), NOW)


def test_an_expired_key_is_genuine_but_refused():
    private = Ed25519PrivateKey.generate()
    with pytest.raises(LicenseKeyExpired, match="expired") as raised:
        verify_key(sign_key(private, CLAIMS), private.public_key(), NOW + timedelta(days=31))
    assert raised.value.claims["seats"] == 10


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CLOSELOOP_"))}
    return subprocess.run([CLOSELOOP, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True,
                          timeout=120)


def test_license_keygen_and_verify_as_a_real_process(tmp_path):
    made = _cli("license", "keygen", "--out", "signing.pem", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    pem = made.stdout[made.stdout.index("-----BEGIN"):]
    (tmp_path / "public.pem").write_text(pem)
    private = load_signing_key(Settings(license_signing_key_file=tmp_path / "signing.pem"))
    assert load_pem_public_key(pem.encode()) == private.public_key()
    now = datetime.now(timezone.utc)
    good = sign_key(private, dict(CLAIMS, nbf=int(now.timestamp()) - 60, exp=int(now.timestamp()) + 3600))
    checked = _cli("license", "verify", good, cwd=tmp_path, CLOSELOOP_LICENSE_SIGNING_KEY_FILE="signing.pem")
    assert checked.returncode == 0 and json.loads(checked.stdout)["seats"] == 10, checked.stderr
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    bad = _cli("license", "verify", tampered, "--public-key", "public.pem", cwd=tmp_path)
    assert bad.returncode == 1 and "invalid" in bad.stderr
    old = sign_key(private, dict(CLAIMS, nbf=0, exp=int(now.timestamp()) - 60))
    expired = _cli("license", "verify", old, "--public-key", "public.pem", cwd=tmp_path)
    assert expired.returncode == 2 and "expired" in expired.stderr and json.loads(expired.stdout)["lic"] == 7


def test_billing_run_as_a_real_process_bills_once(tmp_path, clock):
    database = tmp_path / "closeloop.db"
    settings = Settings(database_url=f"sqlite:///{database}", outbox_dir=tmp_path / "outbox", data_dir=tmp_path / "data")
    from closeloop import migrate
    migrate.upgrade(settings.database_url)
    services = build(settings, clock)
    deal_at(services.ledger, seed(services.ledger), Stage.BILLING_ACTIVE)
    services.close()
    env = {"DATABASE_URL": f"sqlite:///{database}"}
    first = _cli("billing", "run", "--as-of", "2026-04-10", cwd=tmp_path, **env)
    assert first.returncode == 0, first.stderr
    assert "1 invoices" in first.stdout
    again = _cli("billing", "run", "--as-of", "2026-04-10", cwd=tmp_path, **env)
    assert "0 invoices" in again.stdout


class ProductEndpoint(BaseHTTPRequestHandler):
    """The product's provisioning endpoint: checks the HMAC; answers from a script."""

    secret = b""
    answers: list[int] = []
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 — the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stamp = self.headers["X-Closeloop-Timestamp"]
        expected = "v1=" + hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        genuine = hmac.compare_digest(expected, self.headers["X-Closeloop-Signature"])
        status = (self.answers.pop(0) if self.answers else 200) if genuine else 401
        self.received.append({"body": json.loads(body), "key": self.headers["Idempotency-Key"], "status": status})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def product():
    ProductEndpoint.secret, ProductEndpoint.answers, ProductEndpoint.received = b"s3cret", [500], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProductEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/provision"
    server.shutdown()
    server.server_close()


def test_provisioning_is_signed_retried_after_a_500_and_delivered_once(settings, clock, product, tmp_path):
    services = build(settings.model_copy(update={
        "license_webhook_url": product, "license_webhook_secret": "s3cret", "data_dir": tmp_path / "data"}), clock)
    ledger = services.ledger
    deal = deal_at(ledger, seed(ledger), Stage.LICENSED)
    services.relay.drain()
    assert [r["status"] for r in ProductEndpoint.received] == [500]
    clock.advance(timedelta(hours=1))
    services.relay.drain()
    services.relay.drain()
    first, second = ProductEndpoint.received
    assert second["status"] == 200 and first["key"] == second["key"]
    public = load_signing_key(services.settings).public_key()
    claims = verify_key(second["body"]["key"], public, clock.now())
    assert (claims["customer"], claims["product"], claims["seats"], claims["features"]) == (
        "Acme GmbH", "SEAT", 10, ["sso"])
    assert "BEGIN PUBLIC KEY" in public_key_pem(public)

    def provisioning(session):
        return [m.status for m in session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "license.provision"))]
    assert ledger.read(provisioning) == [OutboxStatus.DONE]

    license_id = ledger.read(lambda s: s.scalar(select(License.id).where(License.deal_id == deal)))
    ledger.run(suspend_license, license_id, reason="overdue", actor="U_FIN")
    ledger.run(reinstate_license, license_id, reason="paid", actor="U_FIN")
    ledger.run(revoke_license, license_id, reason="contract ended", actor="U_FIN")
    assert ledger.run(revoke_license, license_id, reason="again", actor="U_FIN").value == "already done"
    services.relay.drain()
    assert [r["body"]["change"] for r in ProductEndpoint.received[2:]] == ["suspended", "active", "revoked"]
    assert ProductEndpoint.received[-1]["body"]["status"] == "revoked"
    assert len({r["key"] for r in ProductEndpoint.received}) == 4
    assert all(r["body"]["key"] == second["body"]["key"] for r in ProductEndpoint.received[2:])  # same grant
    kinds = ledger.read(lambda s: [e.kind for e in s.scalars(select(Event).where(Event.deal_id == deal))])
    assert {"license.issued", "license.key_minted", "license.suspended", "license.reinstated",
            "license.revoked"} <= set(kinds)
    assert ledger.read(lambda s: s.get(License, license_id).status) is LicenseStatus.REVOKED
    services.close()


def test_a_4xx_from_the_product_is_dead_lettered_not_retried(settings, clock, product, tmp_path):
    ProductEndpoint.secret = b"other"  # our signature will not match: 401
    services = build(settings.model_copy(update={
        "license_webhook_url": product, "license_webhook_secret": "s3cret", "data_dir": tmp_path / "data"}), clock)
    deal_at(services.ledger, seed(services.ledger), Stage.LICENSED)
    services.relay.drain()
    clock.advance(timedelta(hours=2))
    services.relay.drain()
    assert [r["status"] for r in ProductEndpoint.received] == [401]
    statuses = services.ledger.read(lambda s: [m.status for m in s.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "license.provision"))])
    assert statuses == [OutboxStatus.DEAD]
    services.close()


def test_the_readme_verification_snippet_verifies_our_keys():
    import re
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(import base64.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 — the documented code, run as a reader would
    private = Ed25519PrivateKey.generate()
    now = int(datetime.now(timezone.utc).timestamp())
    key = sign_key(private, dict(CLAIMS, nbf=now - 1, exp=now + 60))
    assert namespace["verify"](key, public_key_pem(private.public_key()).encode())["seats"] == 10
    with pytest.raises(InvalidSignature):
        tampered = key[:-5] + ("A" if key[-5] != "A" else "B") + key[-4:]
        namespace["verify"](tampered, public_key_pem(private.public_key()).encode())
