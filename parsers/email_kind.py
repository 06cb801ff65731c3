"""What kind of message arrived: a person's reply, an auto-reply (out of office,
vacation, auto-submitted), or a bounce / delivery report tied to the message it
answers. Pure: an `email.message.EmailMessage` in, a typed verdict out.

Bounces first (an RFC 3464 `multipart/report; report-type=delivery-status`, or a
MAILER-DAEMON/postmaster notice with the original headers inline), then auto-replies
(RFC 3834 headers, then out-of-office subjects, then out-of-office wording in the new
text only — a person quoting an old out-of-office notice is still a person)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses
from enum import Enum

from parsers.email_reply import Intent, classify_intent, extract_reply
from parsers.mail_message import attachment_names, body_texts, decoded_text


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
    return _bounce_kind(message) or _auto_reply_kind(message) or Kind(MessageKind.REPLY, "a person's message")


# --- bounces -----------------------------------------------------------------------

# Where a report carries the message it answers; some MTAs label the headers-only copy
# message/rfc822-headers (RFC 6522 says text/rfc822-headers, handled on its own).
_ORIGINAL_PARTS = ("message/rfc822", "message/rfc822-headers")
# Starts only where a run of address characters starts: searching a long run stays linear.
_EMAIL = re.compile(r"(?<![\w.+'=-])[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?<!\d)([45]\d\d)(?:[ -]|$)")
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon|bounces?|mdaemon)@", re.IGNORECASE)
_DAEMON_NAME = re.compile(r"mail delivery (?:system|subsystem)|mailer-daemon|postmaster", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification|delivery (?:has )?failed|mail delivery failed|"
    r"returned mail|failure notice|delivery failure|could not be delivered|nondeliverable|non-delivery|"
    r"unzustellbar|nicht zustellbar|non remis|non distribu|échec de (?:la )?(?:remise|distribution)|"
    r"no se puede entregar|no entregado|mancato recapito|non recapitabile|onbestelbaar|niet afgeleverd|"
    r"niedostarczon|nie dostarczono|nepristatyt|nepavyko pristatyti|tidak terkirim|gagal terkirim|"
    r"недостав|не доставлено|לא נמסר|ההודעה לא נמסרה|kan inte levereras|kunne ikke leveres|delivery delayed|"
    r"delayed mail|warning: message .* delayed", re.IGNORECASE)
_DELAY = re.compile(r"delay|will (?:continue|retry|keep trying)|still trying|not yet been delivered|"
                    r"verzögert|retard|retras|ritard|opóźni|vėluoja|tertunda|задерж", re.IGNORECASE)
_RECIPIENT_LINE = re.compile(
    r"(?:final-recipient|original-recipient):\s*(?:rfc822;)?\s*<?([^>\s;]+@[^>\s;]+)>?|"
    r"^\s*<([^>\s]+@[^>\s]+)>:?\s*$|rcpt to:\s*<([^>\s]+@[^>\s]+)>|"
    r"(?:failed|recipients?|address(?:es)?|to)\s*:\s*\n?\s*<?([\w.+'=-]+@[\w-]+(?:\.[\w-]+)+)>?",
    re.IGNORECASE | re.MULTILINE)


def _bounce_kind(message: Message) -> Kind | None:
    content_type = message.get_content_type()
    report_type = (message.get_param("report-type") or "")
    report_type = report_type.lower() if isinstance(report_type, str) else ""
    if content_type == "multipart/report" and report_type == "delivery-status":
        return _delivery_status_report(message)
    if content_type == "multipart/report":
        return Kind(MessageKind.AUTO_REPLY, f"multipart/report; report-type={report_type or 'unknown'}")
    sender = " ".join(f"{name} {address}" for name, address in getaddresses([str(message.get("From", ""))]))
    return_path = str(message.get("Return-Path", "")).strip()
    subject = str(message.get("Subject", ""))
    from_daemon = any(_DAEMON.match(address) for _, address in getaddresses([str(message.get("From", ""))])) \
        or bool(_DAEMON_NAME.search(sender))
    if from_daemon and (_BOUNCE_SUBJECT.search(subject) or return_path in ("<>", "")) \
            or return_path == "<>" and _BOUNCE_SUBJECT.search(subject):
        return _inline_bounce(message, subject)
    return None


def _delivery_status_report(message: Message) -> Kind:
    fields: dict[str, str] = {}
    original_id = None
    human = ""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in part.get_payload():
                if isinstance(block, Message):
                    for name, value in block.items():
                        fields.setdefault(name.lower(), str(value))
                    if "final-recipient" in {k.lower() for k in block.keys()}:
                        break  # the first recipient block describes the failure
        elif content_type in _ORIGINAL_PARTS and original_id is None:
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and inner.get("Message-ID"):
                original_id = _angle(str(inner["Message-ID"]))
        elif content_type == "text/rfc822-headers" and original_id is None:
            headers = HeaderParser().parsestr(decoded_text(part))
            if headers.get("Message-ID"):
                original_id = _angle(str(headers["Message-ID"]))
        elif content_type == "text/plain" and not human:
            human = decoded_text(part)
    action = fields.get("action", "").strip().lower()
    status_match = _STATUS.search(fields.get("status", ""))
    status = status_match.group(1) if status_match else None
    if action in ("delivered", "relayed", "expanded"):
        return Kind(MessageKind.AUTO_REPLY, f"multipart/report: delivery report, Action: {action}")
    recipient = _address(fields.get("final-recipient") or fields.get("original-recipient") or "")
    diagnostic = re.sub(r"^\s*smtp\s*;\s*", "", fields.get("diagnostic-code", ""), flags=re.IGNORECASE)
    diagnostic = " ".join(diagnostic.split()) or _diagnostic_line(human, status)
    if original_id is None:
        original_id = _inline_message_id(human)
    permanent = status.startswith("5") if status else action != "delayed"
    reason = "multipart/report; report-type=delivery-status"
    return Kind(MessageKind.BOUNCE, reason, Bounce(original_id, recipient, status, permanent, diagnostic[:500]))


def _inline_bounce(message: Message, subject: str) -> Kind:
    """A notice without a delivery-status part: read the status, the failed address and
    the original Message-ID from its words and the headers it quotes."""
    text, html = body_texts(message)
    if not text.strip() and html:
        from parsers.mail_html import html_to_text
        text = html_to_text(html)
    original_id = None
    for part in message.walk():
        if part.get_content_type() in _ORIGINAL_PARTS:
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and inner.get("Message-ID"):
                original_id = _angle(str(inner["Message-ID"]))
                break
        elif part.get_content_type() == "text/rfc822-headers":
            original_id = _inline_message_id(decoded_text(part))
    original_id = original_id or _inline_message_id(text)
    daemon_addresses = {address.lower() for _, address in getaddresses([str(message.get("From", ""))])}
    # The notice's own words end where it quotes the original message.
    notice = re.split(r"^\s*(?:-{2,}.*(?:original message|headers|undelivered message).*|Received:|Return-Path:)",
                      text, maxsplit=1, flags=re.IGNORECASE | re.MULTILINE)[0]
    # Exim names the failed addresses in a header; otherwise read them from the words.
    failed = _address(str(message.get("X-Failed-Recipients", "")))
    recipient = failed or _recipient(notice, daemon_addresses) or _recipient(text, daemon_addresses)
    status_match = _STATUS.search(notice)
    status = status_match.group(1) if status_match else None
    if status is None:
        code = _SMTP_CODE.search(notice)
        status = f"{code.group(1)[0]}.0.0" if code else None
    delayed = bool(_DELAY.search(subject) or _DELAY.search(notice[:2000]))
    permanent = status.startswith("5") if status else not delayed
    diagnostic = _diagnostic_line(notice, status)
    reason = f"bounce notice from {', '.join(sorted(daemon_addresses)) or 'a mail server'}: {subject.strip()[:80]}"
    return Kind(MessageKind.BOUNCE, reason, Bounce(original_id, recipient, status, permanent, diagnostic[:500]))


def _recipient(text: str, exclude: set[str]) -> str | None:
    for match in _RECIPIENT_LINE.finditer(text):
        address = next(group for group in match.groups() if group)
        if address.lower() not in exclude and not _DAEMON.match(address):
            return address
    for address in _EMAIL.findall(text):
        if address.lower() not in exclude and not _DAEMON.match(address):
            return address
    return None


def _diagnostic_line(text: str, status: str | None) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if status and status in line or _SMTP_CODE.match(line):
            return " ".join(line.split())
    for line in lines:
        if re.search(r"user unknown|does not exist|no such user|mailbox (?:unavailable|full)|rejected|quota",
                     line, re.IGNORECASE):
            return " ".join(line.split())
    return " ".join(lines[:2])


def _inline_message_id(text: str) -> str | None:
    match = _MESSAGE_ID.search(text or "")
    return match.group(1) if match else None


def _angle(message_id: str) -> str:
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _address(field: str) -> str | None:
    match = _EMAIL.search(field)
    return match.group(0) if match else None


# --- auto-replies --------------------------------------------------------------------

# Auto-reply subjects start with the client's label ("Automatic reply: <subject>",
# "Abwesenheitsnotiz: …", "[Out of Office] …"); a person's "Re: Vacation days" does not.
_OOO_SUBJECT = re.compile(
    r"^[\[(\s]*(?:out of (?:the )?office|ooo\b|automatic reply|auto[- ]?reply|auto[- ]?response|autoresponder|"
    r"away from (?:the )?office|i am (?:out|away|on vacation|on leave)|abwesenheitsnotiz|abwesend|"
    r"automatische antwort|nicht im büro|réponse automatique|absent(?:e)? du bureau|absence du bureau|"
    r"respuesta automática|fuera de (?:la )?oficina|risposta automatica|fuori (?:sede|ufficio)|"
    r"automatisch antwoord|afwezig|odpowiedź automatyczna|automatyczna odpowiedź|poza biurem|"
    r"nieobecność|automatinis atsakymas|ne biure|balasan otomatis|di luar kantor|sedang cuti|"
    r"автоматический ответ|автоответ|вне офиса|я в отпуске|מענה אוטומטי|תשובה אוטומטית|מחוץ למשרד|"
    r"frånvaro|automatiskt svar|fraværende|automatisk svar|poissa toimistolta|automaattinen vastaus|"
    r"otomatik yanıt|ofis dışında)",
    re.IGNORECASE)
_OOO_BODY = re.compile(
    r"(?:i am|i'm|i will be|i'll be) (?:currently |now )?(?:out of (?:the )?office|away|on (?:annual |parental )?"
    r"(?:leave|vacation|holiday)|travel+ing|off)|limited access to (?:my )?e-?mail|"
    r"ich bin (?:\S+ ){0,4}(?:nicht im büro|abwesend|im urlaub)|bin (?:\S+ ){0,3}abwesend|"
    r"je suis (?:\S+ ){0,3}absente?|je serai absente?|en congés?|"
    r"estoy (?:\S+ ){0,3}(?:fuera de la oficina|de vacaciones|ausente)|estaré (?:\S+ ){0,2}fuera|"
    r"sono (?:\S+ ){0,3}(?:fuori ufficio|in ferie|assente)|ik ben (?:\S+ ){0,3}(?:afwezig|niet op kantoor|met vakantie)|"
    r"jestem (?:\S+ ){0,3}(?:poza biurem|na urlopie|nieobecn\w*)|"
    r"(?:šiuo metu )?(?:nesu biure|esu atostogose|atostogauju)|"
    r"saya (?:\S+ ){0,3}(?:sedang cuti|di luar kantor|tidak berada di kantor)|"
    r"я (?:\S+ ){0,3}(?:в отпуске|вне офиса|отсутствую)|нахожусь в отпуске|"
    r"אני (?:\S+ ){0,3}(?:מחוץ למשרד|בחופשה|לא במשרד)|"
    r"jag är (?:\S+ ){0,3}(?:ledig|frånvarande|på semester)|jeg er (?:\S+ ){0,3}(?:fraværende|på ferie)",
    re.IGNORECASE)
_RETURN = re.compile(
    r"\buntil\b|\bback on\b|\breturn(?:ing)? on\b|\bwill return\b|\bbis\b|zurück|jusqu'au|de retour|hasta el|"
    r"regres|fino al|rientr|tot en met|terug op|do dnia|\bdo\b \d|wrócę|powrot|iki|grįšiu|sampai|kembali|"
    r"\bдо\b|вернусь|\bעד\b|אחזור|tillbaka|tilbake|tilbage|\d{1,2}[./]\d{1,2}", re.IGNORECASE)


def _auto_reply_kind(message: Message) -> Kind | None:
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return Kind(MessageKind.AUTO_REPLY, f"Auto-Submitted: {auto_submitted}")
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponder"):
        value = message.get(header)
        if value is not None and str(value).strip().lower() not in ("no", "false", "0"):
            return Kind(MessageKind.AUTO_REPLY, f"{header}: {str(value).strip()}")
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return Kind(MessageKind.AUTO_REPLY, f"Precedence: {precedence}")
    # X-Auto-Response-Suppress alone proves nothing: Outlook puts it on people's replies too.
    subject = str(message.get("Subject", ""))
    if _OOO_SUBJECT.search(subject):
        return Kind(MessageKind.AUTO_REPLY, f"out-of-office subject: {subject.strip()[:80]}")
    text, html = body_texts(message)
    new_text = extract_reply(text, html).reply
    match = _OOO_BODY.search(new_text)
    # Wording alone is weaker evidence: a person may be away AND send the signed quote.
    if match and len(new_text) < 1500 and _RETURN.search(new_text) \
            and classify_intent(new_text, subject, attachment_names(message)) is Intent.OTHER:
        return Kind(MessageKind.AUTO_REPLY, f"out-of-office text: {match.group(0)[:60]}")
    return None
