"""Reply extraction and intent: the new text of a customer's email, without quoted
history, forwarded headers or signature; its language; what the customer wants.

Pure: text in, typed result out. The pieces: `mail_html` (HTML to quote-marked text),
`reply_quotes` (where the history starts), `reply_signature` (where the signature
starts), `text_language`, `reply_intent` (what the customer wants)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from parsers.mail_html import html_to_text
from parsers.reply_quotes import new_text_lines
from parsers.reply_signature import signature_start
from parsers.text_language import detect_language


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
    # NUL never belongs in mail text, and would collide with the HTML reader's markers.
    source = (text or "").replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    if not source.strip() and html:
        source = html_to_text(html)
    lines = new_text_lines(source.split("\n")).lines
    while lines and not lines[0].strip():
        lines.pop(0)
    start = signature_start(lines)
    body_lines = lines if start is None else lines[:start]
    signature_lines = [] if start is None else lines[start:]
    reply = "\n".join(lines).rstrip()
    # The body is for people and classifiers: trailing spaces (format=flowed) trimmed.
    body = "\n".join(line.rstrip() for line in body_lines).rstrip()
    signature = "\n".join(signature_lines).strip()
    return Reply(reply=reply, body=body, signature=signature, language=detect_language(body or reply))


def classify_intent(body: str, subject: str = "", attachment_names: tuple[str, ...] = ()) -> Intent:
    """What the customer wants, from the new text, the subject and the attachments' names."""
    from parsers.reply_intent import intent_of   # the rules sit in their own module
    return Intent(intent_of(body, subject, attachment_names))
