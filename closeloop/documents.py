"""Documents, wired: the company from settings, the ledger's records rendered to PDFs
in the documents folder, and what was issued handed to the pure verifier of returned
quotes (run in the PDF sandbox)."""
from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

from adapters.file_sink import FileSink
from adapters.pdf_render.company import Company
from adapters.pdf_sandbox import run
from closeloop.config import Settings
from flows.documents import (InvoiceDocument, QuoteDocument, aging_document, all_customers_aging_document,
                             invoice_document, quote_document, statement_document)
from flows.errors import NotFound
from flows.ledger import Ledger
from flows.money import exponent
from flows.outbox import Delivery, PermanentFailure
from parsers.signed_quote import IssuedLine, IssuedQuote, Verdict


def company_from(settings: Settings) -> Company:
    address = tuple(p.strip() for p in settings.company_address.split(";") if p.strip())
    return Company(name=settings.company_name, address=address, country=settings.company_country,
                   vat_id=settings.company_vat_id, iban=settings.company_iban, bic=settings.company_bic,
                   email=settings.company_email, logo=settings.company_logo)


def issued_quote(document: QuoteDocument) -> IssuedQuote:
    """What the verifier compares a returned copy with."""
    return IssuedQuote(
        number=document.number, version=document.version, content_hash=document.content_hash,
        currency=document.currency, decimals=exponent(document.currency), language=document.language,
        lines=tuple(IssuedLine(l.position, l.description, l.quantity, l.unit_amount, l.net) for l in document.lines),
        net=document.net, taxes=tuple((t.rate_bp, t.tax) for t in document.taxes), gross=document.gross,
        signer_name=document.signer.contact_name if document.signer else None,
        signer_email=document.signer.contact_email if document.signer else None,
        current_version=document.current_version)


def verify_returned_quote(pdf: bytes, issued: IssuedQuote) -> Verdict:
    """In the PDF sandbox: a hostile file costs bounded time and memory."""
    return run("parsers.signed_quote:verify", pdf, issued)


# The renderers load fpdf2, HarfBuzz and factur-x: imported when a document is made, so
# every other command and process starts without them.

def quote_pdf(ledger: Ledger, company: Company, number: str, version: int | None = None) -> bytes:
    from adapters.pdf_render.quote import render_quote
    return render_quote(ledger.read(quote_document, number, version), company)


def invoice_pdf(ledger: Ledger, company: Company, number: str) -> bytes:
    return _rendered_invoice(ledger.read(invoice_document, number), company)


@functools.lru_cache(maxsize=32)
def _rendered_invoice(document: InvoiceDocument, company: Company) -> bytes:
    """Keyed by the whole document (status, payments, lines: all it shows): the delivery
    renders an invoice into the folder and its email attaches it moments later, one
    render when both run in this process and nothing on the invoice changed between."""
    from adapters.pdf_render.invoice import render_invoice
    return render_invoice(document, company)


def aging_pdf(ledger: Ledger, company: Company, customer_id: int, today: date) -> bytes:
    from adapters.pdf_render.aging import render_aging
    return render_aging(ledger.read(aging_document, customer_id, today), company)


def all_customers_aging_pdf(ledger: Ledger, company: Company, today: date) -> bytes:
    """The company-wide aging report (the gap digest attaches it)."""
    from adapters.pdf_render.aging import render_aging
    return render_aging(ledger.read(all_customers_aging_document, today), company)


def statement_pdf(ledger: Ledger, company: Company, customer_id: int, start: date, end: date) -> bytes:
    from adapters.pdf_render.statement import render_statement
    return render_statement(ledger.read(statement_document, customer_id, start, end), company)


class InvoiceDocuments:
    """The `invoice.deliver` route for now: render the invoice PDF into the documents
    folder, where the email delivery (a later issue) attaches it from, and leave the
    message in the file sink saying where the PDF is (nothing is emailed yet)."""

    def __init__(self, ledger: Ledger, company: Company, directory: Path, sink: FileSink) -> None:
        self.ledger, self.company, self.directory, self.sink = ledger, company, directory, sink

    def path(self, number: str) -> Path:
        return self.directory / f"{number}.pdf"

    def deliver(self, delivery: Delivery) -> None:
        target = self.render_to_folder(delivery)
        self.sink.write(delivery, f"invoice PDF (Factur-X) rendered to {target}; emailing it is not available "
                                  "yet (the billing issue)")

    def render_to_folder(self, delivery: Delivery) -> Path:
        """The PDF into the documents folder (closeloop.mail_wiring then emails it)."""
        number = str(delivery.payload.get("invoice", ""))
        if not number:
            raise PermanentFailure("invoice.deliver without an invoice number")
        try:
            pdf = invoice_pdf(self.ledger, self.company, number)
        except NotFound as error:
            raise PermanentFailure(str(error)) from error
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(number)
        partial = target.with_suffix(".pdf.part")
        partial.write_bytes(pdf)
        partial.replace(target)  # whole or not at all: a reader never sees half a PDF
        return target
