"""External accounting mode (CLOSELOOP_INVOICING=external): the company's accounting
system issues the invoices and mails their PDFs to the finance inbox. Each extracted
invoice is linked to its deal by references (quote or deal number in the text),
customer (VAT id or name) and amount, and the link is posted to the deal thread.

An invoice that matches no deal is kept with status "unmatched": the gap rules read
`external_invoices.status = 'unmatched'` ("external invoice not matched")."""
from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from flows.base import Base, Id, enum_column
from flows.deals import Deal, Stage
from flows.errors import InvalidInput
from flows.ledger import Tx
from flows.money import Money
from flows.parties import Customer
from flows.quotes import Quote
from flows.steps import announce


class ExternalInvoiceStatus(enum.Enum):
    MATCHED = "matched"
    UNMATCHED = "unmatched"  # a gap: an invoice the accounting system issued for no deal we know


class ExternalInvoiceRecord(Base):
    __tablename__ = "external_invoices"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(300), unique=True)  # message id + attachment: once each
    number: Mapped[str | None] = mapped_column(String(64))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    vat_id: Mapped[str | None] = mapped_column(String(64))
    gross: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    issue_date: Mapped[date | None]
    due_date: Mapped[date | None]
    status: Mapped[ExternalInvoiceStatus] = mapped_column(enum_column(ExternalInvoiceStatus), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    match_reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


@dataclass(frozen=True)
class ExternalInvoice:
    """The fields the documents issue extracts from an invoice PDF (all optional but the
    source; amounts in minor units)."""

    source: str
    number: str | None = None
    customer_name: str | None = None
    vat_id: str | None = None
    gross: int | None = None
    currency: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    text: str = ""  # searched for quote and deal numbers
    references: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ExternalInvoiceLink:
    record_id: int
    deal_id: int | None
    reason: str


# Stages in which a deal expects an invoice from the accounting system.
_INVOICEABLE = (Stage.SIGNED, Stage.WON, Stage.INVOICED, Stage.LICENSED, Stage.BILLING_ACTIVE)
_TOKEN = re.compile(r"\b[A-Z][A-Z0-9]{0,9}(?:-[A-Z0-9]{1,10})+\b")
_LEGAL_FORMS = re.compile(r"\b(gmbh|ag|ltd|limited|inc|llc|sa|sas|sarl|bv|nv|spa|srl|sp z o o|oy|ab|as|plc|co|kg)\b")


def link_external_invoice(tx: Tx, extracted: ExternalInvoice) -> ExternalInvoiceLink:
    """Link an invoice from the accounting system to its deal, once per source."""
    if not extracted.source.strip():
        raise InvalidInput("an external invoice needs its source (message id and attachment)")
    earlier = tx.session.scalar(select(ExternalInvoiceRecord).where(ExternalInvoiceRecord.source == extracted.source))
    if earlier is not None:
        return ExternalInvoiceLink(earlier.id, earlier.deal_id, earlier.match_reason)
    deal, reason = _match(tx, extracted)
    record = ExternalInvoiceRecord(
        source=extracted.source, number=extracted.number, customer_name=extracted.customer_name,
        vat_id=extracted.vat_id, gross=extracted.gross, currency=extracted.currency,
        issue_date=extracted.issue_date, due_date=extracted.due_date, deal_id=deal.id if deal else None,
        status=ExternalInvoiceStatus.MATCHED if deal else ExternalInvoiceStatus.UNMATCHED,
        match_reason=reason, received_at=tx.now)
    tx.session.add(record)
    tx.session.flush()
    label = extracted.number or extracted.source
    amount = (f" for {Money(extracted.gross, extracted.currency)}"
              if extracted.gross is not None and extracted.currency else "")
    if deal is not None:
        announce(tx, deal, "invoice.external_linked",
                 f"Invoice {label}{amount} from the accounting system linked to {deal.reference} ({reason})",
                 invoice=extracted.number, source=extracted.source, gross=extracted.gross, reason=reason)
    else:
        tx.record("invoice.external_unmatched", deal_id=None, customer_id=None, invoice=extracted.number,
                  source=extracted.source, gross=extracted.gross, reason=reason)
    return ExternalInvoiceLink(record.id, record.deal_id, reason)


def _match(tx: Tx, inv: ExternalInvoice) -> tuple[Deal | None, str]:
    tokens = set(_TOKEN.findall(f"{inv.text}\n" + "\n".join(inv.references)))
    tokens |= {t.strip() for t in inv.references if t.strip()}
    by_reference: dict[int, Deal] = {}
    deal_ids = {int(t[2:]) for t in tokens if re.fullmatch(r"D-\d{1,12}", t)}
    quoted = select(Quote.deal_id).where(Quote.number.in_(tokens)) if tokens else None
    if deal_ids or quoted is not None:
        conditions = [Deal.id.in_(deal_ids)] if deal_ids else []
        if quoted is not None:
            conditions.append(Deal.id.in_(quoted))
        for deal in tx.session.scalars(select(Deal).where(or_(*conditions), Deal.stage.in_(_INVOICEABLE))):
            by_reference[deal.id] = deal
    customers = _customers(tx, inv)
    candidates = {d.id: d for d in tx.session.scalars(
        select(Deal).where(Deal.customer_id.in_(customers), Deal.stage.in_(_INVOICEABLE)))} if customers else {}

    def amount_fits(deal: Deal) -> bool:
        return inv.gross == deal.amount and (inv.currency or deal.currency).upper() == deal.currency

    confirmed = [d for d in by_reference.values() if d.customer_id in customers or amount_fits(d)]
    if len(confirmed) == 1:
        d = confirmed[0]
        also = "customer" if d.customer_id in customers else "amount"
        return d, f"reference {d.reference if f'D-{d.id}' in tokens else 'to its quote'} and {also}"
    by_amount = [d for d in candidates.values() if amount_fits(d)]
    if len(by_amount) == 1:
        return by_amount[0], "customer and amount"
    if len(confirmed) > 1 or len(by_amount) > 1:
        return None, f"ambiguous: {len(confirmed) or len(by_amount)} deals fit"
    if by_reference:
        return None, "the reference names a deal whose customer and amount do not fit"
    if candidates:
        return None, "the customer has deals but none with this amount"
    return None, "no customer with this VAT id or name"


def _customers(tx: Tx, inv: ExternalInvoice) -> set[int]:
    found: set[int] = set()
    if inv.vat_id:
        vat = _vat(inv.vat_id)
        for cid, tax_id in tx.session.execute(select(Customer.id, Customer.tax_id).where(Customer.tax_id.is_not(None))):
            if _vat(tax_id) == vat:
                found.add(cid)
    if not found and inv.customer_name:
        name = _name(inv.customer_name)  # a small company's customers: compared in Python
        found |= {cid for cid, cname in tx.session.execute(select(Customer.id, Customer.name))
                  if name and _name(cname) == name}
    return found


def _vat(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _name(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    plain = re.sub(r"[^a-z0-9]+", " ", plain)
    return " ".join(_LEGAL_FORMS.sub(" ", plain).split())
