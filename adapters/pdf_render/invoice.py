"""The invoice PDF in the customer's language, with its Factur-X / ZUGFeRD EN 16931 XML
embedded (PDF/A-3, as the factur-x library makes it), so accounting software reads the
numbers exactly and a person reads the same numbers on the page."""
from __future__ import annotations

import functools
from datetime import timedelta
from importlib import resources

from facturx import generate_from_binary
from facturx.facturx import FACTURX_LEVEL2xsd
from lxml import etree

from adapters.pdf_render.facturx_xml import invoice_xml
from adapters.pdf_render.layout import MARGIN, PAGE_WIDTH, Column, Company, DocumentPdf, Locale, Table
from flows.documents import InvoiceDocument

_BOTTOM = 760.0


def render_invoice(invoice: InvoiceDocument, company: Company = Company()) -> bytes:
    """The invoice with its XML attached; the XML is checked against the EN 16931 schema
    on the way (a schema error raises rather than sending a broken invoice)."""
    page = render_invoice_page(invoice, company)
    xml = invoice_xml(invoice, company)
    _en16931_schema().assertValid(etree.fromstring(xml))  # raises etree.DocumentInvalid
    return generate_from_binary(page, xml, flavor="factur-x", level="en16931",
                                check_xsd=False, lang=invoice.language,
                                pdf_metadata={"author": company.name, "keywords": "Factur-X, invoice",
                                              "title": f"{company.name}: Invoice {invoice.number}",
                                              "subject": f"Invoice {invoice.number}"})


@functools.cache
def _en16931_schema() -> etree.XMLSchema:
    """The factur-x library's EN 16931 XSD, parsed once per process: `check_xsd=True`
    parses the schema again for every invoice (about 0.1 s)."""
    xsd = resources.files("facturx").joinpath(f"xsd_and_schematron/{FACTURX_LEVEL2xsd['en16931']}")
    with resources.as_file(xsd) as path:
        return etree.XMLSchema(file=str(path))


def render_invoice_page(invoice: InvoiceDocument, company: Company) -> bytes:
    loc = Locale(invoice.language)
    pdf = DocumentPdf(loc, company)
    pdf.add_page()
    y = pdf.letterhead()
    width = PAGE_WIDTH - 2 * MARGIN
    pdf.put(MARGIN, y, 200, 20, loc.t("invoice"), size=16, bold=True)
    pdf.put(MARGIN + 200, y, width - 200, 20, invoice.number, size=14, bold=True, align="R")
    y += 28
    half = width / 2
    left = [(loc.t("number"), invoice.number), (loc.t("issue_date"), loc.date(invoice.issued_on)),
            (loc.t("due_date"), loc.date(invoice.due_on)),
            (loc.t("payment_terms"), loc.t("days", days=invoice.payment_terms_days)),
            (loc.t("currency"), invoice.currency),
            *([(loc.t("quote_ref"), invoice.quote_number)] if invoice.quote_number else [])]
    customer = invoice.customer
    right = [(loc.t("customer"), customer.name), *([(loc.t("vat_id"), customer.tax_id)] if customer.tax_id else []),
             *([("", customer.contact_name)] if customer.contact_name else []),
             *([("", customer.contact_email)] if customer.contact_email else [])]
    y = max(pdf.pairs(MARGIN, y, half - 10, left), pdf.pairs(MARGIN + half, y, half, right, label_w=70)) + 14

    table = Table(columns=(Column("description", 247.0), Column("quantity", 60.0, "R"),
                           Column("unit", 100.0, "R"), Column("net", 104.28, "R")),
                  header=(loc.t("description"), loc.t("quantity"), loc.t("unit_price"), loc.t("amount")))
    for line in invoice.lines:
        text = line.description
        if line.period_start and line.period_end:
            last = line.period_end - timedelta(days=1)  # stored exclusive, printed inclusive
            text += f" ({loc.date(line.period_start)} – {loc.date(last)})"
        table.rows.append((text, loc.quantity(line.quantity), loc.money(line.unit_amount, invoice.currency),
                           loc.money(line.net, invoice.currency)))

    def next_page() -> float:
        pdf.add_page()
        return 60.0

    y = pdf.table(table, y, bottom=_BOTTOM, new_page=next_page)
    rows: list[tuple[str | None, str, str, bool]] = [(None, loc.t("net"), loc.money(invoice.net, invoice.currency),
                                                      False)]
    rows += [(None, loc.t("tax", rate=loc.rate(t.rate_bp)), loc.money(t.tax, invoice.currency), False)
             for t in invoice.taxes]
    rows.append((None, loc.t("total"), loc.money(invoice.gross, invoice.currency), True))
    if invoice.amount_paid:
        rows.append((None, loc.t("paid"), loc.money(invoice.amount_paid, invoice.currency), False))
        rows.append((None, loc.t("balance_due"), loc.money(invoice.balance, invoice.currency), True))
    if y + 16 * len(rows) + 60 > _BOTTOM:
        y = next_page()
    y = pdf.totals(rows, y + 4) + 14
    if company.iban:
        pay = [(loc.t("pay_to"), company.name), (loc.t("iban"), company.iban),
               *([("BIC", company.bic)] if company.bic else []), (loc.t("reference"), invoice.number)]
        pdf.pairs(MARGIN, y, width, pay, label_w=110)
    pages = pdf.page
    for number in range(1, pages + 1):
        pdf.page = number
        pdf.page_footer(number, pages, f"{company.name} · {invoice.number}")
    return pdf.to_bytes()
