"""Email wired to the other pieces, end to end on real servers (aiosmtpd, Dovecot):
every template a flow queues renders in each language; an unknown one is dead-lettered
with its reason; the invoice goes out with its Factur-X PDF; a signed copy emailed back
is verified for real, accepted (the deal advances) or answered in the customer's thread
with what to fix; a spoofed sender is never accepted."""
from __future__ import annotations

import io
import re
from email import message_from_bytes, policy
from pathlib import Path

import facturx
import pdfplumber
import pytest
from sqlalchemy import select

from adapters.mail_render import LOCALIZED_SUBJECTS, PARAGRAPHS, render
import flows
from closeloop.bootstrap import build
from closeloop.demo.mail_servers import SmtpServer
from closeloop.documents import company_from, quote_pdf
from flows.collections import queue_money_email
from flows.deals import Deal, Stage
from flows.mail import InboundMail, MailStatus, OutboundMail, OutboundStatus, queue_email
from flows.mail_requests import queue_invoice_email
from flows.outbox import OutboxMessage, OutboxStatus
from flows.queries import timeline
from flows.invoices import Invoice
from flows.quotes import Quote
from parsers.mail_token import reply_address
from tests import documents_kit as kit
from tests.factories import deal_at, seed, stage_of
from tests.mail_samples import AUTHSERV, SECRET, reply
from tests.test_mail_inbound import Folder, dovecot, imap, watcher_for  # noqa: F401 — the module's Dovecot

BASE = "sales@ourco.example"
LANGUAGES = {  # locale -> (money as Babel writes 1,234.56 EUR, the long date of 2026-04-09)
    "en": ("€1,234.56", "April 9, 2026"), "pl": ("1234,56\xa0€", "9 kwietnia 2026"),
    "lt": ("1234,56\xa0€", "2026 m. balandžio 9 d."), "id": ("€1.234,56", "9 April 2026"),
    "he": ("1,234.56", "9 באפריל 2026"),
}
CONTEXTS = {  # the payloads the flows write (flows/collections.py, flows/mail_requests.py, esign)
    "quote": {"name": "Ada", "number": "Q-2026-0042", "version": 2, "amount_minor": 123456, "currency": "EUR",
              "valid_until": "2026-05-01"},
    "receipt": {"kind": "receipt", "customer": "Acme", "amount": 123456, "currency": "EUR", "method": "card",
                "reference": "pi_1", "received_at": "2026-04-09T10:00:00+00:00",
                "invoices": [{"invoice": "INV-1", "amount": 123456, "balance": 0, "status": "paid"}]},
    "payment_reminder": {"kind": "reminder", "customer": "Acme", "invoice": "INV-1", "balance": 123456,
                         "currency": "EUR", "due_on": "2026-04-09", "days_late": 0, "days_left": 5,
                         "as_of": "2026-04-04", "open_invoices": [], "bank_details": None},
    "payment_overdue": {"kind": "overdue+7", "customer": "Acme", "invoice": "INV-1", "balance": 123456,
                        "currency": "EUR", "due_on": "2026-04-09", "days_late": 7, "days_left": 0,
                        "as_of": "2026-04-16", "bank_details": "IBAN DE89",
                        "open_invoices": [{"invoice": "INV-1", "balance": 123456, "currency": "EUR",
                                           "due_on": "2026-04-09"},
                                          {"invoice": "INV-2", "balance": 500, "currency": "EUR", "due_on": None}]},
    "payment_link": {"kind": "payment_link", "customer": "Acme", "url": "https://pay.example/cs_1",
                     "instructions": None, "reference": "PL-1-1", "amount": 123456, "currency": "EUR",
                     "invoices": [{"invoice_id": 1, "number": "INV-1", "amount": 123456}]},
    "quote_reminder": {"customer": "Acme", "name": "Ada", "quote": "Q-1", "version": 2, "amount_minor": 123456,
                       "currency": "EUR", "valid_until": "2026-04-09"},
    "invoice": {"number": "INV-1", "customer": "Acme", "name": "Bob", "amount_minor": 123456, "currency": "EUR",
                "due_on": "2026-04-09"},
    "check_in": {"customer": "Acme", "name": "Ada"},
    "statement": {"customer": "Acme", "name": "Bob", "start": "2025-04-10", "end": "2026-04-09"},
    "signature_rejected": {"quote": "Q-1", "version": 2, "reasons": ["the total was changed"], "customer": "Acme"},
}
DATED = {"receipt", "payment_reminder", "payment_overdue", "quote_reminder", "invoice", "statement"}
MONEY = (DATED - {"statement"}) | {"payment_link"}


def _normal(text: str) -> str:
    return text.replace("\u202f", "\xa0").replace("\u200f", "").replace("1\xa0234", "1234")


@pytest.mark.parametrize("locale", sorted(LANGUAGES))
def test_every_template_a_flow_queues_renders_in_each_language(locale):
    money, day = LANGUAGES[locale]
    for template, context in CONTEXTS.items():
        rendered = render(template, locale, context, company="OurCo", subject="English subject from the flow")
        text = _normal(rendered.text)
        if template in MONEY:
            assert money in text, (template, text)
        if template in DATED:
            assert day in text, (template, text)
        assert ('dir="rtl"' in rendered.html) == (locale == "he")
        assert "{" not in text and rendered.subject
        if template in LOCALIZED_SUBJECTS:  # the flows write English subjects; the customer reads theirs
            assert rendered.subject != "English subject from the flow"
    assert "the total was changed" in render("signature_rejected", locale, CONTEXTS["signature_rejected"],
                                             company="OurCo").text


def test_every_template_named_in_the_flows_exists_and_is_tested():
    named = set()
    for source in (Path(flows.__file__).parent).glob("*.py"):
        named |= set(re.findall(r'template="(\w+)"', source.read_text()))
        named |= set(re.findall(r'template, subject = "(\w+)"', source.read_text()))
    assert {"receipt", "payment_reminder", "payment_overdue", "payment_link", "invoice", "signature_rejected",
            "reply"} <= named  # (quote_reminder and check_in are passed by name from gap_email)
    assert named <= set(PARAGRAPHS) and named - {"reply"} <= set(CONTEXTS)


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def wired(settings, clock, smtp):
    built = build(settings.model_copy(update={
        "mail_secret": SECRET, "mail_from": BASE, "mail_company": "OurCo", "smtp_starttls": False,
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_timeout": 5, "mail_authserv_id": AUTHSERV}), clock)
    yield built
    built.close()


def _parsed(smtp):
    return [message_from_bytes(got.data, policy=policy.default) for got in smtp.received]


def _rows(services, kind):
    return services.ledger.read(lambda s: list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                                         .order_by(OutboxMessage.id))))


def test_an_unknown_template_is_dead_lettered_at_once_with_its_reason(wired, smtp):
    deal = deal_at(wired.ledger, seed(wired.ledger), Stage.SENT)
    wired.ledger.run(lambda tx: queue_email(tx, key="x", deal_id=deal, to=["ada@acme.example"], template="nope",
                                            locale="en", subject="", context={}))
    wired.relay.drain()
    [row] = _rows(wired, "email.send")
    assert (row.status, row.attempts) == (OutboxStatus.DEAD, 1)
    mail = wired.ledger.read(lambda s: s.scalar(select(OutboundMail)))
    assert mail.status is OutboundStatus.FAILED and "no email template 'nope'" in mail.error
    assert smtp.received == []


def test_the_invoice_is_emailed_once_with_its_pdf_and_dunning_attaches_rendered_documents(wired, smtp):
    deal = deal_at(wired.ledger, seed(wired.ledger), Stage.INVOICED)
    wired.relay.drain()
    wired.relay.drain()
    [invoice_mail] = [m for m in _parsed(smtp) if m["Subject"].startswith("Invoice")]
    assert invoice_mail["To"] == "billing@acme.example"
    [pdf] = list(invoice_mail.iter_attachments())
    number = pdf.get_filename().removesuffix(".pdf")
    assert number.startswith("INV-") and pdf.get_content().startswith(b"%PDF-")
    name, xml = facturx.get_xml_from_pdf(pdf.get_content(), check_xsd=False)  # Factur-X, not a stand-in
    assert name == "factur-x.xml" and number.encode() in xml
    assert (wired.settings.documents_dir / f"{number}.pdf").exists()
    # asked again (a redelivery): one email
    wired.ledger.run(queue_invoice_email, number, key=f"invoice:{number}", to="billing@acme.example",
                     lookup=False, language="en", domain="x")
    wired.relay.drain()
    assert sum(m["Subject"].startswith("Invoice") for m in _parsed(smtp)) == 1
    # no billing contact: a timeline note, no mail
    wired.ledger.run(queue_invoice_email, number, key="invoice:again", to=None, lookup=False, language="en",
                     domain="x")
    assert "invoice.no_billing_contact" in [e.kind for e in wired.ledger.read(timeline, deal)]
    # an overdue rung names its attachments by what to render: rendered at send time
    wired.ledger.run(lambda tx: queue_money_email(
        tx, key="dunning:t", deal_id=deal, to=["billing@acme.example"], template="payment_overdue", locale="pl",
        subject="INV overdue", context={**CONTEXTS["payment_overdue"], "invoice": number},
        attachments=({"render": "aging_report", "customer_id": 1, "as_of": "2026-05-01",
                      "filename": "aging.pdf", "content_type": "application/pdf"},
                     {"render": "invoice", "invoice": number, "filename": f"{number}.pdf",
                      "content_type": "application/pdf"})))
    wired.relay.drain()
    [overdue] = [m for m in _parsed(smtp) if "po terminie" in m["Subject"]]
    assert [a.get_filename() for a in overdue.iter_attachments()] == ["aging.pdf", f"{number}.pdf"]


def _quote_of(services, deal_id):
    number = services.ledger.read(lambda s: s.scalar(select(Quote.number).where(Quote.deal_id == deal_id)))
    return number, quote_pdf(services.ledger, company_from(services.settings), number)


def test_finance_asks_for_a_statement_and_the_billing_contact_gets_it_as_a_pdf_once(wired, smtp):
    from flows.finance import send_statement
    from flows.parties import Customer
    ledger = wired.ledger
    customer = seed(ledger)
    deal_at(ledger, customer, Stage.INVOICED)
    ledger.run(lambda tx: setattr(tx.session.get(Customer, customer), "language", "pl"))
    assert "collect.statement" not in wired.unsent  # no longer written to the file sink
    ledger.run(send_statement, customer, actor="U0FIN", request_key="click-1")
    ledger.run(send_statement, customer, actor="U0FIN", request_key="click-1")  # a double click
    for _ in range(3):
        wired.relay.drain()
    [mail] = [m for m in _parsed(smtp) if "Wyciąg" in m["Subject"]]
    assert mail["To"] == "billing@acme.example"
    assert mail["Subject"] == "Wyciąg z konta 11 marca 2025 – 10 marca 2026"  # twelve months to today (the clock)
    [pdf] = list(mail.iter_attachments())
    assert pdf.get_filename().startswith("statement-") and pdf.get_content().startswith(b"%PDF-")
    text = "\n".join(page.extract_text() or "" for page in pdfplumber.open(io.BytesIO(pdf.get_content())).pages)
    number = ledger.read(lambda s: s.scalar(select(Invoice.number)))
    assert number in text, "the statement lists the customer's invoice"
    assert sum("Wyciąg" in m["Subject"] for m in _parsed(smtp)) == 1
    assert [r.status for r in _rows(wired, "collect.statement")] == [OutboxStatus.DONE]


def test_a_signed_copy_by_email_is_verified_accepted_or_answered_in_the_thread(wired, smtp, imap):  # noqa: F811
    customer = seed(wired.ledger)
    good, bad, spoofed = (deal_at(wired.ledger, customer, Stage.SENT) for _ in range(3))
    wired.relay.drain()
    _, pdf = _quote_of(wired, good)
    bad_number, bad_pdf = _quote_of(wired, bad)
    _, spoofed_pdf = _quote_of(wired, spoofed)
    imap.deliver(
        reply(to=reply_address(BASE, good, SECRET), body="Signed copy attached.",
              attachments=[("signed.pdf", "application/pdf", kit.sign_typed(pdf, 1, name="Ada Signer"))]),
        reply(to=reply_address(BASE, bad, SECRET), body="Signed copy attached.", message_id="<bad@acme.example>",
              attachments=[("signed.pdf", "application/pdf", kit.sign_typed(bad_pdf, 1, name="Jan Nowak"))]),
        reply(to=reply_address(BASE, spoofed, SECRET), body="Signed copy attached.",
              auth_results=[f"{AUTHSERV}; dkim=fail header.d=acme.example; spf=fail"],
              attachments=[("signed.pdf", "application/pdf", kit.sign_typed(spoofed_pdf, 1, name="Ada Signer"))]))
    watcher_for(wired, imap.port, imap).sync_once()
    for _ in range(3):
        wired.relay.drain()
    assert stage_of(wired.ledger, good) is Stage.BILLING_ACTIVE  # won -> invoiced -> licensed -> billing
    assert stage_of(wired.ledger, bad) is Stage.SENT
    [fix] = [m for m in _parsed(smtp) if m["In-Reply-To"] == "<bad@acme.example>"]
    assert bad_number in fix["Subject"] and fix["To"] == "ada@acme.example"
    assert "Jan Nowak" in fix.get_body(("plain",)).get_content()  # the verifier's reason, word for word
    thread = [r.payload["text"] for r in _rows(wired, "slack.deal_thread") if r.deal_id == bad]
    assert any("was not accepted" in t and "Jan Nowak" in t for t in thread)
    assert stage_of(wired.ledger, spoofed) is Stage.SENT
    status = wired.ledger.read(lambda s: s.scalar(select(InboundMail.status).where(InboundMail.deal_id == spoofed)))
    assert status is MailStatus.REVIEW
    assert [r.payload["deal_id"] for r in _rows(wired, "mail.signed_return")] == [good, bad]
    assert wired.ledger.read(lambda s: s.get(Deal, good).stage) is Stage.BILLING_ACTIVE


def _ingest(services, *raws, role="sales"):
    from flows.mail import store_messages
    from handlers.mail_read import ReadConfig, read_message
    facts = [read_message(uid, raw, ReadConfig(secret=SECRET, authserv_id=AUTHSERV)) for uid, raw in enumerate(raws, 1)]
    services.ledger.run(store_messages, mailbox=f"{role}:test", role=role, uidvalidity=1, last_uid=len(raws),
                        messages=facts)


def test_a_remittance_email_from_the_billing_contact_records_the_payment_once(wired):
    from flows.billing import Payment
    from flows.invoices import Invoice, InvoiceStatus
    from flows.mail import PaymentClaim
    customer = seed(wired.ledger)
    exact, vague, spoofed = (deal_at(wired.ledger, customer, Stage.INVOICED) for _ in range(3))

    def invoice_of(deal_id):
        return wired.ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.deal_id == deal_id)))

    def said(deal_id, text, **kwargs):
        inv = invoice_of(deal_id)
        whole, cents = divmod(inv.balance, 100)
        return reply(to=reply_address(BASE, deal_id, SECRET), sender="Bob Billing <billing@acme.example>",
                     body=text.format(number=inv.number, amount=f"{whole:,}.{cents:02d}"), **kwargs)

    raws = [said(exact, "We have paid invoice {number} today: EUR {amount} by bank transfer."),
            said(vague, "We have paid invoice {number} today by bank transfer."),
            said(spoofed, "We have paid invoice {number} today: EUR {amount} by bank transfer.",
                 auth_results=[f"{AUTHSERV}; dkim=fail header.d=acme.example"])]
    _ingest(wired, *raws)
    _ingest(wired, raws[0])  # the same email again: stored once, paid once
    assert invoice_of(exact).status is InvoiceStatus.PAID
    assert invoice_of(vague).status is InvoiceStatus.ISSUED and invoice_of(spoofed).status is InvoiceStatus.ISSUED
    payments = wired.ledger.read(lambda s: list(s.scalars(select(Payment))))
    assert len(payments) == 1 and payments[0].reference.startswith("remittance:<")
    claims = wired.ledger.read(lambda s: {c.deal_id: c.confirmed for c in s.scalars(select(PaymentClaim))})
    assert claims == {exact: 1, vague: 0}  # the spoofed one is not even a claim: it is in review


def test_finance_mailbox_invoice_pdfs_are_extracted_and_linked_in_external_mode(settings, clock):
    from dataclasses import replace

    from adapters.pdf_render.invoice import render_invoice
    from flows.documents import Party
    from flows.external_invoices import ExternalInvoiceRecord, ExternalInvoiceStatus
    services = build(settings.model_copy(update={"invoicing": "external", "mail_secret": SECRET,
                                                 "mail_authserv_id": AUTHSERV}), clock)
    try:
        deal = deal_at(services.ledger, seed(services.ledger), Stage.WON)
        quote, _ = _quote_of(services, deal)
        ours = replace(kit.invoice("de"), number="RE-1001", quote_number=quote,
                       customer=Party("Acme GmbH", "DE", None, "Bob Billing", "billing@acme.example"))
        stranger = replace(kit.invoice("de"), number="RE-1002", quote_number="Q-1999-0001")
        mails = [reply(to="finance@ourco.example", sender="Buchhaltung <billing@accounting.example>",
                       subject=f"Rechnung {doc.number}", body="Anbei die Rechnung.", dkim_domain="accounting.example",
                       attachments=[(f"{doc.number}.pdf", "application/pdf", render_invoice(doc, kit.COMPANY))])
                 for doc in (ours, stranger)]
        _ingest(services, *mails, role="finance")
        services.relay.drain()
        records = services.ledger.read(lambda s: {r.number: (r.status, r.deal_id, r.gross) for r in
                                                  s.scalars(select(ExternalInvoiceRecord))})
        assert records["RE-1001"][:2] == (ExternalInvoiceStatus.MATCHED, deal)
        assert records["RE-1001"][2] == ours.net + ours.tax
        assert records["RE-1002"][:2] == (ExternalInvoiceStatus.UNMATCHED, None)  # kept for the gap rule
        posts = [r.payload["text"] for r in _rows(services, "slack.deal_thread") if r.deal_id == deal]
        assert any("RE-1001" in p and "linked" in p for p in posts)
    finally:
        services.close()
