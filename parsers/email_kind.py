"""What kind of message arrived: a person's reply, an auto-reply (out of office,
vacation, auto-submitted), or a bounce / delivery report tied to the message it
answers. Pure: an `email.message.EmailMessage` in, a typed verdict out.

(Interface agreed between the email issue's parts; the implementation lands with the
email agent.)"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from enum import Enum


class MessageKind(str, Enum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"


@dataclass(frozen=True)
class Bounce:
    original_message_id: str | None   # the Message-ID of our message it answers, "<…>"
    recipient: str | None             # the address that failed
    status: str | None                # RFC 3464 status, e.g. "5.1.1"
    permanent: bool                   # 5.x.x (False for 4.x.x delays)
    diagnostic: str                   # the remote server's words, for people


@dataclass(frozen=True)
class Kind:
    kind: MessageKind
    reason: str                       # why: "Auto-Submitted: auto-replied", "multipart/report", …
    bounce: Bounce | None = None


def classify_message(message: EmailMessage) -> Kind:
    # Interim, header-based (the email text engineer's full version replaces it):
    # RFC 3464 delivery reports, then RFC 3834 Auto-Submitted and the common markers.
    if message.get_content_type() == "multipart/report" and \
            (message.get_param("report-type") or "").lower() == "delivery-status":
        return Kind(MessageKind.BOUNCE, "multipart/report", _dsn(message))
    auto = (message.get("Auto-Submitted") or "no").strip().lower()
    if auto != "no":
        return Kind(MessageKind.AUTO_REPLY, f"Auto-Submitted: {auto}")
    for header in ("X-Autoreply", "X-Autorespond"):
        if message.get(header):
            return Kind(MessageKind.AUTO_REPLY, header)
    if (message.get("Precedence") or "").strip().lower() in ("auto_reply", "bulk", "junk"):
        return Kind(MessageKind.AUTO_REPLY, f"Precedence: {message.get('Precedence')}")
    return Kind(MessageKind.REPLY, "a person's message")


def _dsn(message: EmailMessage) -> Bounce:
    original = recipient = status = None
    diagnostic = ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            # Its payload is a list of header blocks: per-message, then per-recipient.
            for block in part.get_payload():
                recipient = recipient or _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
                status = status or (block.get("Status") or "").strip() or None
                diagnostic = diagnostic or (block.get("Diagnostic-Code") or "").strip()
        elif kind in ("message/rfc822-headers", "message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else payload
            if hasattr(inner, "get"):
                original = original or (inner.get("Message-ID") or "").strip() or None
            elif isinstance(inner, str):
                from email import message_from_string
                original = original or (message_from_string(inner).get("Message-ID") or "").strip() or None
    return Bounce(original_message_id=original, recipient=recipient, status=status,
                  permanent=not (status or "5").startswith("4"), diagnostic=diagnostic)


def _address(field: str | None) -> str | None:
    if not field:
        return None
    _, _, address = field.partition(";")  # "rfc822; someone@example.org"
    return (address or field).strip().strip("<>").lower() or None
