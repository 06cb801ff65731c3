"""Outgoing mail through the outbox to a real SMTP server (aiosmtpd on loopback):
localized multipart messages threaded on our Message-ID, 4xx retried with the same
Message-ID, 5xx and refused recipients recorded and not retried (RELIABILITY #28),
the fallback relay, and header injection (#35)."""
from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from adapters.mail_render import render
from closeloop.bootstrap import build
from closeloop.demo.mail_servers import SmtpServer, free_port
from flows.deals import Stage
from flows.mail import OutboundMail, OutboundStatus, queue_email
from flows.outbox import OutboxMessage, OutboxStatus
from flows.queries import timeline
from parsers.mail_token import deal_from_addresses
from tests.factories import deal_at, seed
from tests.mail_samples import SECRET, tiny_pdf

FROM = "sales@ourco.example"


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def fallback_smtp():
    server = SmtpServer()
    yield server
    server.stop()


def mail_services_for(settings, clock, **update):
    base = {"mail_secret": SECRET, "mail_from": FROM, "mail_company": "OurCo", "smtp_starttls": False,
            "smtp_host": "127.0.0.1", "smtp_timeout": 5}
    return build(settings.model_copy(update={**base, **update}), clock)


@pytest.fixture
def services_smtp(settings, clock, smtp):
    built = mail_services_for(settings, clock, smtp_port=smtp.port)
    yield built
    built.close()


@pytest.fixture
def deal(services_smtp) -> int:
    return deal_at(services_smtp.ledger, seed(services_smtp.ledger), Stage.SENT)


def queue(services, deal_id, *, to=("ada@acme.example",), template="quote", locale="en", subject="", key="m1",
          context=None, **kwargs) -> str:
    context = context if context is not None else {
        "name": "Ada", "number": "Q-2026-0001", "version": 1, "amount_minor": 123456, "currency": "EUR",
        "valid_until": "2026-04-09"}
    return services.ledger.run(lambda tx: queue_email(tx, key=key, deal_id=deal_id, to=list(to), template=template,
                                                      locale=locale, subject=subject, context=context,
                                                      domain="ourco.example", **kwargs))


def outbound(services) -> OutboundMail:
    return services.ledger.read(lambda s: s.scalar(select(OutboundMail)))


def email_row(services) -> OutboxMessage:
    return services.ledger.read(lambda s: s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email.send")))


def drain_after(services, clock, hours: float = 0) -> None:
    clock.advance(timedelta(hours=hours))
    services.relay.drain()


def test_the_quote_email_is_localized_multipart_threaded_and_carries_the_deal_token(services_smtp, smtp, deal,
                                                                                      clock):
    pdf = tiny_pdf("Quote")
    import base64
    message_id = queue(services_smtp, deal, locale="he", attachments=(
        {"filename": "Q-2026-0001.pdf", "content_type": "application/pdf",
         "data_b64": base64.b64encode(pdf).decode()},), in_reply_to="<earlier@acme.example>",
        references=("<first@ourco.example>", "<earlier@acme.example>"))
    services_smtp.relay.drain()
    [got] = smtp.received
    assert got.rcpt_tos == ["ada@acme.example"] and got.mail_from == FROM
    message = message_from_bytes(got.data, policy=policy.default)
    assert message["Message-ID"] == message_id == outbound(services_smtp).message_id
    assert message["In-Reply-To"] == "<earlier@acme.example>"
    assert message["References"] == "<first@ourco.example> <earlier@acme.example>"
    assert deal_from_addresses([str(message["Reply-To"])], SECRET) == deal
    assert message["Subject"] == "הצעת מחיר Q-2026-0001 מאת OurCo"
    html = message.get_body(("html",)).get_content()
    assert 'dir="rtl"' in html and "1,234.56" in html
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == pdf
    assert outbound(services_smtp).status is OutboundStatus.SENT


@pytest.mark.parametrize("locale, money, day", [
    ("en", "€1,234.56", "April 9, 2026"), ("pl", "1234,56\xa0€", "9 kwietnia 2026"),
    ("lt", "1234,56\xa0€", "2026 m. balandžio 9 d."), ("id", "€1.234,56", "9 April 2026"),
    ("he", "1,234.56", "9 באפריל 2026"),
])
def test_quote_and_invoice_mail_in_each_language(locale, money, day):
    context = {"name": "Ada", "number": "Q-2026-0001", "version": 1, "amount_minor": 123456, "currency": "EUR",
               "valid_until": "2026-04-09", "due_on": "2026-04-09"}
    for template in ("quote", "invoice"):
        rendered = render(template, locale, context, company="OurCo")
        normal = rendered.text.replace("\u202f", "\xa0").replace(" ", "\xa0").replace("\u200f", "")
        assert money.replace(" ", "\xa0") in normal or money.replace("\xa0", "\xa0") in normal.replace("1\xa0234",
                                                                                                  "1234"), normal
        assert day.replace(" ", "\xa0") in normal, normal
        assert ('dir="rtl"' in rendered.html) == (locale == "he")
    assert render("reply", locale, {"text": "First.\n\nSecond."}, company="OurCo").text.count("\n\n") >= 2


def test_4xx_is_retried_with_backoff_keeping_the_message_id(services_smtp, smtp, deal, clock):
    smtp.handler.on_data.extend(["451 4.3.0 try again later", "421 4.7.0 closing connection"])
    message_id = queue(services_smtp, deal)
    services_smtp.relay.drain()
    assert smtp.received == [] and email_row(services_smtp).status is OutboxStatus.PENDING
    services_smtp.relay.drain()
    assert smtp.received == []  # backoff: not due again yet
    drain_after(services_smtp, clock, hours=1)
    drain_after(services_smtp, clock, hours=1)
    [got] = smtp.received
    assert message_from_bytes(got.data, policy=policy.default)["Message-ID"] == message_id
    row = email_row(services_smtp)
    assert (row.status, row.attempts) == (OutboxStatus.DONE, 3)


def test_550_is_recorded_failed_and_not_retried(services_smtp, smtp, deal, clock):
    smtp.handler.on_data.append("550 5.1.1 mailbox unavailable")
    queue(services_smtp, deal)
    services_smtp.relay.drain()
    drain_after(services_smtp, clock, hours=24)
    assert smtp.received == []
    assert outbound(services_smtp).status is OutboundStatus.FAILED and "550" in outbound(services_smtp).error
    assert email_row(services_smtp).status is OutboxStatus.DEAD
    assert "mail.delivery_failed" in [e.kind for e in services_smtp.ledger.read(timeline, deal)]


def test_a_partly_refused_recipient_list_is_not_a_success(services_smtp, smtp, deal):
    smtp.handler.refuse["gone@acme.example"] = "550 5.1.1 <gone@acme.example>: user unknown"
    queue(services_smtp, deal, to=("ada@acme.example", "gone@acme.example"))
    services_smtp.relay.drain()
    [got] = smtp.received
    assert got.rcpt_tos == ["ada@acme.example"]
    mail = outbound(services_smtp)
    assert mail.status is OutboundStatus.FAILED and "1 of 2" in mail.error
    assert email_row(services_smtp).status is OutboxStatus.DEAD
    [event] = [e for e in services_smtp.ledger.read(timeline, deal) if e.kind == "mail.delivery_failed"]
    assert "gone@acme.example" in event.data["refused"]


def test_the_fallback_relay_takes_over_after_consecutive_primary_failures(settings, clock, fallback_smtp):
    services = mail_services_for(settings, clock, smtp_port=free_port(),  # nothing listens: connection refused
                                 smtp_fallback_host="127.0.0.1", smtp_fallback_port=fallback_smtp.port,
                                 smtp_fallback_starttls=False, smtp_fallback_after=2)
    try:
        deal = deal_at(services.ledger, seed(services.ledger), Stage.SENT)
        queue(services, deal)
        services.relay.drain()
        drain_after(services, clock, hours=1)
        assert fallback_smtp.received == []
        drain_after(services, clock, hours=1)
        assert len(fallback_smtp.received) == 1
        assert (outbound(services).status, outbound(services).relay) == (OutboundStatus.SENT, "fallback")
    finally:
        services.close()


@pytest.mark.parametrize("subject", [
    "Invoice\r\nBcc: attacker@evil.example",
    "Invoice =?UTF-8?Q?=0A?=Bcc: attacker@evil.example",
    "Invoice =?UTF-8?B?DQpCY2M6IGF0dGFja2VyQGV2aWwuZXhhbXBsZQ==?=",
])
def test_header_injection_from_customer_data_is_refused_and_nothing_is_sent(services_smtp, smtp, deal, subject):
    queue(services_smtp, deal, template="invoice", subject=subject,
          context={"name": "Ada", "number": "INV-1", "amount_minor": 100, "currency": "EUR", "due_on": "2026-04-01"})
    services_smtp.relay.drain()
    assert smtp.received == []
    assert outbound(services_smtp).status is OutboundStatus.FAILED
    assert "refused to send" in outbound(services_smtp).error


def test_an_injected_recipient_address_is_refused(services_smtp, smtp, deal):
    queue(services_smtp, deal, to=("ada@acme.example\r\nBcc: attacker@evil.example",))
    services_smtp.relay.drain()
    assert smtp.received == [] and outbound(services_smtp).status is OutboundStatus.FAILED


def test_customer_names_with_odd_characters_are_encoded_and_headers_stay_exact(services_smtp, smtp, deal):
    queue(services_smtp, deal, template="invoice", subject="Faktura dla „Kowalski: Bcc, Sp. z o.o.\" PO#7 ; <x>",
          context={"name": "Zoë <Bcc: x@evil.example>", "number": "INV-1", "amount_minor": 100, "currency": "PLN",
                   "due_on": "2026-04-01"})
    services_smtp.relay.drain()
    [got] = smtp.received
    message = message_from_bytes(got.data, policy=policy.default)
    assert got.rcpt_tos == ["ada@acme.example"]
    assert sorted(k for k, _ in message.raw_items()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "Reply-To", "Content-Language", "MIME-Version",
         "Content-Type"])
    assert message["Subject"] == "Faktura dla „Kowalski: Bcc, Sp. z o.o.\" PO#7 ; <x>"


def test_without_smtp_mail_waits_in_the_file_sink(settings, clock):
    services = build(settings.model_copy(update={"mail_secret": SECRET}), clock)
    try:
        deal = deal_at(services.ledger, seed(services.ledger), Stage.SENT)
        queue(services, deal)
        services.relay.drain()
        [written] = services.sink.read("email.send")
        assert written["payload"]["message_id"] == outbound(services).message_id
        assert "SMTP is not configured" in written["note"]
    finally:
        services.close()


def test_a_payload_the_template_cannot_render_fails_at_once_instead_of_retrying(services_smtp, smtp, deal):
    queue(services_smtp, deal, template="invoice", context={"name": "Ada"})  # no number, amount or due date
    services_smtp.relay.drain()
    assert smtp.received == [] and email_row(services_smtp).status is OutboxStatus.DEAD
    assert "could not build the message" in outbound(services_smtp).error
