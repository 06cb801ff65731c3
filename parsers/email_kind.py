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
    raise NotImplementedError
