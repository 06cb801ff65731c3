"""Reading the parts of a parsed message that text understanding needs: the text and
HTML bodies and the attachments' names. Works on messages parsed with either the
modern (`policy.default`) or the legacy (`compat32`) policy, and never raises on a
bad charset or a broken transfer encoding (the text is decoded with replacement)."""
from __future__ import annotations

from email.message import Message


def decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    return disposition == "attachment" or (disposition != "inline" and part.get_filename() is not None)


def body_texts(message: Message) -> tuple[str, str | None]:
    """(plain text, HTML or None) of the message's own body: the first non-attachment
    text/plain and text/html parts, not looking inside attached messages."""
    plain: str | None = None
    html: str | None = None
    stack = [message]
    while stack:
        part = stack.pop(0)
        content_type = part.get_content_type()
        if part.is_multipart():
            if content_type.startswith("message/") or content_type == "multipart/report" and part is not message:
                continue
            stack[0:0] = [p for p in part.get_payload() if isinstance(p, Message)]
            continue
        if _is_attachment(part):
            continue
        if content_type == "text/plain" and plain is None:
            plain = decoded_text(part)
        elif content_type == "text/html" and html is None:
            html = decoded_text(part)
    return plain or "", html


def attachment_names(message: Message) -> tuple[str, ...]:
    names = []
    for part in message.walk():
        filename = part.get_filename()
        if filename and _is_attachment(part):
            names.append(str(filename))
    return tuple(names)
