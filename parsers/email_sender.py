"""Who really sent a message: the one From address, parsed strictly, and whether our
own receiving server vouched for it (DKIM pass aligned with the From domain).

Pure. The message's `Authentication-Results` headers are trusted only when they
carry OUR authserv-id, and only the topmost one — it is the one our server added;
any other (an attacker can write as many as they like below it) is ignored. Without
a trusted one, DKIM can be verified here from the message bytes when the caller
passes a DNS lookup function (dkimpy); otherwise the sender is not authenticated.

This Python's `email.utils.getaddresses` has no `strict=` (CVE-2023-27043: it reads
`alice@example.org)<bob@evil.example>` as alice@example.org), so the From value is
checked by our own strict grammar before anything trusts it."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = rf"{_ATOM}(?:\.{_ATOM})*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_ADDR = rf"(?P<addr>{_LOCAL}@{_DOMAIN})"
# display-name: a quoted string (no bare quotes inside) or plain words without specials
_PHRASE = r'(?:"(?P<quoted>(?:[^"\\\r\n]|\\.)*)"|(?P<words>[^"<>()@,;:\\\[\]\r\n]*?))'
_NAME_ADDR = re.compile(rf"^\s*{_PHRASE}\s*<{_ADDR}>\s*$")
_BARE = re.compile(rf"^\s*{_ADDR}\s*$")
_LOOKS_LIKE_ADDRESS = re.compile(r"[^\s@<>]+@[^\s@<>]+")


@dataclass(frozen=True)
class Sender:
    address: str | None        # lowercased, None when the From header is unusable
    domain: str | None
    authenticated: bool        # DKIM pass aligned with the From domain, vouched for by us
    reason: str                # why not (or how it was authenticated)


def parse_from(message: Message) -> tuple[str | None, str]:
    """(address, problem): exactly one From header holding exactly one well-formed address."""
    # Raw source values: the header registry's own parsing is the part with the bugs.
    values = [value for name, value in message.raw_items() if name.lower() == "from"]
    if len(values) != 1:
        return None, f"{len(values)} From headers (exactly one is allowed)"
    value = re.sub(r"\r?\n[ \t]", " ", str(values[0]))  # unfold
    if "\r" in value or "\n" in value:
        return None, "From header contains a line break"
    try:
        decoded = str(make_header(decode_header(value))) if "=?" in value else value
    except (ValueError, LookupError):
        return None, "From header has undecodable encoded words"
    match = _NAME_ADDR.match(decoded) or _BARE.match(decoded)
    if match is None:
        return None, f"malformed From address {decoded[:120]!r}"
    address = match.group("addr").lower()
    names = match.groupdict()
    display = (names.get("quoted") or names.get("words") or "").strip()
    spoof = _LOOKS_LIKE_ADDRESS.search(display)
    if spoof and spoof.group(0).lower().strip(".,;:\"'") != address:
        return None, f"display name {display[:80]!r} shows another address than {address}"
    if decoded.count("<") > 1 or decoded.count(">") > 1:
        return None, f"malformed From address {decoded[:120]!r}"
    return address, ""


@dataclass(frozen=True)
class AuthResult:
    method: str
    result: str
    props: dict[str, str]


def trusted_results(message: Message, authserv_id: str) -> list[AuthResult] | None:
    """The results in the topmost Authentication-Results header when it is ours; None otherwise."""
    headers = message.get_all("Authentication-Results") or []
    if not headers:
        return None
    serv, results = parse_authentication_results(str(headers[0]))
    if serv is None or serv.lower() != authserv_id.lower():
        return None
    return results


def parse_authentication_results(value: str) -> tuple[str | None, list[AuthResult]]:
    """RFC 8601: 'authserv-id [version]; method=result prop=value …; …' (comments dropped)."""
    text = _drop_comments(value.replace("\r\n", " ").replace("\n", " "))
    pieces = [p.strip() for p in text.split(";")]
    if not pieces or not pieces[0]:
        return None, []
    serv = pieces[0].split()[0]
    results = []
    for piece in pieces[1:]:
        tokens = piece.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        props = {}
        for token in tokens[1:]:
            key, sep, val = token.partition("=")
            if sep:
                props[key.lower()] = val.strip('"').lower()
        results.append(AuthResult(method.lower(), result.lower(), props))
    return serv, results


def aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment, simply: the same domain or one a subdomain of the other."""
    d, f = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return d == f or f.endswith("." + d) or d.endswith("." + f)


def check_sender(message: Message, raw: bytes, *, authserv_id: str,
                 dns_txt: Callable[..., bytes | None] | None = None) -> Sender:
    address, problem = parse_from(message)
    if address is None:
        return Sender(None, None, False, problem)
    domain = address.rpartition("@")[2]
    results = trusted_results(message, authserv_id)
    if results is not None:
        dkim = [r for r in results if r.method == "dkim"]
        passing = [r for r in dkim if r.result == "pass"]
        good = [r for r in passing if aligned(r.props.get("header.d") or
                                              r.props.get("header.i", "").rpartition("@")[2], domain)]
        if good:
            return Sender(address, domain, True, f"dkim=pass d={good[0].props.get('header.d')} ({authserv_id})")
        if passing:
            d = passing[0].props.get("header.d", "?")
            return Sender(address, domain, False, f"DKIM d={d} is not aligned with the From domain {domain}")
        if dkim:
            return Sender(address, domain, False, f"DKIM {dkim[0].result} ({authserv_id})")
        return Sender(address, domain, False, f"no DKIM result from {authserv_id}")
    if dns_txt is None:
        return Sender(address, domain, False, f"no Authentication-Results from {authserv_id} and no DKIM check")
    return _verify_dkim(raw, address, domain, dns_txt)


def _verify_dkim(raw: bytes, address: str, domain: str, dns_txt: Callable[..., bytes | None]) -> Sender:
    import dkim  # dkimpy: verifies the signature against the key the dns function returns

    verifier = dkim.DKIM(raw)
    signatures = [h for h in verifier.headers if h[0].lower() == b"dkim-signature"]
    if not signatures:
        return Sender(address, domain, False, "no DKIM signature")
    for index, (_, value) in enumerate(signatures):
        tags = dict(t.strip().split(b"=", 1) for t in value.split(b";") if b"=" in t)
        d = tags.get(b"d", b"").strip().decode(errors="replace")
        try:
            ok = verifier.verify(idx=index, dnsfunc=dns_txt)
        except dkim.DKIMException as error:
            return Sender(address, domain, False, f"DKIM check failed: {error}")
        if ok and aligned(d, domain):
            return Sender(address, domain, True, f"dkim verified d={d}")
        if ok:
            return Sender(address, domain, False, f"DKIM d={d} is not aligned with the From domain {domain}")
    return Sender(address, domain, False, "DKIM signature does not verify")


def _drop_comments(text: str) -> str:
    out, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out)
