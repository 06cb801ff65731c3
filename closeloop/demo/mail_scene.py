"""The demo's email part, through real mail servers on loopback: an SMTP server
(aiosmtpd) receives what closeloop sends, an IMAP server (Dovecot when installed,
else pymap, pure Python) holds the sales mailbox the watcher reads with IDLE.

The quote, sent for signature by email, goes out (Polish, text + HTML, the rendered
quote PDF attached, a Reply-To carrying the deal's token); the customer replies with a
question, which lands in the deal's Slack thread; the rep answers from the thread with
"Send to customer"; the customer then sends the signed PDF, which is stored and
handed to verification."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import select

from closeloop.demo.loopback_slack import APP, TEAM, interaction_body
from closeloop.demo.mail_servers import PASSWORD, USER, ImapServer, SmtpServer, start_imap
from flows.deals import Deal
from flows.mail import InboundMail, MailStatus, OutboundMail
from flows.outbox import OutboxMessage

FOLDER = "Sales"
AUTHSERV = "mx.closeloop-demo.example"
FROM = "sales@closeloop-demo.example"


class MailScene:
    def __init__(self) -> None:
        self.smtp = SmtpServer()
        self.imap: ImapServer = start_imap()
        client = self.imap.client()
        client.create_folder(FOLDER)
        client.logout()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watchers: list[Any] = []

    def settings(self) -> dict[str, Any]:
        return {"smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, "smtp_starttls": False,
                "mail_from": FROM, "mail_company": "closeloop demo", "mail_secret": "demo-mail-secret",
                "mail_authserv_id": AUTHSERV, "imap_idle_seconds": 60,
                "mailboxes": f"sales=imap://{USER}:{PASSWORD}@127.0.0.1:{self.imap.port}/{FOLDER}"}

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        from handlers.mail_watch import close
        close(self._watchers)
        self.smtp.stop()
        self.imap.stop()

    def run(self, log: Any, services: Any, scene: Any, deal_id: int, rep: str) -> None:
        from handlers.mail_watch import watch, watchers
        ledger = services.ledger
        log.say()
        log.say(f"   Email, through real servers on loopback: SMTP (aiosmtpd :{self.smtp.port}) and IMAP "
                f"({self.imap.kind} :{self.imap.port}, mailbox {FOLDER}, watched with IDLE)")
        found = self._watchers = watchers(services)
        self._threads = watch(services, self._stop, found)
        _wait(lambda: all(w.synced.is_set() for w in found), 10)

        deal, signer = ledger.read(_deal_and_signer, deal_id)
        # the quote was sent for signature by email: the relay rendered its PDF and queued the email
        sent = _wait(lambda: self.smtp.received[:1], 15)
        if not sent:
            log.say("  ✗ the quote email did not reach the SMTP server")
            return
        quote_mail = message_from_bytes(sent[0].data, policy=policy.default)
        reply_to, message_id = str(quote_mail["Reply-To"]), str(quote_mail["Message-ID"])
        [attached] = list(quote_mail.iter_attachments())
        quote_pdf = attached.get_content()
        log.say(f"  ✓ the quote went out for signature by email (Polish, text + HTML, the rendered quote "
                f"{attached.get_filename()} attached, {len(quote_pdf):,} bytes)")
        log.say(f"  ✓ SMTP received it: \"{quote_mail['Subject']}\", Message-ID {quote_mail['Message-ID']}")
        log.say(f"    Reply-To {reply_to} (the deal's token, HMAC-signed)")

        question = _customer_mail(signer, reply_to, f"Re: {quote_mail['Subject']}", message_id,
                                  "Dzień dobry, czy możemy zapłacić w dwóch ratach?\n\nPozdrawiam, Anna\n\n"
                                  f"W dniu pon. {FROM} napisał(a):\n> W załączniku przesyłamy ofertę")
        self.imap.deliver(question, folder=FOLDER)
        mail = _wait(lambda: ledger.read(_inbound, 1), 20)
        if not mail:
            log.say("  ✗ the watcher did not pick up the customer's reply")
            return
        log.say(f"  ✓ the customer's reply arrived over IMAP IDLE: matched to deal D-{mail.deal_id} by "
                f"{mail.matched_by}, intent '{mail.intent}', new text only: \"{mail.text.splitlines()[0]}\"")
        scene.settle()
        posts = [c for c in scene.api.calls if c.method == "chat.postMessage"
                 and "dwóch ratach" in str(c.args.get("text"))]
        if posts:
            log.say("  ✓ and was posted in the deal's Slack thread for the rep")

        channel, _, root = ledger.read(lambda s: s.get(Deal, deal_id).slack_thread or "").partition(":")
        payload = {"type": "message_action", "callback_id": "send_to_customer", "team": {"id": TEAM},
                   "api_app_id": APP, "user": {"id": rep, "team_id": TEAM}, "channel": {"id": channel},
                   "message": {"type": "message", "user": rep, "ts": f"{time.time():.6f}", "thread_ts": root,
                               "text": "Dzień dobry Pani Anno, tak — dwie raty po 50 % są w porządku."},
                   "response_url": scene.api.response_url, "trigger_id": "demo.mail.1", "action_ts": "1"}
        log._shown("the rep answers in the thread and uses the message shortcut [Send to customer]",
                   scene._send(interaction_body(payload)))
        answered = _wait(lambda: self.smtp.received[1:2], 15)
        if answered:
            answer = message_from_bytes(answered[0].data, policy=policy.default)
            log.say(f"  ✓ SMTP received the answer to {', '.join(answered[0].rcpt_tos)}: \"{answer['Subject']}\", "
                    f"In-Reply-To {answer['In-Reply-To']} (the customer's mail: it threads in her client)")

        signed = _customer_mail(signer, reply_to, f"Re: {quote_mail['Subject']}", message_id,
                                "W załączniku podpisana oferta.\n\nAnna Kowalska",
                                attachment=(f"{deal['number']}-podpisana.pdf", _signed(quote_pdf, "Anna Kowalska")))
        self.imap.deliver(signed, folder=FOLDER)
        mail = _wait(lambda: ledger.read(_inbound, 2), 20)
        if mail:
            handed = ledger.read(lambda s: s.scalar(select(OutboxMessage.id).where(
                OutboxMessage.kind == "mail.signed_return")))
            log.say(f"  ✓ the signed PDF arrived: intent '{mail.intent}', sender authenticated (DKIM aligned, our "
                    f"Authentication-Results), stored; {'handed to verification' if handed else 'NOT handed on'}")
            log.say("    deal thread: \"signed copy received … awaiting verification\"")
        closed = _wait(lambda: ledger.read(lambda s: s.get(Deal, deal_id).stage.value != "sent"), 20)
        if closed:
            log.say("  ✓ the signed PDF was verified against the quote (in the PDF sandbox) and signs it: "
                    "the deal closes on its own")
        else:
            log.not_yet("the emailed signed PDF closing the deal", "the mail.signed_return route to "
                        "services.email_signing.returned; the hand-off is in outbox/mail.signed_return.jsonl")
        count = ledger.read(lambda s: len(list(s.scalars(select(OutboundMail.id)))))
        log.say(f"    {count} messages sent, {len(self.smtp.received)} received by SMTP; "
                f"`closeloop mail triage` lists what matched no deal")


def show_invoice_email(log: Any, services: Any, number: str) -> None:
    """invoice.deliver rendered the Factur-X PDF and queued its email to the billing contact."""
    def read(session: Any) -> Any:
        return session.scalar(select(OutboundMail).where(OutboundMail.key == f"invoice:{number}"))
    mail = _wait(lambda: (lambda m: m if m is not None and m.status.value != "queued" else None)(
        services.ledger.read(read)), 20) or services.ledger.read(read)
    if mail is None:
        log.say(f"  ✗ invoice {number} was not emailed")
        return
    log.say(f"  ✓ invoice {number} emailed to {', '.join(mail.recipients)} with {number}.pdf (Factur-X) attached: "
            f"{mail.status.value}")


def _deal_and_signer(session: Any, deal_id: int) -> tuple[dict[str, Any], str]:
    from flows.parties import ContactRole
    deal = session.get(Deal, deal_id)
    version = deal.quote.current
    signer = deal.customer.contact(ContactRole.SIGNER)
    return ({"name": signer.name, "number": deal.quote.number, "version": version.version,
             "amount_minor": version.gross, "currency": deal.currency,
             "valid_until": version.valid_until.isoformat()}, signer.email)


def _signed(pdf: bytes, signer: str) -> bytes:
    """What the customer does in her PDF reader: initials on every page, then signature,
    name and date on the last."""
    from datetime import date

    from adapters.pdf_render.stamp import Mark, stamp
    from parsers import quote_layout as L
    from parsers.signed_quote import identify
    pages = identify(pdf).pages or 1
    initials = signer.split()[0][0] + signer.split()[-1][0]
    marks = [Mark(p, L.INITIALS, initials) for p in range(1, pages)]
    marks += [Mark(pages, L.SIGNATURE), Mark(pages, L.NAME, signer), Mark(pages, L.DATE, date.today().isoformat())]
    return stamp(pdf, marks)


def _inbound(session: Any, count: int) -> Any:
    """The count-th inbound message, once classified (the watcher stores first, classifies next)."""
    rows = list(session.scalars(select(InboundMail).where(InboundMail.status != MailStatus.PENDING)
                                .order_by(InboundMail.id)))
    return rows[count - 1] if len(rows) >= count else None


def _customer_mail(sender: str, to: str, subject: str, in_reply_to: str, body: str,
                   attachment: tuple[str, bytes] | None = None) -> bytes:
    """What the customer's mail server hands our inbox: our MX's Authentication-Results on top."""
    domain = sender.rpartition("@")[2]
    message = EmailMessage()
    message["Authentication-Results"] = f"{AUTHSERV}; dkim=pass header.d={domain} header.s=mail; spf=pass"
    message["From"] = f"Anna Kowalska <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = f"<{time.time_ns()}@{domain}>"
    message["In-Reply-To"] = in_reply_to
    message["References"] = in_reply_to
    message.set_content(body)
    if attachment:
        message.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    return bytes(message)


def _wait(find: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.05)
    return None
