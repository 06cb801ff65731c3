"""Email wired to the other pieces: the outbox kinds that end in a customer's mailbox
(invoice delivery, esign's "what to fix", gaps' reminders) become `email.send` rows,
attachments named by what to render are rendered at send time, and a signed PDF a
customer emailed back is checked by the real verifier (parsers/signed_quote.py in the
PDF sandbox) before esign's `record_returned_copy` accepts or answers it."""
from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from adapters.email_signing import EmailSigning
from adapters.esign_ports import SignatureVerdict
from closeloop.documents import InvoiceDocuments, aging_pdf, invoice_pdf, issued_quote, statement_pdf
from closeloop.relay import Route
from flows.documents import quote_document
from flows.errors import LedgerError, NotFound
from flows.mail import MailAttachment
from flows.mail_requests import queue_gap_email, queue_invoice_email, queue_rejection_email, queue_statement_email
from flows.outbox import Delivery, PermanentFailure, RetryPolicy
from flows.quotes import Quote
from parsers.pdf_errors import PdfError

if TYPE_CHECKING:
    from closeloop.bootstrap import Services


class VerifiedReturn:
    """The SignedQuoteCheck for copies returned by email: what we issued (from the
    database, as `closeloop parse quote` builds it) against the returned PDF."""

    def __init__(self, services: Services) -> None:
        self.ledger = services.ledger

    def verify(self, pdf: bytes, deal_id: int) -> SignatureVerdict:
        from adapters.pdf_sandbox import run
        try:
            identity = run("parsers.signed_quote:identify", pdf)
            number = self.ledger.read(lambda s: s.query(Quote.number).filter(Quote.deal_id == deal_id).scalar())
            if number is None:
                return SignatureVerdict("needs_review", (f"deal {deal_id} has no quote to compare with",))
            version = identity.version if identity.number == number else None
            try:
                document = self.ledger.read(quote_document, number, version)
            except NotFound:  # a version we never issued: compared with the current one, the verifier says so
                document = self.ledger.read(quote_document, number)
            verdict = run("parsers.signed_quote:verify", pdf, issued_quote(document))
        except PdfError as error:
            return SignatureVerdict("rejected", (f"the PDF could not be read ({error.message})",),
                                    details={"code": error.code.value})
        return SignatureVerdict(verdict.status, tuple(r.text for r in verdict.reasons), verdict.signer,
                                details={"signature": verdict.signature, "quote": verdict.quote,
                                         "version": verdict.version, "codes": [r.code for r in verdict.reasons]})


def render_attachment(services: Services):  # type: ignore[no-untyped-def]
    """{"render": "invoice" | "aging_report", ...} -> PDF bytes, for the mailer."""
    from closeloop.documents import company_from
    company = company_from(services.settings)

    def render(attachment: dict[str, Any]) -> bytes:
        try:
            if attachment["render"] == "invoice":
                return invoice_pdf(services.ledger, company, str(attachment["invoice"]))
            if attachment["render"] == "aging_report":
                return aging_pdf(services.ledger, company, int(attachment["customer_id"]),
                                 date.fromisoformat(str(attachment["as_of"])))
            if attachment["render"] == "statement":
                return statement_pdf(services.ledger, company, int(attachment["customer_id"]),
                                     date.fromisoformat(str(attachment["start"])),
                                     date.fromisoformat(str(attachment["end"])))
        except NotFound as error:
            raise ValueError(str(error)) from error
        raise ValueError(f"no renderer for attachment {attachment['render']!r}")
    return render


def _step(services: Services, step, *args: Any, **kwargs: Any) -> None:  # type: ignore[no-untyped-def]
    try:
        services.ledger.run(step, *args, **kwargs)
    except LedgerError as error:  # the ledger refused: retrying cannot change its mind
        raise PermanentFailure(str(error)) from error


def invoice_delivery(services: Services, documents: InvoiceDocuments):  # type: ignore[no-untyped-def]
    """`invoice.deliver`: the Factur-X PDF into the documents folder, then the email."""
    domain = services.settings.mail_domain

    def deliver(delivery: Delivery) -> None:
        documents.render_to_folder(delivery)
        payload = delivery.payload
        key = (f"invoice:{payload['invoice']}" if not payload.get("resend")
               else f"invoice:{payload['invoice']}:{delivery.idempotency_key}")
        _step(services, queue_invoice_email, str(payload["invoice"]), key=key, to=payload.get("to"),
              lookup="to" not in payload, language=payload.get("language"), domain=domain)
    return deliver


def signed_return(services: Services):  # type: ignore[no-untyped-def]
    """`mail.signed_return`: the stored attachment through the verifier, then esign's step
    (accepted: record_signature; otherwise the "what to fix" email and the deal thread).
    flows.mail routes only mail from the expected, authenticated contact here."""
    signing = EmailSigning(services.ledger, VerifiedReturn(services))

    def handle(delivery: Delivery) -> None:
        payload = delivery.payload
        data = services.ledger.read(lambda s: (s.get(MailAttachment, int(payload["attachment_id"])) or _none()).data)
        if not data:
            raise PermanentFailure(f"attachment {payload['attachment_id']} has no stored bytes")
        try:
            signing.returned(int(payload["deal_id"]), data, key=f"mail-attachment:{payload['attachment_id']}",
                             inbound_id=int(payload["inbound_id"]))
        except LedgerError as error:
            raise PermanentFailure(str(error)) from error
    return handle


def external_invoice(services: Services):  # type: ignore[no-untyped-def]
    """`mail.external_invoice`: docs-read's extractor in the PDF sandbox, then billing-core's
    link_external_invoice (matched: told in the deal thread; unmatched: kept for the gap rule)."""
    from adapters.pdf_sandbox import run
    from flows.external_invoices import ExternalInvoice, link_external_invoice
    from flows.mail import InboundMail

    def handle(delivery: Delivery) -> None:
        payload = delivery.payload

        def read(session):  # type: ignore[no-untyped-def]
            attachment = session.get(MailAttachment, int(payload["attachment_id"]))
            mail = session.get(InboundMail, int(payload["inbound_id"]))
            return (attachment.data if attachment else None), attachment.filename if attachment else "", \
                (mail.message_id if mail else ""), (f"{mail.subject}\n{mail.text}" if mail else "")
        data, filename, message_id, text = services.ledger.read(read)
        if not data:
            raise PermanentFailure(f"attachment {payload['attachment_id']} has no stored bytes")
        source = f"{message_id}#{payload['attachment_id']}:{filename}"[:300]
        try:
            found = run("parsers.invoice_pdf:extract_invoice", data)
        except PdfError as error:  # unreadable: still recorded (unmatched) so the gap rule shows it
            found = None
            text = f"{text}\nunreadable PDF: {error.message}"
        try:  # the page text carries the quote / deal references the link matches on
            body = "\n".join(run("parsers.pdf_text:read_text", data)) if found is not None else ""
        except PdfError:
            body = ""
        extracted = ExternalInvoice(source=source, text=f"{text}\n{body}") if found is None else ExternalInvoice(
            source=source, number=found.number, customer_name=found.buyer, vat_id=found.buyer_vat_id,
            gross=_minor(found.total, found.currency), currency=found.currency, issue_date=found.issue_date,
            due_date=found.due_date, text=f"{text}\n{body}")
        _step(services, link_external_invoice, extracted)
    return handle


def _minor(total: Any, currency: str | None) -> int | None:
    from flows.money import exponent
    if total is None or not currency:
        return None
    return int((total * (10 ** exponent(currency))).to_integral_value())


def _none() -> Any:
    raise PermanentFailure("the attachment is not stored")


def mail_request_routes(services: Services, retry: RetryPolicy, documents: InvoiceDocuments) -> dict[str, Route]:
    domain = services.settings.mail_domain

    def rejection(delivery: Delivery) -> None:
        _step(services, queue_rejection_email, delivery.payload, key=delivery.idempotency_key, domain=domain)

    def gap_email(template: str):  # type: ignore[no-untyped-def]
        def handle(delivery: Delivery) -> None:
            _step(services, queue_gap_email, delivery.payload, template=template, key=delivery.idempotency_key,
                  domain=domain)
        return handle

    def statement(delivery: Delivery) -> None:
        _step(services, queue_statement_email, delivery.payload, key=delivery.idempotency_key, domain=domain)

    return {"invoice.deliver": Route(invoice_delivery(services, documents), retry),
            "collect.statement": Route(statement, retry),
            "mail.signed_return": Route(signed_return(services), retry),
            "esign.rejection_email": Route(rejection, retry),
            "email.quote_reminder": Route(gap_email("quote_reminder"), retry),
            "email.check_in": Route(gap_email("check_in"), retry),
            "mail.external_invoice": Route(external_invoice(services), retry)}
