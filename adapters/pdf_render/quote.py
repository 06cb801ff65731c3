"""The quote PDF a customer signs: lines and totals in their language; on every page
the quote's number, version and content hash (footer, QR code) and a box for initials;
on the last page the signature block with anchor texts for e-signature tabs. The same
facts go into the PDF metadata, so a returned copy is matched to exactly this version
(parsers/quote_layout.py is the contract with the verifier)."""
from __future__ import annotations

import io

import qrcode
from pypdf import PdfReader, PdfWriter

from adapters.pdf_render.layout import MARGIN, Column, Company, DocumentPdf, Locale, Table
from flows.documents import QuoteDocument
from parsers import quote_layout as L

_TOTALS_ROOM = 16.0


def render_quote(quote: QuoteDocument, company: Company = Company()) -> bytes:
    loc = Locale(quote.language)
    pdf = DocumentPdf(loc, company)
    pdf.set_title(f"{loc.t('quote')} {quote.number}")
    pdf.set_author(company.name)
    pdf.set_subject(f"Quote {quote.number} version {quote.version} sha256:{quote.content_hash}")
    pdf.set_keywords(f"closeloop quote {quote.number} v{quote.version}")

    pdf.add_page()
    y = pdf.letterhead(right_edge=L.QR.x0 - 10)
    pdf.put(MARGIN, y, 200, 20, loc.t("quote"), size=16, bold=True)
    pdf.put(MARGIN + 200, y, L.PAGE_WIDTH - 2 * MARGIN - 200, 20, quote.number, size=14, bold=True, align="R")
    y += 28
    half = (L.PAGE_WIDTH - 2 * MARGIN) / 2
    left = [(loc.t("number"), quote.number), (loc.t("version"), str(quote.version)),
            (loc.t("date"), loc.date(quote.issued_on)), (loc.t("valid_until"), loc.date(quote.valid_until)),
            (loc.t("payment_terms"), loc.t("days", days=quote.payment_terms_days)),
            (loc.t("currency"), quote.currency)]
    customer = quote.customer
    right = [(loc.t("customer"), customer.name), *([(loc.t("vat_id"), customer.tax_id)] if customer.tax_id else []),
             *([("", quote.signer.contact_name or "")] if quote.signer else []),
             *([("", quote.signer.contact_email or "")] if quote.signer and quote.signer.contact_email else [])]
    y = max(pdf.pairs(MARGIN, y, half - 10, left), pdf.pairs(MARGIN + half, y, half, right, label_w=70)) + 14

    table = Table(columns=(Column("description", 247.0), Column("quantity", 60.0, "R"),
                           Column("unit", 100.0, "R"), Column("net", 104.28, "R")),
                  header=(loc.t("description"), loc.t("quantity"), loc.t("unit_price"), loc.t("amount")))
    for line in quote.lines:
        table.rows.append((line.description, loc.quantity(line.quantity),
                           loc.money(line.unit_amount, quote.currency), loc.money(line.net, quote.currency)))
        table.markers.append(L.line_marker(line.position))

    def next_page() -> float:
        pdf.add_page()
        return 110.0

    y = pdf.table(table, y, bottom=L.CONTENT_BOTTOM, new_page=next_page)
    totals: list[tuple[str | None, str, str, bool]] = [(L.NET_MARKER, loc.t("net"), loc.money(quote.net, quote.currency),
                                                        False)]
    for tax in quote.taxes:
        totals.append((L.tax_marker(tax.rate_bp), loc.t("tax", rate=loc.rate(tax.rate_bp)),
                       loc.money(tax.tax, quote.currency), False))
    totals.append((L.TOTAL_MARKER, loc.t("total"), loc.money(quote.gross, quote.currency), True))
    needed = _TOTALS_ROOM * len(totals) + (18 if quote.discount_bp else 0) + 40
    if y + needed > L.LAST_CONTENT_BOTTOM:
        y = next_page()
    y = pdf.totals(totals, y + 4)
    if quote.discount_bp:
        pdf.put(MARGIN, y + 4, L.PAGE_WIDTH - 2 * MARGIN, 12, loc.t("discount", rate=loc.rate(quote.discount_bp)),
                size=8, color=(70, 70, 70))
        y += 18
    pdf.put(MARGIN, L.SIGNATURE.top - 34, L.PAGE_WIDTH - 2 * MARGIN, 12, loc.t("sign_here"), size=8.5)

    pages = pdf.page
    footer = L.footer_text(quote.number, quote.version, quote.content_hash)
    for page in range(1, pages + 1):
        pdf.page = page
        _qr(pdf, L.qr_text(quote.number, quote.version, quote.content_hash, page, pages))
        pdf.page_footer(page, pages, footer)
        if page < pages:
            _box(pdf, L.INITIALS, loc.t("initials"), L.ANCHOR_INITIALS)
        else:
            _box(pdf, L.SIGNATURE, loc.t("signature"), L.ANCHOR_SIGNATURE)
            _box(pdf, L.NAME, loc.t("name"), L.ANCHOR_NAME)
            _box(pdf, L.DATE, loc.t("date"), L.ANCHOR_DATE)
    return _with_metadata(pdf.to_bytes(), {L.META_QUOTE: quote.number, L.META_VERSION: str(quote.version),
                                           L.META_HASH: quote.content_hash, L.META_PAGES: str(pages)})


def _box(pdf: DocumentPdf, box: L.Box, caption: str, anchor: str) -> None:
    """A box to sign in, its caption above it. Not mirrored: the verifier reads fixed places."""
    pdf.set_draw_color(120, 120, 120)
    pdf.rect(box.x0, box.top, box.x1 - box.x0, box.bottom - box.top)
    pdf.set_draw_color(0, 0, 0)
    pdf.put(box.x0, box.top - 11, box.x1 - box.x0, 10, caption, size=7, color=(90, 90, 90), mirror=False,
            align="R" if pdf.loc.rtl else "L")
    pdf.hidden(box.x0 + 4, box.top + 4, anchor)


def _qr(pdf: DocumentPdf, text: str) -> None:
    # No quiet zone in the image: the page around it is blank, and the verifier maps a
    # scan by the symbol's own corners, which then are the corners of L.QR.
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, box_size=4)
    code.add_data(text)
    code.make(fit=True)
    png = io.BytesIO()
    code.make_image().save(png)
    png.seek(0)
    pdf.image(png, x=L.QR.x0, y=L.QR.top, w=L.QR.x1 - L.QR.x0, h=L.QR.bottom - L.QR.top)


def _with_metadata(data: bytes, keys: dict[str, str]) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.add_metadata(keys)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
