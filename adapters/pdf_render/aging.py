"""A customer's aging report for collections: open invoices by how long past due they
are (not due, 0-30, 31-60, 61-90, 90+ days), with the balance per bucket."""
from __future__ import annotations

from adapters.pdf_render.layout import CONTENT_WIDTH, MARGIN, Column, Company, DocumentPdf, Locale, Table
from flows.documents import AgingDocument
from flows.finance_views import AGING_BUCKETS, NOT_DUE

_BOTTOM = 770.0


def bucket_label(loc: Locale, bucket: str) -> str:
    return loc.t("not_due") if bucket == NOT_DUE else loc.t("bucket_days", days=bucket)


def render_aging(report: AgingDocument, company: Company = Company()) -> bytes:
    loc = Locale(report.language)
    pdf = DocumentPdf(loc, company)
    pdf.set_title(f"{loc.t('aging_report')}: {report.customer.name}")
    pdf.add_page()
    y = pdf.letterhead()
    pdf.put(MARGIN, y, CONTENT_WIDTH, 20, loc.t("aging_report"), size=16, bold=True)
    y = pdf.pairs(MARGIN, y + 26, CONTENT_WIDTH, [(loc.t("customer"), report.customer.name),
                                                  (loc.t("as_of"), loc.date(report.as_of))]) + 12

    def next_page() -> float:
        pdf.add_page()
        return 60.0

    summary = Table(columns=(Column("bucket", 200.0), Column("currency", 100.0), Column("balance", 211.28, "R")),
                    header=(loc.t("bucket"), loc.t("currency"), loc.t("open_balance")))
    order = [NOT_DUE, *AGING_BUCKETS]
    for bucket, currency, amount in sorted(report.totals, key=lambda t: (order.index(t[0]), t[1])):
        summary.rows.append((bucket_label(loc, bucket), currency, loc.money(amount, currency)))
    y = pdf.table(summary, y, bottom=_BOTTOM, new_page=next_page) + 16

    table = Table(columns=(Column("number", 130.0), Column("issued", 80.0), Column("due", 80.0),
                           Column("days", 70.0, "R"), Column("bucket", 60.0), Column("balance", 91.28, "R")),
                  header=(loc.t("invoice"), loc.t("issue_date"), loc.t("due_date"), loc.t("days_overdue"),
                          loc.t("bucket"), loc.t("open_balance")))
    for row in report.rows:
        table.rows.append((row.number, loc.date(row.issued_on), loc.date(row.due_on), str(row.days_overdue),
                           bucket_label(loc, row.bucket), loc.money(row.balance, row.currency)))
    pdf.table(table, y, bottom=_BOTTOM, new_page=next_page)
    pages = pdf.page
    for number in range(1, pages + 1):
        pdf.page = number
        pdf.page_footer(number, pages, f"{company.name} · {report.customer.name}")
    return pdf.to_bytes()
