"""One fetched message -> the facts the ledger routes on, by the pure parsers: its
kind (reply, auto-reply, bounce), the deal token in our address, its thread and the
numbers it quotes, the new text and intent, the sender check, the attachment policy.

A message the parsers cannot read is still stored (as a refused reply, so a person
sees it): nothing that arrives is dropped."""
from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from email import message_from_bytes
from email.policy import EmailPolicy
from email.message import EmailMessage
from email.utils import getaddresses

from flows.mail import AttachmentFacts, InboundFacts
from parsers import email_attachments
from parsers.email_kind import MessageKind, classify_message
from parsers.email_reply import classify_intent, extract_reply
from parsers.email_sender import check_sender, parse_from
from parsers.mail_token import deal_from_addresses, find_numbers

_MSGID = re.compile(r"<[^<>\s]{1,250}>")


class _CachingPolicy(EmailPolicy):
    """policy.default, but a header value is parsed once: the stdlib re-parses a header
    on every access (Content-Type alone a dozen times a message), and identical values
    (Content-Type, Mime-Version, our authserv-id results) recur across messages.
    Header objects are immutable, so sharing them is safe."""

    def header_fetch_parse(self, name: str, value: str):  # type: ignore[no-untyped-def, override]
        if hasattr(value, "name"):
            return value
        return _parsed_header(self.header_factory, name, _LINESEP.sub("", value))


@functools.lru_cache(maxsize=8192)
def _parsed_header(factory, name: str, value: str):  # type: ignore[no-untyped-def]
    return factory(name, value)


_LINESEP = re.compile(r"\n|\r")  # what EmailPolicy strips (not every splitlines() break)
POLICY = _CachingPolicy()


@dataclass(frozen=True)
class ReadConfig:
    secret: str                                  # the deal token's HMAC key
    authserv_id: str | None = None               # our receiving server's Authentication-Results id
    limits: email_attachments.Limits = email_attachments.Limits()
    dns_txt: Callable[..., bytes | None] | None = None  # set: verify DKIM here when no trusted A-R


def identity(raw: bytes) -> tuple[str, str]:
    """(Message-ID, content hash) from the raw bytes, without parsing the message: enough
    to recognise mail already stored (a resync, a duplicate delivery) before paying for a parse."""
    head, body_at = _head_body(raw)
    lines = _LOGICAL_LINE.split(head)
    digest = _hash(lines, raw, body_at)
    if len(raw) <= 65536:  # the whole header at hand: its first Message-ID line, as the regex below finds it
        found = next((line[11:].lstrip(b" \t") for line in lines if line[:11].lower() == b"message-id:"), None)
    else:
        match = _MESSAGE_ID_HEADER.search(raw[:65536].replace(b"\r\n", b"\n").partition(b"\n\n")[0])
        found = match.group(1) if match else None
    value = re.sub(r"\s+", " ", found.decode("utf-8", "replace")) if found is not None else ""
    return _first_id(value) or f"<sha256.{digest[:32]}@closeloop>", digest


_MESSAGE_ID_HEADER = re.compile(rb"(?im)^message-id:[ \t]*((?:.*)(?:\n[ \t].*)*)")


def read_message(uid: int, raw: bytes, config: ReadConfig, known: tuple[str, str] | None = None,
                 size: int | None = None) -> InboundFacts:
    """`known`: the message's identity() when the caller computed it already; `size`:
    the whole message's length when `raw` is only its beginning (a message too large to parse)."""
    limit = config.limits.max_message_bytes
    size = len(raw) if size is None else size
    oversized = size > limit
    readable = _head(raw) if oversized else raw  # too large to parse within bounded memory: headers only
    message = message_from_bytes(readable, policy=POLICY)
    assert isinstance(message, EmailMessage)
    message_id, digest = known or identity(raw)
    base = dict(uid=uid, raw=raw, message_id=message_id, content_hash=digest,
                subject=_header(message, "Subject")[:500])
    try:
        facts = _read(message, readable, config, base)
        if oversized:
            return replace(facts, message_refused=f"{email_attachments.TOO_LARGE}: the message is {size} bytes "
                           f"(at most {limit}); its parts were not read")
        return facts
    except Exception as error:  # noqa: BLE001 — an unreadable message is kept and shown, not lost
        return InboundFacts(**base, from_address=None, kind="reply", message_refused=f"could not read it: "
                            f"{type(error).__name__}: {error}"[:500], sender_reason="unreadable message")


def _read(message: EmailMessage, raw: bytes, config: ReadConfig, base: dict) -> InboundFacts:  # type: ignore[type-arg]
    kind = classify_message(message)
    thread = tuple(_MSGID.findall(_header(message, "In-Reply-To") + " " + _header(message, "References")))[-20:]
    recipients = [a for _, a in getaddresses([_header(message, h) for h in ("To", "Cc", "Delivered-To",
                                                                             "X-Original-To")])]
    token_deal = deal_from_addresses(recipients, config.secret)
    if kind.kind is MessageKind.BOUNCE:
        bounce = kind.bounce
        return InboundFacts(**base, from_address=None, kind="bounce", kind_reason=kind.reason,
                            bounce_of=bounce.original_message_id if bounce else None,
                            bounce_recipient=bounce.recipient if bounce else None,
                            bounce_status=bounce.status if bounce else None,
                            bounce_permanent=bounce.permanent if bounce else True,
                            bounce_diagnostic=bounce.diagnostic if bounce else "")
    sender = (check_sender(message, raw, authserv_id=config.authserv_id or "", dns_txt=config.dns_txt)
              if config.authserv_id or config.dns_txt else None)
    address = sender.address if sender else parse_from(message)[0]
    if kind.kind is MessageKind.AUTO_REPLY:
        return InboundFacts(**base, from_address=address, kind="auto_reply", kind_reason=kind.reason,
                            token_deal_id=token_deal, thread_ids=thread)
    verdict = email_attachments.check_message(message, config.limits)
    text, html = _bodies(message)
    reply = extract_reply(text, html)
    names = tuple(a.filename for a in verdict.attachments if not a.refused)
    intent = classify_intent(reply.body, base["subject"], names)
    attachments = tuple(AttachmentFacts(a.filename, a.content_type, a.size, a.sha256,
                                        None if a.refused else a.data, a.refused, a.detail)
                        for a in verdict.attachments)
    return InboundFacts(**base, from_address=address, kind="reply", kind_reason=kind.reason,
                        token_deal_id=token_deal, thread_ids=thread,
                        numbers=find_numbers(base["subject"], reply.body),
                        intent=intent.value, text=reply.reply,
                        sender_ok=bool(sender and sender.authenticated),
                        sender_reason=(sender.reason if sender else "no authserv-id configured "
                                       "(CLOSELOOP_MAIL_AUTHSERV_ID): senders cannot be authenticated"),
                        message_refused=f"{verdict.refused}: {verdict.detail}" if verdict.refused else None,
                        attachments=attachments)


def content_hash(raw: bytes) -> str:
    """The body and the headers a sender writes; not the Received/Delivered-To lines
    each hop and each mailbox adds, so the same mail delivered twice hashes the same.
    (Of the message with CRLF made LF: computed in slices, never a copy of a large body.)"""
    head, body_at = _head_body(raw)
    return _hash(_LOGICAL_LINE.split(head), raw, body_at)


def _head_body(raw: bytes) -> tuple[bytes, int]:
    """The header block with CRLF made LF, and where the body starts in `raw`: after the
    first blank line once CRLF is made LF (as the whole message's partition would find it)."""
    found = _BLANK_LINE.search(raw)
    if found is None:
        return raw.replace(b"\r\n", b"\n"), len(raw)
    end = found.start() - (1 if raw[found.start() - 1:found.start()] == b"\r" else 0)  # that CR ends a CRLF
    return raw[:end].replace(b"\r\n", b"\n"), found.end()


def _hash(lines: list[bytes], raw: bytes, body_at: int) -> str:
    keep = [line for line in lines if line.split(b":", 1)[0].strip().lower() in _HASHED]
    digest = hashlib.sha256(b"\n".join(sorted(keep)) + b"\n\n")
    view, carry = memoryview(raw), b""
    for start in range(body_at, len(raw), _SLICE):
        chunk = carry + bytes(view[start:start + _SLICE])
        carry = b"\r" if chunk.endswith(b"\r") else b""  # it may pair with the next slice's LF
        digest.update((chunk[:-1] if carry else chunk).replace(b"\r\n", b"\n"))
    digest.update(carry)
    return digest.hexdigest()


_SLICE = 1 << 20
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LOGICAL_LINE = re.compile(rb"\n(?![ \t])")  # a header line with its continuation lines
_HASHED = frozenset((b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"content-type"))


def _head(raw: bytes) -> bytes:
    """The header block of a message and its blank line, nothing of the body."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[:min(ends) + 2] + b"\r\n" if ends else raw[:65536]


def _bodies(message: EmailMessage) -> tuple[str, str | None]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (_content(text) if text is not None else ""), (_content(html) if html is not None else None)


def _content(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, IndexError):  # a header the registry cannot parse: fall back to the raw text
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
    return re.sub(r"[\r\n]+", " ", str(value or ""))


def _first_id(value: str) -> str | None:
    found = _MSGID.search(value)
    return found.group(0) if found else (value.strip()[:250] or None)
