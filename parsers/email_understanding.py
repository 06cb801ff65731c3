"""One call that reads a whole message the way the email agent does: the new text,
its signature and language, the intent, whether it is an auto-reply, and the bounce
it reports. Input is the raw bytes of a `.eml` file, or plain text that is not a MIME
message (then there are no headers to judge by: it is read as a person's reply)."""
from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

from parsers.email_kind import MessageKind, classify_message
from parsers.email_reply import classify_intent, extract_reply
from parsers.mail_message import attachment_names, body_texts

_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,76}:[ \t]")   # RFC 5322 field name, colon
_MESSAGE_FIELDS = ("From", "To", "Subject", "Date", "Message-ID", "Content-Type", "MIME-Version", "Received")
MAX_BYTES = 50 * 1024 * 1024


class UnreadableMessage(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _looks_like_mime(raw: bytes) -> bool:
    """A message starts with header lines, and some of them are a message's own fields
    ("Note: call me" at the top of a text file is not a header block)."""
    first = raw.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first):
        return False
    headers = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
    return any(headers.get(field) is not None for field in _MESSAGE_FIELDS)


def _plain_text(raw: bytes) -> str:
    for encoding in ("utf-8", "utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8",):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("cp1252", errors="replace")


def understand_message(raw: bytes) -> dict:
    """The JSON-ready reading of a message (the shape `closeloop parse reply` prints)."""
    if not raw.strip():
        raise UnreadableMessage("empty", "the file is empty")
    if len(raw) > MAX_BYTES:
        raise UnreadableMessage("too_large", f"the file is over {MAX_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableMessage("not_text", "the file is binary, neither a MIME message nor text")
    if _looks_like_mime(raw):
        try:
            message = BytesParser(policy=policy.default).parsebytes(raw)
            text, html = body_texts(message)
            kind = classify_message(message)
            subject = str(message.get("Subject", "") or "")
            names = attachment_names(message)
        except Exception as error:  # the email package raises many kinds on broken input
            raise UnreadableMessage("bad_message", f"cannot read the message: {error}") from None
    else:
        text, html, subject, names, kind = _plain_text(raw), None, "", (), None
    reply = extract_reply(text, html)
    bounce = kind.bounce if kind and kind.kind is MessageKind.BOUNCE else None
    return {
        "reply": reply.reply,
        "body": reply.body,
        "signature": reply.signature,
        "language": reply.language,
        "intent": classify_intent(reply.body, subject, names).value,
        "auto_reply": bool(kind and kind.kind is MessageKind.AUTO_REPLY),
        "bounce": None if bounce is None else {
            "original_message_id": bounce.original_message_id,
            "recipient": bounce.recipient,
            "status": bounce.status,
            "permanent": bounce.permanent,
            "diagnostic": bounce.diagnostic,
        },
    }
