"""Invoice extraction: the embedded Factur-X XML exactly, and the page layout in nine
languages and two layouts, from PDFs rendered here (tests/invoice_fixtures.py)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from adapters.pdf_sandbox import Limits, run
from parsers.invoice_pdf import extract_invoice
from parsers.invoice_values import amounts_in, dates_in, ibans_in, vat_ids_in
from parsers.invoice_xml import parse_invoice_xml
from parsers.pdf_errors import PdfError, PdfErrorCode
from tests import pdf_fixtures
from tests.invoice_fixtures import CII, LANGUAGES, facturx_invoice, invoice

FIELDS = ("number", "issue_date", "due_date", "seller", "buyer", "currency", "net", "tax", "total", "iban",
          "seller_vat_id")


@pytest.mark.parametrize("layout", ["inline", "columns"])
@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_layout_extraction_reads_every_field(language, layout):
    pdf, expected = invoice(language, layout)
    got = extract_invoice(pdf)
    assert got.source == "layout"
    assert {f: getattr(got, f) for f in FIELDS} == {f: getattr(expected, f) for f in FIELDS}
    assert len(got.lines) == expected.lines
    # net + tax = total was found consistent: the amounts are held with confidence
    assert min(got.confidence[f] for f in ("net", "tax", "total")) >= 0.75


def test_layout_line_items_carry_quantity_unit_price_and_amount():
    got = extract_invoice(invoice("de")[0])
    assert [(line.quantity, line.unit_price, line.amount) for line in got.lines] == [
        (Decimal("12"), Decimal("95.50"), Decimal("1146.00")), (Decimal("1"), Decimal("1250.00"), Decimal("1250.00"))]
    assert got.lines[0].description.startswith("Consulting services")


def test_the_embedded_facturx_xml_is_read_exactly_even_when_the_page_says_otherwise():
    got = run("parsers.invoice_pdf:extract_invoice", facturx_invoice(page_total="9.999,00 €"),
              limits=Limits(seconds=20))
    assert got.source == "xml"
    assert (got.number, got.issue_date, got.due_date, got.seller, got.buyer, got.currency) == (
        "FX-2026-0007", date(2026, 3, 9), date(2026, 4, 8), "Nordwind Analytics GmbH", "Kestrel Logistics SA", "EUR")
    assert (got.net, got.tax, got.total) == (Decimal("1250.00"), Decimal("237.50"), Decimal("1487.50"))
    assert (got.iban, got.seller_vat_id) == ("DE89370400440532013000", "DE136695976")
    assert [(line.description, line.amount) for line in got.lines] == [("Annual licence", Decimal("1250.00"))]
    assert got.confidence["total"] == 1.0


def test_the_xml_reader_refuses_entities_and_unknown_documents():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><Invoice><ID>&a;</ID></Invoice>'
    assert parse_invoice_xml(bomb).number in (None, "")          # the entity is not expanded
    with pytest.raises(PdfError) as caught:
        parse_invoice_xml(b"<Order/>")
    assert caught.value.code is PdfErrorCode.MALFORMED
    assert parse_invoice_xml(CII.encode()).total == Decimal("1487.50")


def test_a_page_without_text_needs_review():
    with pytest.raises(PdfError) as caught:
        extract_invoice(pdf_fixtures.blank_pdf())
    assert caught.value.code is PdfErrorCode.NO_TEXT


@pytest.mark.parametrize("text, value", [
    ("Total 1.234,56 €", "1234.56"), ("1 234,56 zł", "1234.56"), ("USD 1,234.56", "1234.56"),
    ("CHF 1'234.50", "1234.50"), ("-5,00", "-5.00"), ("Rp 1.234.567,00", "1234567.00")])
def test_amounts_in_every_notation(text, value):
    assert amounts_in(text)[0][0] == Decimal(value)


@pytest.mark.parametrize("text, value", [
    ("31.01.2026", date(2026, 1, 31)), ("01/31/2026", date(2026, 1, 31)), ("2026-01-31", date(2026, 1, 31)),
    ("31 janvier 2026", date(2026, 1, 31)), ("15 stycznia 2026", date(2026, 1, 15)),
    ("2026 m. sausio 31 d.", date(2026, 1, 31)), ("March 3, 2026", date(2026, 3, 3)),
    ("12 Agustus 2025", date(2025, 8, 12)), ("3 במרץ 2026", date(2026, 3, 3)), ("7 marzo 2026", date(2026, 3, 7))])
def test_dates_in_every_language(text, value):
    assert dates_in(text)[0][0] == value


def test_ibans_and_vat_ids_are_checksummed():
    assert ibans_in("IBAN: DE89 3704 0044 0532 0130 00 BIC X") == ["DE89370400440532013000"]
    assert ibans_in("IBAN: DE88 3704 0044 0532 0130 00") == []          # one digit off
    assert vat_ids_in("TVA FR 11 123 456 782 SARL, PL5260250274") == [("FR11123456782", True), ("PL5260250274", True)]
    assert vat_ids_in("USt-IdNr DE123456780") == [("DE123456780", False)]
