"""What e-signature needs from the documents issue, as two small ports, and the
stand-ins used until the real ones are wired in `closeloop/bootstrap.py`:

* `QuoteDocument.render_quote_pdf(deal_id) -> bytes` — the quote PDF to sign, with the
  anchor texts `/sn1/` (sign here), `/dt1/` (date signed) and `/fn1/` (full name) on
  its signature block;
* `SignedQuoteCheck.verify(pdf, deal_id) -> SignatureVerdict` — accepted, rejected or
  needs_review, with reasons for the rep and the customer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select

from flows.deals import Deal
from flows.ledger import Ledger
from flows.quotes import Quote


@dataclass(frozen=True)
class SignatureVerdict:
    status: str                       # "accepted", "rejected" or "needs_review"
    reasons: tuple[str, ...] = ()
    signer: str | None = None
    details: dict[str, object] = field(default_factory=dict)


class QuoteDocument(Protocol):
    def render_quote_pdf(self, deal_id: int) -> bytes: ...


class SignedQuoteCheck(Protocol):
    def verify(self, pdf: bytes, deal_id: int) -> SignatureVerdict: ...


class MinimalQuotePdf:
    """A one-page quote PDF with the number, version, total and the anchor texts —
    enough for DocuSign to place its tabs. The documents issue renders the real one."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def render_quote_pdf(self, deal_id: int) -> bytes:
        def read(session):  # type: ignore[no-untyped-def]
            deal = session.get(Deal, deal_id)
            quote = session.scalar(select(Quote).where(Quote.deal_id == deal_id))
            version = quote.current
            return quote.number, version.version, version.gross, quote.currency, deal.customer.name
        number, version, gross, currency, customer = self.ledger.read(read)
        from fpdf import FPDF  # imported when first used: it is slow to import
        pdf = FPDF()
        pdf.set_title(f"{number} v{version}")
        pdf.add_page()
        pdf.set_font("Helvetica", size=14)
        pdf.cell(0, 10, f"Quote {number} - version {version}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.cell(0, 8, f"Customer: {_latin(customer)}", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 8, f"Total: {gross / 100:.2f} {currency}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(20)
        pdf.set_text_color(255, 255, 255)  # anchors are invisible on paper, found by DocuSign
        for anchor in ("/sn1/", "/dt1/", "/fn1/"):
            pdf.cell(60, 8, anchor)
        pdf.set_text_color(0, 0, 0)
        pdf.ln(10)
        pdf.cell(60, 8, "Signature")
        pdf.cell(60, 8, "Date")
        pdf.cell(60, 8, "Name")
        return bytes(pdf.output())


class StructuralCheck:
    """Until the signed-quote verifier is wired: a document DocuSign returned as
    completed is accepted when it is a PDF at all; anything else is rejected."""

    def verify(self, pdf: bytes, deal_id: int) -> SignatureVerdict:
        if not pdf.startswith(b"%PDF-"):
            return SignatureVerdict("rejected", ("the signed document is not a PDF",))
        return SignatureVerdict("accepted", (), details={"checked": "structure only (verifier not wired)"})


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")
