"""Header values built from customer data (names, PO numbers, subjects) must not be
able to add headers or recipients. This Python's `email` package can be made to
emit a header from an encoded newline (CVE-2024-6923), so values are checked here
before use, and the finished message is parsed back and compared with what was meant.

Pure."""
from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header
from email.utils import getaddresses

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=")
_ADDRESS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                      r"[A-Za-z]{2,63}$")


class HeaderInjection(ValueError):
    """A value would have changed the message's headers or recipients."""


def clean_value(name: str, value: str) -> str:
    """One line of header text: CR/LF refused (raw, or hidden in encoded words)."""
    if any(c in value for c in "\r\n\x00"):
        raise HeaderInjection(f"{name} contains a line break: {value[:80]!r}")
    for word in _ENCODED_WORD.findall(value):
        try:
            decoded = b"".join(part if isinstance(part, bytes) else part.encode()
                               for part, _ in decode_header(word))
        except (ValueError, LookupError):
            raise HeaderInjection(f"{name} contains a malformed encoded word: {word[:80]!r}") from None
        if any(c in decoded for c in (b"\r", b"\n", b"\x00")):
            raise HeaderInjection(f"{name} contains an encoded line break: {word[:80]!r}")
    return value


def clean_address(value: str) -> str:
    address = value.strip()
    if not _ADDRESS.match(address):
        raise HeaderInjection(f"{value[:80]!r} is not a single plain email address")
    return address


def verify(raw: bytes, *, headers: dict[str, str], recipients: list[str]) -> None:
    """Parse the produced bytes back: exactly the intended header names, each once,
    and exactly the intended recipients. Raises HeaderInjection otherwise."""
    message = message_from_bytes(raw, policy=policy.default)
    names = [k.lower() for k, _ in message.raw_items()]
    expected = {k.lower() for k in headers} | {"mime-version", "content-type", "content-transfer-encoding"}
    extra = [n for n in names if n not in expected]
    repeated = {n for n in names if names.count(n) > 1}
    missing = {k.lower() for k in headers} - set(names)
    if missing:
        raise HeaderInjection(f"the produced message lost headers: {sorted(missing)}")
    if extra or repeated:
        raise HeaderInjection(f"the produced message has unexpected headers: {sorted(set(extra) | repeated)}")
    found = sorted(a.lower() for _, a in getaddresses([str(v) for k, v in message.raw_items()
                                                       if k.lower() in ("to", "cc", "bcc")]))
    if found != sorted(r.lower() for r in recipients):
        raise HeaderInjection(f"the produced message is addressed to {found}, not {sorted(recipients)}")
