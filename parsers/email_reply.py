"""Reply extraction and intent: the new text of a customer's email, without quoted
history, forwarded headers or signature; its language; what the customer wants.

Pure: text in, typed result out. (Interface agreed between the email issue's parts;
the implementation lands with the email agent.)"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Intent(str, Enum):
    SIGNED_DOCUMENT = "signed_document"
    QUESTION = "question"
    CHANGE_REQUEST = "change_request"
    PAYMENT_SENT = "payment_sent"
    PURCHASE_ORDER = "purchase_order"
    UNSUBSCRIBE = "unsubscribe"
    OTHER = "other"


@dataclass(frozen=True)
class Reply:
    reply: str            # the new text, signature kept
    body: str             # the new text without the signature
    signature: str        # the signature block ("" when none)
    language: str         # ISO 639-1 code, "und" when unknown


def extract_reply(text: str, html: str | None = None) -> Reply:
    """The new text of a reply; `html` is used when there is no usable plain text."""
    raise NotImplementedError


def classify_intent(body: str, subject: str = "", attachment_names: tuple[str, ...] = ()) -> Intent:
    raise NotImplementedError
