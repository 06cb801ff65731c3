"""Signed license keys, and the license steps that need them (mint, revoke, what to
provision).

A key is `base64url(payload) + "." + base64url(signature)`, unpadded, where the payload
is compact JSON with sorted keys and the signature is Ed25519 over the ASCII of the
first part. The payload names its signing key (`kid`: 16 hex digits of the SHA-256 of
the raw public key), so keys can be rotated and old ones still verified. Claims:
`lic` (license id), `customer`, `product`, `seats`, `features`, `nbf`/`exp` (Unix seconds;
`exp` null: perpetual), `iat`, `v` (format version, 1).

The product verifies a key offline with the public key alone (README: "Verifying a
license key"); suspension and revocation reach it through the provisioning webhook."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from flows.deals import Deal
from flows.errors import InvalidInput, NotFound
from flows.ledger import Tx
from flows.licenses import License, LicenseStatus
from flows.parties import Customer
from flows.steps import Done, announce

FORMAT_VERSION = 1
Signer = Callable[[dict[str, Any]], str]  # claims -> key (the wiring holds the private key)


class LicenseKeyError(Exception):
    """The key is not one of ours: malformed, unknown signing key, or a bad signature."""


class LicenseKeyExpired(LicenseKeyError):
    """Genuine, but outside its validity."""

    def __init__(self, message: str, claims: dict[str, Any]) -> None:
        super().__init__(message)
        self.claims = claims


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_key(private_key: Ed25519PrivateKey, claims: Mapping[str, Any]) -> str:
    payload = dict(claims, kid=key_id(private_key.public_key()), v=FORMAT_VERSION)
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_b64(private_key.sign(body.encode('ascii')))}"


def read_claims(key: str) -> dict[str, Any]:
    """The claims WITHOUT checking the signature (to show or compare, never to trust)."""
    body, _, signature = key.strip().partition(".")
    if not body or not signature:
        raise LicenseKeyError("not a license key: expected two base64url parts joined by '.'")
    try:
        claims = json.loads(_unb64(body))
    except (ValueError, binascii.Error) as error:
        raise LicenseKeyError(f"not a license key: the payload does not decode ({error})") from None
    if not isinstance(claims, dict):
        raise LicenseKeyError("not a license key: the payload is not a JSON object")
    return claims


def verify_key(key: str, public_keys: Mapping[str, Ed25519PublicKey] | Ed25519PublicKey,
               now: datetime) -> dict[str, Any]:
    """The claims of a genuine key valid at `now`; LicenseKeyError (or LicenseKeyExpired) otherwise."""
    claims = read_claims(key)
    keys = {key_id(public_keys): public_keys} if isinstance(public_keys, Ed25519PublicKey) else public_keys
    public = keys.get(str(claims.get("kid")))
    if public is None:
        raise LicenseKeyError(f"signed with key id {claims.get('kid')!r}, which is not one of ours "
                              f"({', '.join(sorted(keys)) or 'none'})")
    body, _, signature = key.strip().partition(".")
    try:
        public.verify(_unb64(signature), body.encode("ascii"))
    except (InvalidSignature, ValueError, binascii.Error):
        raise LicenseKeyError("bad signature: the key was altered or not signed by us") from None
    at = now.timestamp()
    if isinstance(claims.get("nbf"), int) and at < claims["nbf"]:
        raise LicenseKeyExpired(f"not valid before {_iso(claims['nbf'])}", claims)
    if isinstance(claims.get("exp"), int) and at >= claims["exp"]:
        raise LicenseKeyExpired(f"expired at {_iso(claims['exp'])}", claims)
    return claims


def license_claims(license: License, customer: str) -> dict[str, Any]:
    return {"lic": license.id, "customer": customer, "customer_id": license.customer_id,
            "product": license.product, "seats": license.seats, "features": list(license.features),
            "nbf": int(license.valid_from.timestamp()),
            "exp": int(license.valid_until.timestamp()) if license.valid_until else None}


# --- steps -----------------------------------------------------------------------------

def mint_license_key(tx: Tx, license_id: int, signer: Signer) -> str:
    """The license's key for what it grants now; re-signed only when that changed (seats)."""
    license = tx.get(License, license_id)
    customer = tx.get(Customer, license.customer_id, lock=False)
    claims = license_claims(license, customer.name)
    if license.key:
        current = read_claims(license.key)
        if {k: current.get(k) for k in claims} == claims:
            return license.key
    license.key = signer(dict(claims, iat=int(tx.now.timestamp())))
    tx.record("license.key_minted", deal_id=license.deal_id, customer_id=license.customer_id,
              license=license.id, product=license.product, seats=license.seats, kid=read_claims(license.key)["kid"])
    return license.key


def provision_request(tx: Tx, deal_id: int, product: str, signer: Signer) -> dict[str, Any]:
    """What the provisioning webhook sends for a deal's license: its state and current key."""
    license_id = tx.session.scalar(select(License.id).where(License.deal_id == deal_id, License.product == product))
    if license_id is None:
        raise NotFound("license", f"{product} of deal {deal_id}")
    key = mint_license_key(tx, license_id, signer)
    license = tx.get(License, license_id)
    return {"license_id": license.id, "deal_id": deal_id, "customer_id": license.customer_id,
            "product": product, "seats": license.seats, "features": list(license.features),
            "status": license.status.value, "key": key,
            "valid_until": license.valid_until.isoformat() if license.valid_until else None}


def revoke_license(tx: Tx, license_id: int, *, reason: str, actor: str) -> Done:
    """For good (contract ended, fraud): a revoked license is never reinstated."""
    license = tx.get(License, license_id)
    if license.status is LicenseStatus.REVOKED:
        return Done.ALREADY
    if not reason.strip():
        raise InvalidInput("say why the license is revoked, for the customer's timeline")
    license.status, license.status_changed_at = LicenseStatus.REVOKED, tx.now
    uid = announce(tx, tx.get(Deal, license.deal_id, lock=False), "license.revoked",
                   f"License {license.product} × {license.seats} revoked by {actor}: {reason}",
                   actor=actor, product=license.product, reason=reason)
    tx.enqueue("license.provision", {"deal_id": license.deal_id, "product": license.product, "status": "revoked"},
               key=f"license.provision:{license.deal_id}:{license.product}:{uid}", deal_id=license.deal_id)
    return Done.ACTED


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
