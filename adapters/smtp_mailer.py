"""Outgoing mail over SMTP, as the outbox route of "email.send".

- The message is built from the payload the ledger wrote (template, locale, context)
  with the Message-ID fixed when the row was written, so every retry sends the same
  message and the customer's client threads it (In-Reply-To / References), with a
  Reply-To that carries the deal's token.
- 4xx answers and dropped connections are retried by the relay with backoff; 5xx and
  refused recipients (smtplib's `sendmail` returns them instead of raising when at
  least one recipient was accepted) are recorded as failed on the message and told
  to the deal, then dead-lettered: retrying cannot fix them.
- Recipients flagged bouncing (a hard bounce) or unsubscribed are dropped first
  (flows.mail.screen_recipients); with none left the message is recorded as
  suppressed, with the reason, and dead-lettered unsent.
- After `fallback_after` consecutive failures of the primary relay the fallback relay
  (if configured) is used for `fallback_for` seconds, then the primary is tried again.
- Customer-derived header values are checked for line breaks (raw or encoded), and
  the produced bytes are parsed back to prove the headers and recipients are exactly
  the intended ones (CVE-2024-6923)."""
from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from adapters.crashpoints import crashpoint
from adapters.mail_render import render
from flows.ledger import Ledger
from flows.mail import OutboundMail, OutboundStatus, mark_failed, mark_sent, screen_recipients
from flows.outbox import Delivery, PermanentFailure
from parsers.email_headers import HeaderInjection, clean_address, clean_value, verify

log = logging.getLogger("closeloop.smtp")


@dataclass(frozen=True)
class SmtpRelay:
    name: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    timeout: float = 30.0


class TransientSmtpError(Exception):
    """A 4xx answer or a lost connection: the relay retries with backoff."""


class SmtpMailer:
    def __init__(self, ledger: Ledger, primary: SmtpRelay, *, sender: str, company: str,
                 reply_to_for: Callable[[int | None], str | None], fallback: SmtpRelay | None = None,
                 fallback_after: int = 3, fallback_for: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 render_attachment: Callable[[dict[str, Any]], bytes] | None = None) -> None:
        # Attachments the flows name by what to render ({"render": "invoice", ...}) are made here, at send time.
        self.render_attachment = render_attachment
        self.ledger, self.primary, self.fallback = ledger, primary, fallback
        self.sender, self.company, self.reply_to_for = clean_address(sender), company, reply_to_for
        self.fallback_after, self.fallback_for, self.monotonic = fallback_after, fallback_for, monotonic
        self._lock = threading.Lock()
        self._primary_failures = 0
        self._fallback_until = 0.0

    # --- the relay handler -------------------------------------------------------------

    def send(self, delivery: Delivery) -> None:
        payload = delivery.payload
        message_id = payload["message_id"]
        status = self.ledger.read(_status, message_id)
        if status is not None and status is not OutboundStatus.QUEUED:
            return  # sent (or failed for good) before a crash kept the outbox row open: never twice
        screened = self.ledger.run(screen_recipients, message_id, list(payload["to"]))
        if not screened.allowed:  # every recipient bounced or unsubscribed: recorded, never sent
            raise PermanentFailure(f"not sent: {screened.reason}")
        payload = {**payload, "to": screened.allowed}
        try:
            raw, recipients = self.compose(payload)
        except HeaderInjection as error:
            self._failed(message_id, f"refused to send: {error}")
        except (KeyError, ValueError, TypeError, LookupError, TemplateError, OSError) as error:
            # a template field missing, an attachment file gone: resending the same payload cannot help
            self._failed(message_id, f"could not build the message: {type(error).__name__}: {error}")
        relay = self._choose()
        try:
            refused = self._transmit(relay, recipients, raw)
        except smtplib.SMTPRecipientsRefused as error:  # every recipient refused
            codes = {code for code, _ in error.recipients.values()}
            if all(400 <= c < 500 for c in codes):
                self._count_failure(relay)
                raise TransientSmtpError(f"{relay.name}: recipients deferred {error.recipients}") from None
            self._failed(message_id, f"{relay.name} refused every recipient", _refused(error.recipients))
        except smtplib.SMTPResponseException as error:
            text = f"{relay.name} answered {error.smtp_code} {_text(error.smtp_error)}"
            if 400 <= error.smtp_code < 500:
                self._count_failure(relay)
                raise TransientSmtpError(text) from None
            self._failed(message_id, text)
        except (OSError, smtplib.SMTPException) as error:  # refused connection, timeout, dropped line
            self._count_failure(relay)
            raise TransientSmtpError(f"{relay.name}: {type(error).__name__}: {error}") from None
        # The server has the message and we have not written that down: a crash here sends
        # it again on the redelivery, with the same Message-ID. SMTP has no idempotency key,
        # so that one duplicate can only be de-duplicated by Message-ID (the customer's
        # client and most receiving servers do); the window is the commit of mark_sent.
        crashpoint("smtp.accepted")
        self._count_success(relay)
        if refused:  # accepted for some recipients only: never reported as a success
            self.ledger.run(mark_failed, message_id, error=f"{relay.name} refused {len(refused)} of "
                            f"{len(recipients)} recipients", refused=_refused(refused))
            raise PermanentFailure(f"recipients refused: {_refused(refused)}")
        self.ledger.run(mark_sent, message_id, relay=relay.name)

    # --- building the message -------------------------------------------------------------

    def compose(self, payload: dict[str, Any]) -> tuple[bytes, list[str]]:
        rendered = render(payload["template"], payload.get("locale") or "en", payload.get("context") or {},
                          company=self.company, subject=payload.get("subject") or "")
        recipients = [clean_address(a) for a in payload["to"]]
        message = EmailMessage(policy=SMTP)
        headers: dict[str, str] = {}

        def put(name: str, value: str) -> None:
            message[name] = clean_value(name, value)
            headers[name] = value

        put("From", str(Address(self.company, addr_spec=self.sender)) if self.company else self.sender)
        put("To", ", ".join(recipients))
        put("Subject", rendered.subject)
        put("Date", format_datetime(self.ledger.clock.now()))
        put("Message-ID", clean_value("Message-ID", payload["message_id"]))
        reply_to = self.reply_to_for(payload.get("deal_id"))
        if reply_to:
            put("Reply-To", clean_address(reply_to))
        if payload.get("in_reply_to"):
            put("In-Reply-To", payload["in_reply_to"])
            put("References", " ".join(payload.get("references") or [payload["in_reply_to"]]))
        message.set_content(rendered.text)  # (moves or clears Content-* headers: those go last)
        message.add_alternative(rendered.html, subtype="html")
        for attachment in payload.get("attachments") or []:
            if attachment.get("render"):
                if self.render_attachment is None:
                    raise ValueError(f"cannot render attachment {attachment['render']!r} here")
                data = self.render_attachment(attachment)
            else:
                data = (Path(attachment["path"]).read_bytes() if attachment.get("path")
                        else base64.b64decode(attachment["data_b64"]))
            main, _, sub = attachment.get("content_type", "application/pdf").partition("/")
            message.add_attachment(data, maintype=main, subtype=sub,
                                   filename=clean_value("filename", attachment["filename"]))
        put("Content-Language", rendered.language)
        raw = message.as_bytes()
        verify(raw, headers=headers, recipients=recipients)
        return raw, recipients

    # --- the wire ---------------------------------------------------------------------

    def _transmit(self, relay: SmtpRelay, recipients: list[str], raw: bytes) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout) as smtp:
            if relay.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if relay.username:
                smtp.login(relay.username, relay.password or "")
            # Explicit envelope recipients: whatever the headers say, only these receive it.
            return smtp.sendmail(self.sender, recipients, raw)

    def _choose(self) -> SmtpRelay:
        with self._lock:
            if self.fallback is not None and self.monotonic() < self._fallback_until:
                return self.fallback
            return self.primary

    def _count_failure(self, relay: SmtpRelay) -> None:
        with self._lock:
            if relay is self.primary:
                self._primary_failures += 1
                if self.fallback is not None and self._primary_failures >= self.fallback_after:
                    log.warning("smtp: %d consecutive failures of %s: using %s for %.0f s", self._primary_failures,
                                self.primary.host, self.fallback.host, self.fallback_for)
                    self._fallback_until = self.monotonic() + self.fallback_for
                    self._primary_failures = 0

    def _count_success(self, relay: SmtpRelay) -> None:
        with self._lock:
            if relay is self.primary:
                self._primary_failures = 0

    def _failed(self, message_id: str, error: str, refused: dict[str, str] | None = None) -> None:
        self.ledger.run(mark_failed, message_id, error=error, refused=refused)
        raise PermanentFailure(error)


def _status(session: Any, message_id: str) -> OutboundStatus | None:
    from sqlalchemy import select
    return session.scalar(select(OutboundMail.status).where(OutboundMail.message_id == message_id))


def _refused(recipients: dict[str, tuple[int, bytes]]) -> dict[str, str]:
    return {address: f"{code} {_text(text)}" for address, (code, text) in recipients.items()}


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
