"""What a customer-facing document says, read from the ledger: a quote version, an
invoice, a customer's aging and statement of account. Plain frozen records (no ORM
objects), so the session is closed before anything is rendered; the renderers in
adapters/pdf_render turn them into PDFs and never query anything themselves."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from flows.billing import Payment
from flows.errors import NotFound
from flows.finance_views import AGING_BUCKETS, NOT_DUE, aging
from flows.invoices import Invoice, InvoiceStatus
from flows.money import TaxLine, document_totals
from flows.parties import ContactRole, Customer
from flows.quotes import Quote, QuoteVersion


@dataclass(frozen=True)
class Party:
    name: str
    country: str
    tax_id: str | None
    contact_name: str | None = None
    contact_email: str | None = None


@dataclass(frozen=True)
class DocumentLine:
    position: int
    description: str
    quantity: Decimal
    unit_amount: int
    tax_rate_bp: int
    net: int                      # after any discount, minor units
    code: str | None = None       # the SKU code
    period_start: date | None = None
    period_end: date | None = None  # exclusive


@dataclass(frozen=True)
class QuoteDocument:
    number: str
    version: int
    current_version: int
    content_hash: str
    currency: str
    language: str
    customer: Party
    signer: Party | None          # the contact expected to sign
    lines: tuple[DocumentLine, ...]
    taxes: tuple[TaxLine, ...]
    net: int
    tax: int
    discount_bp: int
    issued_on: date
    valid_until: date
    payment_terms_days: int

    @property
    def gross(self) -> int:
        return self.net + self.tax


@dataclass(frozen=True)
class InvoiceDocument:
    number: str
    status: InvoiceStatus
    currency: str
    language: str
    customer: Party
    lines: tuple[DocumentLine, ...]
    taxes: tuple[TaxLine, ...]
    net: int
    tax: int
    amount_paid: int
    issued_on: date
    due_on: date
    payment_terms_days: int
    quote_number: str | None

    @property
    def gross(self) -> int:
        return self.net + self.tax

    @property
    def balance(self) -> int:
        return self.gross - self.amount_paid


@dataclass(frozen=True)
class AgingRow:
    number: str
    issued_on: date | None
    due_on: date | None
    days_overdue: int
    bucket: str                   # NOT_DUE or an AGING_BUCKETS label
    balance: int
    currency: str


@dataclass(frozen=True)
class AgingDocument:
    customer: Party
    language: str
    as_of: date
    rows: tuple[AgingRow, ...]               # longest overdue first
    totals: tuple[tuple[str, str, int], ...]  # (bucket, currency, balance), buckets in order


@dataclass(frozen=True)
class StatementEntry:
    on: date
    kind: str                     # "invoice" or "payment"
    reference: str
    debit: int                    # what the customer owes more (an invoice)
    credit: int                   # what they paid
    balance: int                  # running balance after this entry


@dataclass(frozen=True)
class StatementDocument:
    customer: Party
    language: str
    currency: str
    start: date
    end: date                     # inclusive
    opening: int
    entries: tuple[StatementEntry, ...]
    closing: int


def quote_document(session: Session, number: str, version: int | None = None) -> QuoteDocument:
    """A quote as sent (its current version unless `version` names another)."""
    quote = session.scalar(select(Quote).where(Quote.number == number)
                           .options(selectinload(Quote.versions).selectinload(QuoteVersion.lines)))
    if quote is None:
        raise NotFound("quote", number)
    wanted = quote.current_version if version is None else version
    row = next((v for v in quote.versions if v.version == wanted), None)
    if row is None:
        raise NotFound("quote version", f"{number} v{wanted}")
    customer = session.get(Customer, quote.customer_id)
    assert customer is not None  # a foreign key
    signer = customer.contact(ContactRole.SIGNER)
    lines = tuple(DocumentLine(l.position, l.description, l.quantity, l.unit_amount, l.tax_rate_bp, l.net,
                               code=l.sku.code) for l in row.lines)
    totals = document_totals(quote.currency, ((l.net, l.tax_rate_bp) for l in lines))
    return QuoteDocument(
        number=quote.number, version=row.version, current_version=quote.current_version,
        content_hash=row.content_hash, currency=quote.currency, language=customer.language,
        customer=_party(customer), signer=Party(signer.name, customer.country, None, signer.name, signer.email)
        if signer else None, lines=lines, taxes=totals.taxes, net=row.net, tax=row.tax,
        discount_bp=row.discount_bp, issued_on=(row.sent_at or row.created_at).date(), valid_until=row.valid_until,
        payment_terms_days=row.payment_terms_days)


def invoice_document(session: Session, number: str) -> InvoiceDocument:
    invoice = session.scalar(select(Invoice).where(Invoice.number == number).options(selectinload(Invoice.lines)))
    if invoice is None or invoice.issued_at is None or invoice.due_on is None:
        raise NotFound("issued invoice", number)
    customer = session.get(Customer, invoice.customer_id)
    assert customer is not None
    billing = customer.contact(ContactRole.BILLING)
    quote = session.scalar(select(Quote.number).where(Quote.deal_id == invoice.deal_id)) if invoice.deal_id else None
    lines = tuple(DocumentLine(l.position, l.description, l.quantity, l.unit_amount, l.tax_rate_bp, l.net,
                               period_start=l.period_start, period_end=l.period_end) for l in invoice.lines)
    totals = document_totals(invoice.currency, ((l.net, l.tax_rate_bp) for l in lines))
    return InvoiceDocument(
        number=number, status=invoice.status, currency=invoice.currency, language=customer.language,
        customer=_party(customer, billing.name if billing else None, billing.email if billing else None),
        lines=lines, taxes=totals.taxes, net=invoice.net, tax=invoice.tax, amount_paid=invoice.amount_paid,
        issued_on=invoice.issued_at.date(), due_on=invoice.due_on, payment_terms_days=invoice.payment_terms_days,
        quote_number=quote)


def aging_document(session: Session, customer_id: int, today: date) -> AgingDocument:
    """One customer's open invoices by bucket (the same query App Home shows)."""
    customer = _customer(session, customer_id)
    view = aging(session, today, customer_id=customer_id, limit=10_000)
    rows = tuple(AgingRow(i.number, i.issued_at.date() if i.issued_at else None, i.due_on, i.days_overdue,
                          _bucket_of(i.days_overdue), i.balance.amount, i.balance.currency)
                 for i in view.invoices.items)
    totals = tuple((b.label, m.currency, m.amount) for b in view.buckets for m in b.totals)
    return AgingDocument(_party(customer), customer.language, today, rows, totals)


def all_customers_aging_document(session: Session, today: date, *, title: str = "All customers") -> AgingDocument:
    """Every customer's open invoices by bucket: the aging report the daily gap digest attaches."""
    view = aging(session, today, limit=10_000)
    rows = tuple(AgingRow(i.number, i.issued_at.date() if i.issued_at else None, i.due_on, i.days_overdue,
                          _bucket_of(i.days_overdue), i.balance.amount, i.balance.currency)
                 for i in view.invoices.items)
    totals = tuple((b.label, m.currency, m.amount) for b in view.buckets for m in b.totals)
    return AgingDocument(Party(title, "", None), "en", today, rows, totals)


def statement_document(session: Session, customer_id: int, start: date, end: date) -> StatementDocument:
    """Opening balance at `start`, every invoice and payment from `start` to `end`
    (inclusive), closing balance. One currency: the customer's."""
    customer = _customer(session, customer_id)
    currency = customer.currency
    numbered = (InvoiceStatus.ISSUED, InvoiceStatus.PAID)
    invoices = list(session.execute(
        select(Invoice.issued_at, Invoice.number, Invoice.net + Invoice.tax)
        .where(Invoice.customer_id == customer_id, Invoice.status.in_(numbered), Invoice.currency == currency)))
    payments = list(session.execute(
        select(Payment.received_at, Payment.reference, Payment.amount, Invoice.number)
        .join(Invoice, Payment.invoice_id == Invoice.id)
        .where(Invoice.customer_id == customer_id, Payment.currency == currency)))
    moves = sorted([(at.date(), 0, "invoice", number, gross, 0) for at, number, gross in invoices]
                   + [(at.date(), 1, "payment", f"{ref} ({number})", 0, amount)
                      for at, ref, amount, number in payments])
    opening = sum(d - c for on, _, _, _, d, c in moves if on < start)
    balance, entries = opening, []
    for on, _, kind, reference, debit, credit in moves:
        if start <= on <= end:
            balance += debit - credit
            entries.append(StatementEntry(on, kind, reference, debit, credit, balance))
    return StatementDocument(_party(customer), customer.language, currency, start, end, opening,
                             tuple(entries), balance)


def customer_named(session: Session, text: str) -> int:
    """A customer by id or exact name (case-insensitive)."""
    if text.isdigit():
        return _customer(session, int(text)).id
    found = session.scalar(select(Customer.id).where(func.lower(Customer.name) == text.strip().lower())
                           .order_by(Customer.id).limit(1))
    if found is None:
        raise NotFound("customer", text)
    return found


def _bucket_of(days_overdue: int) -> str:
    for label, (low, high) in AGING_BUCKETS.items():
        if days_overdue >= low and (high is None or days_overdue <= high):
            return label
    return NOT_DUE


def _customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("customer", customer_id)
    return customer


def _party(customer: Customer, contact: str | None = None, email: str | None = None) -> Party:
    return Party(customer.name, customer.country, customer.tax_id, contact, email)


__all__ = ["AgingDocument", "AgingRow", "DocumentLine", "InvoiceDocument", "Party", "QuoteDocument",
           "StatementDocument", "StatementEntry", "aging_document", "all_customers_aging_document", "customer_named", "invoice_document",
           "quote_document", "statement_document"]
