"""Where the license signing key comes from: CLOSELOOP_LICENSE_SIGNING_KEY (PEM),
else CLOSELOOP_LICENSE_SIGNING_KEY_FILE, else — embedded mode — a key generated once
into the data dir (CLOSELOOP_DATA_DIR/license-signing-key.pem, mode 0600).

The generated key is fine for trying closeloop; in production set your own and keep
it: every key already given to customers verifies only with its public half."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat, PublicFormat,
                                                          load_pem_private_key)

from closeloop.config import Settings
from flows.license_keys import Signer, sign_key

log = logging.getLogger("closeloop.license")


def generated_key_path(settings: Settings) -> Path:
    return settings.data_dir / "license-signing-key.pem"


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_signing_key(settings: Settings, *, create: bool = True) -> Ed25519PrivateKey:
    if settings.license_signing_key:
        return _parse(settings.license_signing_key.encode(), "CLOSELOOP_LICENSE_SIGNING_KEY")
    if settings.license_signing_key_file:
        path = settings.license_signing_key_file
        try:
            return _parse(path.read_bytes(), str(path))
        except OSError as error:
            raise ValueError(f"cannot read the license signing key {path}: {error.strerror}") from None
    path = generated_key_path(settings)
    if path.exists() or not create:
        return _parse(path.read_bytes(), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    try:  # O_EXCL: two processes starting at once keep one key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _parse(path.read_bytes(), str(path))
    with os.fdopen(fd, "wb") as out:
        out.write(private_key_pem(key))
    log.warning("generated a license signing key at %s: fine for trying closeloop; for production set "
                "CLOSELOOP_LICENSE_SIGNING_KEY_FILE and keep that file safe", path)
    return key


def signer(settings: Settings) -> Signer:
    """Loads (or creates) the key on first use, so settings without licenses never touch it."""
    holder: list[Ed25519PrivateKey] = []

    def sign(claims: dict) -> str:  # type: ignore[type-arg]
        if not holder:
            holder.append(load_signing_key(settings))
        return sign_key(holder[0], claims)
    return sign


def _parse(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the license signing key in {where} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"the license signing key in {where} is not an Ed25519 key")
    return key
