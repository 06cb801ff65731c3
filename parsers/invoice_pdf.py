"""Read an invoice PDF: the embedded e-invoice XML when there is one (exact), otherwise
the page layout, template-free (parsers/invoice_layout.py). Pure; runs in the sandbox:

    adapters.pdf_sandbox.run("parsers.invoice_pdf:extract_invoice", pdf_bytes)"""
from __future__ import annotations

import io

from parsers.invoice_layout import extract_from_layout
from parsers.invoice_model import ExtractedInvoice, InvoiceLine  # noqa: F401 - re-exported
from parsers.invoice_xml import parse_invoice_xml
from parsers.pdf_errors import PdfError

# The names the Factur-X, ZUGFeRD and XRechnung specifications give the attachment.
KNOWN_XML_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "order-x.xml")
MAX_XML_BYTES = 20 << 20


def embedded_invoice_xml(pdf: bytes) -> list[bytes]:
    """The XML files attached to the PDF, the standard e-invoice names first."""
    import pypdf   # only here: the layout path does not need it

    try:
        attachments = pypdf.PdfReader(io.BytesIO(pdf)).attachments
        names = sorted((n for n in attachments if n.lower().endswith(".xml")),
                       key=lambda n: (n.lower() not in KNOWN_XML_NAMES, n))
        return [data for name in names for data in attachments[name] if len(data) <= MAX_XML_BYTES]
    except Exception:  # noqa: BLE001 - a damaged attachment tree: fall back to the layout
        return []


def extract_invoice(pdf: bytes) -> ExtractedInvoice:
    for xml in embedded_invoice_xml(pdf):
        try:
            return parse_invoice_xml(xml)
        except PdfError:
            continue   # not an invoice we read, or unreadable: the page is still there
    return extract_from_layout(pdf)
