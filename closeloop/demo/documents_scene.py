"""The demo's documents: the quote PDF the customer receives (in Polish), the signed copy
she sends back and its verification, a tampered copy and why it is refused, the invoice
PDF with Factur-X, and the aging report for collections. All in <out>/documents."""
from __future__ import annotations

from datetime import date
from typing import Any

import facturx

from adapters.pdf_render.stamp import Mark, stamp
from closeloop.documents import (aging_pdf, company_from, invoice_pdf, issued_quote, quote_pdf,
                                 verify_returned_quote)
from flows.deals import Deal
from flows.documents import QuoteDocument, quote_document
from parsers import quote_layout as L
from parsers.signed_quote import Verdict


def show_quote(log: Any, services: Any, deal_id: int) -> None:
    number = services.ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
    document: QuoteDocument = services.ledger.read(quote_document, number)
    pdf = log.step(f"quote PDF rendered in the customer's language ({document.language}), number, version and "
                   "hash in footer, metadata and QR code", lambda: quote_pdf(
                       services.ledger, company_from(services.settings), number))
    _write(services, f"{number}-v{document.version}.pdf", pdf, log)


def verify_returned(log: Any, services: Any, deal_id: int, signer: str) -> None:
    """The customer signs the PDF (typed name and date, a drawn signature) and sends it
    back; then someone 'fixes' the total in a PDF editor and sends that."""
    number = services.ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
    document: QuoteDocument = services.ledger.read(quote_document, number)
    sent = quote_pdf(services.ledger, company_from(services.settings), number)
    pages = int(_identity_pages(sent))
    marks = [Mark(p, L.INITIALS, signer.split()[0][0] + signer.split()[-1][0]) for p in range(1, pages)]
    marks += [Mark(pages, L.SIGNATURE), Mark(pages, L.NAME, signer), Mark(pages, L.DATE, date.today().isoformat())]
    signed = stamp(sent, marks)
    _write(services, f"{number}-v{document.version}-signed.pdf", signed, log)
    issued = issued_quote(document)
    verdict = log.step("returned signed PDF verified (in the PDF sandbox)", lambda: verify_returned_quote(signed, issued))
    _show(log, verdict)

    from dataclasses import fields, replace
    from adapters.pdf_render.quote import render_quote

    class Edited(QuoteDocument):  # the total "corrected" by hand; the rest as sent
        @property
        def gross(self) -> int:  # type: ignore[override]
            return document.gross * 9
    edited = Edited(**{f.name: getattr(document, f.name) for f in fields(document)})
    lines = list(document.lines)
    lines[0] = replace(lines[0], net=lines[0].net // 2)
    tampered = stamp(render_quote(replace(edited, lines=tuple(lines)), company_from(services.settings)), marks)
    _write(services, f"{number}-v{document.version}-tampered.pdf", tampered, log)
    verdict = log.step("a tampered copy verified (first line halved, total changed)",
                       lambda: verify_returned_quote(tampered, issued))
    _show(log, verdict)


def show_invoice(log: Any, services: Any, number: str) -> None:
    pdf = log.step("invoice PDF rendered with Factur-X EN 16931 XML embedded (what invoice.deliver does)",
                   lambda: invoice_pdf(services.ledger, company_from(services.settings), number))
    _write(services, f"{number}.pdf", pdf, log)
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    valid = facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    log.say(f"    {name} embedded ({len(xml):,} bytes), EN 16931 schema: {'valid' if valid else 'INVALID'}")


def show_aging(log: Any, services: Any, customer_id: int, today: date) -> None:
    pdf = log.step("aging report PDF for the customer (0-30, 31-60, 61-90, 90+ days past due)",
                   lambda: aging_pdf(services.ledger, company_from(services.settings), customer_id, today))
    _write(services, f"aging-{customer_id}-{today.isoformat()}.pdf", pdf, log)


def _identity_pages(pdf: bytes) -> int:
    from parsers.signed_quote import identify
    return identify(pdf).pages or 1


def _show(log: Any, verdict: Verdict) -> None:
    signed = f", signature: {verdict.signature}" + (f" by {verdict.signer}" if verdict.signer else "") \
        if verdict.signature else ""
    log.say(f"    verdict: {verdict.status.upper()} — {verdict.quote} v{verdict.version}{signed}")
    for reason in verdict.reasons:
        log.say(f"      ✗ {reason.text}  [{reason.code}]")


def _write(services: Any, name: str, pdf: bytes, log: Any) -> None:
    folder = services.settings.documents_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(pdf)
    log.say(f"    → documents/{name} ({len(pdf) // 1024} KiB)")
