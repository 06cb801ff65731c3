"""Signing by email without DocuSign, through a real SMTP server (aiosmtpd on loopback):
the quote is emailed with the real quote PDF attached and a Reply-To carrying the
deal's token; a signed copy the real verifier accepts closes the deal; one it rejects
leaves the deal waiting, tells the deal thread, and emails the customer exactly what
to fix (once), in their thread when we have mail from them."""
from __future__ import annotations

import io
from email import message_from_bytes, policy

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from adapters.email_signing import rejection_text
from closeloop.demo.mail_servers import SmtpServer
from flows.deals import EnvelopeStatus, SignatureEnvelope, Stage
from flows.mail import InboundFacts, store_messages
from flows.outbox import OutboxMessage
from flows.steps import Done, send_quote
from flows.timeline import Event
from parsers.mail_token import deal_from_addresses
from parsers.signed_quote import identify
from tests.documents_kit import sign_typed
from tests.factories import quoted_deal, seed, stage_of
from tests.mail_samples import SECRET
from tests.test_mail_outbound import mail_services_for


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def mailing(settings, clock, smtp):
    built = mail_services_for(settings, clock, smtp_port=smtp.port)
    yield built
    built.close()


def _sent_by_email(services) -> int:
    deal_id = quoted_deal(services.ledger, seed(services.ledger))
    services.ledger.run(send_quote, deal_id, provider="email", actor="U_REP")
    services.relay.drain()
    return deal_id


def _messages(smtp):
    return [message_from_bytes(m.data, policy=policy.default) for m in smtp.received]


def test_the_quote_is_emailed_and_a_correctly_signed_reply_closes_the_deal(mailing, smtp):
    deal_id = _sent_by_email(mailing)
    [got] = smtp.received
    assert got.rcpt_tos == ["ada@acme.example"]
    message = message_from_bytes(got.data, policy=policy.default)
    assert deal_from_addresses([str(message["Reply-To"])], SECRET) == deal_id
    assert message["Subject"] == "Quote Q-2026-0001 from OurCo"  # German customer: English texts (no de yet)
    [attachment] = list(message.iter_attachments())
    pdf = attachment.get_content()
    assert attachment.get_filename() == "Q-2026-0001-v1.pdf"
    found = identify(pdf)  # the real rendered quote of that version, as the verifier reads it
    assert (found.number, found.version, found.source) == ("Q-2026-0001", 1, "metadata")
    kinds = mailing.ledger.read(lambda s: list(s.scalars(select(Event.kind).where(Event.deal_id == deal_id))))
    assert "esign.quote_emailed" in kinds
    envelope = mailing.ledger.read(lambda s: s.scalars(select(SignatureEnvelope)).one())
    assert envelope.status is EnvelopeStatus.SENT and envelope.external_id == message["Message-ID"]
    mailing.relay.drain()
    assert len(smtp.received) == 1  # a second drain sends nothing again

    signed = sign_typed(pdf, len(PdfReader(io.BytesIO(pdf)).pages), name="Ada Signer")
    assert mailing.email_signing.returned(deal_id, signed, key="att-1") is Done.ACTED
    assert stage_of(mailing.ledger, deal_id) is Stage.BILLING_ACTIVE


def test_a_rejected_copy_emails_the_customer_what_to_fix_in_her_thread(mailing, smtp):
    deal_id = _sent_by_email(mailing)
    quote_mail = _messages(smtp)[0]
    pdf = next(quote_mail.iter_attachments()).get_content()
    customer_mail = b"Message-ID: <reply-1@acme.example>\r\nFrom: ada@acme.example\r\nSubject: Re: quote\r\n\r\nhere"
    mailing.ledger.run(store_messages, mailbox="sales", role="sales", uidvalidity=1, last_uid=1, messages=[
        InboundFacts(uid=1, raw=customer_mail, message_id="<reply-1@acme.example>", content_hash="h1",
                     from_address="ada@acme.example", subject="Re: quote", kind="reply", token_deal_id=deal_id,
                     sender_ok=True, text="here")])

    assert mailing.email_signing.returned(deal_id, pdf, key="att-2") is Done.ACTED  # sent back unsigned
    assert mailing.email_signing.returned(deal_id, pdf, key="att-2") is Done.ALREADY
    mailing.relay.drain()
    assert stage_of(mailing.ledger, deal_id) is Stage.SENT
    thread = mailing.ledger.read(lambda s: s.query(OutboxMessage).filter_by(kind="slack.deal_thread").all())
    assert any("the quote is not signed" in m.payload["text"] for m in thread if m.deal_id == deal_id)
    [fix] = [m for m in _messages(smtp) if m["Message-ID"] != quote_mail["Message-ID"]]
    assert fix["To"] == "ada@acme.example"
    assert fix["Subject"] == "Quote Q-2026-0001: please send the signed copy again"
    assert fix["In-Reply-To"] == "<reply-1@acme.example>"  # threads under her mail
    assert deal_from_addresses([str(fix["Reply-To"])], SECRET) == deal_id
    text = fix.get_body(("plain",)).get_content()
    assert "We could not accept the signed copy" in text and "- the quote is not signed" in text
    mailing.relay.drain()
    assert len(smtp.received) == 2  # the what-to-fix email once


def test_a_file_the_verifier_cannot_read_is_rejected_with_its_reason(services):
    deal_id = quoted_deal(services.ledger, seed(services.ledger))
    services.ledger.run(send_quote, deal_id, provider="email", actor="U_REP")
    assert services.email_signing.returned(deal_id, b"not a pdf at all", key="att-3") is Done.ACTED
    [mail] = services.ledger.read(lambda s: s.query(OutboxMessage).filter_by(kind="esign.rejection_email").all())
    assert mail.payload["to"] == "ada@acme.example" and mail.payload["reasons"] == ["no %PDF- header: this looks like something else"]
    assert stage_of(services.ledger, deal_id) is Stage.SENT


def test_the_what_to_fix_email_is_in_the_customers_language():
    subject, body = rejection_text("pl-PL", "Q-2026-0042", 3, ["brak podpisu na stronie 2"])
    assert subject.startswith("Oferta Q-2026-0042") and "(wersja 3)" in body and "  - brak podpisu" in body
    assert rejection_text("xx", "Q-1", 1, [])[0].startswith("Quote Q-1")


def test_without_smtp_the_quote_email_waits_in_the_file_sink_and_a_void_recalls_nothing(services):
    from flows.steps import void_quote
    deal_id = _sent_by_email(services)
    [mail] = services.sink.read("email.send")
    assert mail["payload"]["template"] == "quote" and mail["payload"]["to"] == ["ada@acme.example"]
    assert mail["payload"]["attachments"][0]["filename"] == "Q-2026-0001-v1.pdf"
    services.ledger.run(void_quote, deal_id, reason="customer chose another plan", actor="U_REP")
    services.relay.drain()
    [void] = services.sink.read("esign.void")
    assert "nothing to recall" in void["note"]
