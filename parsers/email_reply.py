"""Reply extraction and intent: the new text of a customer's email, without quoted
history, forwarded headers or signature; its language; what the customer wants.

Pure: text in, typed result out. (Interface agreed between the email issue's parts;
the implementation lands with the email agent.)"""
from __future__ import annotations

import re
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
    # Interim (the email text engineer's full version replaces it): the text up to the
    # first quote header ("On … wrote:") or quoted line, the signature after "-- ".
    if not text.strip() and html:
        text = re.sub(r"(?s)<(script|style).*?</\1>|<[^>]+>", " ", html)
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(">") or _QUOTE_HEADER.match(line.strip()):
            break
        kept.append(line)
    reply = "\n".join(kept).strip()
    body, _, signature = reply.partition("\n-- \n")
    return Reply(reply=reply, body=body.strip(), signature=signature.strip(), language="und")


_QUOTE_HEADER = re.compile(r"^(On .+ wrote:|-----Original Message-----|From: .+)$", re.IGNORECASE)

# Interim keyword rules, in order of precedence.
_INTENTS = (
    (Intent.UNSUBSCRIBE, re.compile(r"\b(unsubscribe|stop (sending|emailing)|remove me)\b", re.I)),
    (Intent.PAYMENT_SENT, re.compile(r"\b(we (have )?paid|payment (was |has been )?(sent|made)|remittance|"
                                     r"transferred)\b", re.I)),
    (Intent.PURCHASE_ORDER, re.compile(r"\b(purchase order|our PO|PO number)\b", re.I)),
    (Intent.SIGNED_DOCUMENT, re.compile(r"\b(signed|countersigned)\b", re.I)),
    (Intent.CHANGE_REQUEST, re.compile(r"\b(change|instead of|could you (add|remove|update))\b", re.I)),
)


def classify_intent(body: str, subject: str = "", attachment_names: tuple[str, ...] = ()) -> Intent:
    text = f"{subject}\n{body}"
    has_pdf = any(name.lower().endswith(".pdf") for name in attachment_names)
    for intent, pattern in _INTENTS:
        if pattern.search(text) and (has_pdf or intent not in (Intent.SIGNED_DOCUMENT, Intent.PURCHASE_ORDER)):
            return intent
    if has_pdf:
        return Intent.SIGNED_DOCUMENT
    if "?" in body:
        return Intent.QUESTION
    return Intent.OTHER
