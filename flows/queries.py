"""Read-side questions about the ledger (no changes): find a deal, its timeline."""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.deals import Deal
from flows.errors import InvalidInput, NotFound
from flows.invoices import Invoice, InvoiceStatus
from flows.outbox import OutboxMessage, OutboxStatus
from flows.quotes import Quote
from flows.timeline import Event


def find_deal(session: Session, ref: str) -> Deal:
    """A deal by its reference (D-12 or 12), or by a quote (Q-2026-0042) or invoice number."""
    ref = ref.strip()
    match = re.fullmatch(r"(?i)d-?(\d+)|(\d+)", ref)
    if match:
        deal = session.get(Deal, int(match.group(1) or match.group(2)))
    elif ref:
        deal = session.scalar(select(Deal).join(Quote).where(Quote.number == ref.upper()))
        if deal is None:
            deal = session.scalar(select(Deal).join(Invoice, Invoice.deal_id == Deal.id)
                                  .where(Invoice.number == ref.upper()))
    else:
        raise InvalidInput("give a deal (D-12), quote (Q-2026-0042) or invoice number")
    if deal is None:
        raise NotFound("deal, quote or invoice", ref)
    return deal


def timeline(session: Session, deal_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.deal_id == deal_id).order_by(Event.id)))


def overdue_invoices(session: Session, today: date) -> list[Invoice]:
    return list(session.scalars(
        select(Invoice).where(Invoice.status == InvoiceStatus.ISSUED, Invoice.due_on < today)
        .order_by(Invoice.due_on)))


def outbox_messages(session: Session, status: OutboxStatus | None = None, limit: int = 200) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return list(session.scalars(query))
