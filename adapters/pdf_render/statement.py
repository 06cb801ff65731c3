"""A customer's statement of account: the opening balance, every invoice and payment
of the period with the running balance, and the closing balance."""
from __future__ import annotations

from adapters.pdf_render.layout import CONTENT_WIDTH, MARGIN, Column, Company, DocumentPdf, Locale, Table
from flows.documents import StatementDocument

_BOTTOM = 770.0


def render_statement(statement: StatementDocument, company: Company = Company()) -> bytes:
    loc = Locale(statement.language)
    pdf = DocumentPdf(loc, company)
    pdf.set_title(f"{loc.t('statement')}: {statement.customer.name}")
    pdf.add_page()
    y = pdf.letterhead()
    pdf.put(MARGIN, y, CONTENT_WIDTH, 20, loc.t("statement"), size=16, bold=True)
    y = pdf.pairs(MARGIN, y + 26, CONTENT_WIDTH, [
        (loc.t("customer"), statement.customer.name),
        (loc.t("period"), f"{loc.date(statement.start)} – {loc.date(statement.end)}"),
        (loc.t("currency"), statement.currency)]) + 12
    money = lambda amount: loc.money(amount, statement.currency) if amount else ""  # noqa: E731
    table = Table(columns=(Column("date", 80.0), Column("what", 191.28), Column("debit", 80.0, "R"),
                           Column("credit", 80.0, "R"), Column("balance", 80.0, "R")),
                  header=(loc.t("date"), loc.t("description"), loc.t("debit"), loc.t("credit"), loc.t("balance")))
    table.rows.append((loc.date(statement.start), loc.t("opening_balance"), "", "",
                       loc.money(statement.opening, statement.currency)))
    for entry in statement.entries:
        what = f"{loc.t('invoice') if entry.kind == 'invoice' else loc.t('payment')} {entry.reference}"
        table.rows.append((loc.date(entry.on), what, money(entry.debit), money(entry.credit),
                           loc.money(entry.balance, statement.currency)))
    table.rows.append((loc.date(statement.end), loc.t("closing_balance"), "", "",
                       loc.money(statement.closing, statement.currency)))

    def next_page() -> float:
        pdf.add_page()
        return 60.0

    pdf.table(table, y, bottom=_BOTTOM, new_page=next_page)
    pages = pdf.page
    for number in range(1, pages + 1):
        pdf.page = number
        pdf.page_footer(number, pages, f"{company.name} · {statement.customer.name}")
    return pdf.to_bytes()
