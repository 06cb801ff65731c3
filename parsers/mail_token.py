"""The deal token in our Reply-To address (plus-addressing: sales+d12-<mac>@company)
and the document numbers a customer may quote in a subject or body.

The token is `d<deal id>-<HMAC-SHA256(secret, "deal:<id>")[:16 hex]>`: 64 bits that
only the holder of the secret can make, compared in constant time, so a sender
cannot attach their mail to someone else's deal by guessing. Pure."""
from __future__ import annotations

import hashlib
import hmac
import re

_TOKEN = re.compile(r"\+d(\d{1,12})-([0-9a-f]{16})@", re.IGNORECASE)
# Q-2026-0042, INV-2026-000042, and other series rendered as PREFIX-YEAR-NUMBER
_NUMBER = re.compile(r"\b([A-Z]{1,8}-\d{4}-\d{2,8})\b")


def deal_token(deal_id: int, secret: str) -> str:
    mac = hmac.new(secret.encode(), f"deal:{deal_id}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"d{deal_id}-{mac}"


def reply_address(base: str, deal_id: int, secret: str) -> str:
    """'sales@company.example' -> 'sales+d12-0123456789abcdef@company.example'."""
    local, at, domain = base.partition("@")
    if not at:
        raise ValueError(f"{base!r} is not an email address")
    return f"{local.split('+')[0]}+{deal_token(deal_id, secret)}@{domain}"


def deal_from_addresses(addresses: list[str], secret: str) -> int | None:
    """The deal whose valid token appears in any of these addresses (To, Cc, Delivered-To)."""
    for address in addresses:
        for match in _TOKEN.finditer(address + ("@" if "@" not in address else "")):
            deal_id = int(match.group(1))
            expected = deal_token(deal_id, secret).partition("-")[2]
            if hmac.compare_digest(expected, match.group(2).lower()):
                return deal_id
    return None


def find_numbers(*texts: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for text in texts:
        for match in _NUMBER.finditer(text.upper()):
            seen.setdefault(match.group(1))
    return tuple(seen)[:10]
