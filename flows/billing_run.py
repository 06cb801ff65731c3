"""The billing run: every subscription whose next period has started gets exactly one
invoice for it, however often the run is started, and also when two runs overlap.

Set-based, in batches of subscriptions, one transaction each:
  1. take the due subscriptions, locked (FOR UPDATE SKIP LOCKED on PostgreSQL: a
     concurrent run takes other rows; a row it waited for is re-checked and skipped
     once its next period moved on);
  2. take one block of invoice numbers per series for the whole batch (a single
     counter update: numbers stay gapless and in order, a rollback returns them);
  3. INSERT the invoices, their lines and the periods with ON CONFLICT DO NOTHING on
     (invoice purpose) and (subscription, period start) — the database's own guarantee
     of one invoice per subscription and period;
  4. move each subscription on to its next period; write an `invoice.issued` event and
     the `invoice.deliver` and `payment.collect` outbox rows per invoice.

Periods are dates in the company's time zone (CLOSELOOP_TIMEZONE), computed from the
anchor (Jan 31 -> Feb 29 -> Mar 31), so daylight-saving changes cannot move them.

A subscription that would get more than `billing_max_invoices_per_day` invoices in one
day (a runaway: wrong anchor, a clock jump) is parked instead and raised as an alert."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from flows.billing import Subscription, SubscriptionPeriod, SubscriptionStatus, period_bounds
from flows.errors import LedgerError
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus, NumberSeries, invoice_delivery
from flows.ledger import Ledger, Tx
from flows.licenses import License, LicenseStatus
from flows.money import document_totals, line_net
from flows.parties import Contact, ContactRole, Customer

DEFAULT_BATCH = 2000


@dataclass
class BillingRun:
    as_of: date
    invoices: int = 0
    parked: int = 0
    ended: int = 0
    batches: int = 0
    skipped: str | None = None  # why nothing was billed (external invoicing)
    numbers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.skipped:
            return f"billing run for {self.as_of}: {self.skipped}"
        return (f"billing run for {self.as_of}: {self.invoices} invoices, {self.parked} parked, "
                f"{self.ended} ended")


class BillingConflict(LedgerError):
    """Another writer billed a period this batch had locked: cannot happen while the
    locks hold; the batch is rolled back (its numbers returned) rather than leave a gap."""


def local_today(ledger: Ledger) -> date:
    return ledger.clock.now().astimezone(ZoneInfo(ledger.policy.timezone)).date()


def run_billing(ledger: Ledger, as_of: date | None = None, *, batch: int = DEFAULT_BATCH,
                keep_numbers: bool = False) -> BillingRun:
    """Bill every period that has started by `as_of` (default: today in the company's
    time zone). Idempotent; safe to run concurrently with itself."""
    as_of = as_of or local_today(ledger)
    result = BillingRun(as_of)
    if ledger.policy.invoicing == "external":
        result.skipped = "invoicing is external (the accounting system bills; closeloop links its invoices)"
        return result
    while True:
        done = ledger.run(bill_batch, as_of, batch)
        if done.seen == 0:
            return result
        result.batches += 1
        result.invoices += len(done.numbers)
        result.parked += done.parked
        result.ended += done.ended
        if keep_numbers:
            result.numbers.extend(done.numbers)


def billing_tick(ledger: Ledger) -> BillingRun:
    """What the beat clock calls (daily, or more often: a tick that finds nothing due
    costs one indexed query)."""
    return run_billing(ledger)


@dataclass
class BatchResult:
    seen: int = 0
    parked: int = 0
    ended: int = 0
    numbers: list[str] = field(default_factory=list)


_S = Subscription.__table__
_DUE_COLUMNS = (_S.c.id, _S.c.deal_id, _S.c.customer_id, _S.c.sku_id, _S.c.quantity, _S.c.unit_amount,
                _S.c.tax_rate_bp, _S.c.currency, _S.c.interval, _S.c.anchor, _S.c.status, _S.c.ends_on,
                _S.c.next_index, _S.c.next_start, _S.c.payment_terms_days, _S.c.description, _S.c.credit,
                _S.c.billed_on, _S.c.billed_today)
_BILLABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELLING)


def bill_batch(tx: Tx, as_of: date, limit: int, *, subscription_id: int | None = None) -> BatchResult:
    """One batch of due subscriptions, one period each (a subscription further behind
    comes back in the next batch, up to the daily bound). With subscription_id, that
    one only (the "issue invoice" button of a period-not-invoiced gap)."""
    connection = tx.session.connection()
    due = select(*_DUE_COLUMNS).where(_S.c.status.in_(_BILLABLE), _S.c.next_start <= as_of)
    if subscription_id is not None:
        due = due.where(_S.c.id == subscription_id)
    rows = connection.execute(due.order_by(_S.c.id).limit(limit).with_for_update(skip_locked=True)).all()
    result = BatchResult(seen=len(rows))
    if not rows:
        return result
    day = tx.now.astimezone(ZoneInfo(tx.policy.timezone)).date()
    bound = tx.policy.billing_max_invoices_per_day
    billable, moves = [], []
    for row in rows:
        if row.status is SubscriptionStatus.CANCELLING and row.ends_on is not None and row.next_start >= row.ends_on:
            moves.append(_end(tx, row))
            result.ended += 1
            continue
        today_count = (row.billed_today if row.billed_on == day else 0) + 1
        if today_count > bound:
            moves.append(_park(tx, row, bound, day))
            result.parked += 1
            continue
        billable.append((row, today_count))
    if billable:
        result.numbers = _issue(tx, connection, billable, day, moves)
    _move_on(connection, moves)
    return result


def _move_on(connection: Connection, moves: list[dict[str, Any]]) -> None:
    """The subscriptions' new state, one executemany per shape of change."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for move in moves:
        shapes.setdefault(tuple(sorted(k for k in move if k != "sid")), []).append(
            {("v_" + k if k != "sid" else k): v for k, v in move.items()})
    for columns, params in shapes.items():
        statement = update(_S).where(_S.c.id == bindparam("sid")).values(
            {c: bindparam("v_" + c, type_=_S.c[c].type) for c in columns})
        connection.execute(statement, params)


def _issue(tx: Tx, connection: Connection, billable: list[tuple[Any, int]], day: date,
           moves: list[dict[str, Any]]) -> list[str]:
    series = tx.policy.invoice_series.format(year=day.year)
    first = take_numbers(connection, series, len(billable))
    contacts = _billing_contacts(connection, {row.customer_id for row, _ in billable})
    invoices, lines, staged = [], [], []
    for offset, (row, today_count) in enumerate(billable):
        start, end = row.next_start, period_bounds(row.anchor, row.interval, row.next_index)[1]
        net = line_net(row.unit_amount, row.quantity)
        credit = min(row.credit, net)
        period_lines = [(1, row.sku_id, row.description or "Subscription", row.quantity, row.unit_amount, net,
                         start, end)]
        if credit:
            period_lines.append((2, None, "Credit for seats removed last period", 1, -credit, -credit, None, None))
        totals = document_totals(row.currency, ((line[5], row.tax_rate_bp) for line in period_lines))
        sequence = first + offset
        number = f"{series}-{sequence:06d}"
        key = f"period:{row.id}:{start.isoformat()}"
        invoices.append({
            "deal_id": row.deal_id, "customer_id": row.customer_id, "purpose_key": key,
            "status": InvoiceStatus.ISSUED, "currency": row.currency, "net": totals.net, "tax": totals.tax,
            "amount_paid": 0, "series": series, "sequence": sequence, "number": number,
            "payment_terms_days": row.payment_terms_days, "created_at": tx.now, "issued_at": tx.now,
            "due_on": day + timedelta(days=row.payment_terms_days)})
        staged.append((row, key, number, start, end, period_lines, totals.gross, credit))
        moves.append({"sid": row.id, "next_index": row.next_index + 1, "next_start": end,
                      "credit": row.credit - credit, "billed_on": day, "billed_today": today_count})
    inserted = connection.execute(
        _upsert(connection, Invoice.__table__).values().on_conflict_do_nothing(index_elements=["purpose_key"])
        .returning(Invoice.__table__.c.id, Invoice.__table__.c.purpose_key), invoices).all()
    ids = {key: ident for ident, key in inserted}
    if len(ids) != len(invoices):
        raise BillingConflict(f"{len(invoices) - len(ids)} periods were billed by another writer meanwhile")
    periods = []
    for row, key, number, start, end, period_lines, gross, credit in staged:
        invoice_id = ids[key]
        periods.append({"subscription_id": row.id, "index": row.next_index, "start": start, "end": end,
                        "invoice_id": invoice_id})
        for position, sku_id, text, quantity, unit, net, p_start, p_end in period_lines:
            lines.append({"invoice_id": invoice_id, "position": position, "sku_id": sku_id, "description": text,
                          "quantity": _decimal(quantity), "unit_amount": unit, "tax_rate_bp": row.tax_rate_bp,
                          "net": net, "period_start": p_start, "period_end": p_end})
        _announce_invoice(tx, row, invoice_id, number, start, end, gross, credit, contacts.get(row.customer_id))
    _extend_licenses(tx, connection, staged)
    connection.execute(insert(InvoiceLine.__table__), lines)
    connection.execute(_upsert(connection, SubscriptionPeriod.__table__).values()
                       .on_conflict_do_nothing(index_elements=["subscription_id", "start"]), periods)
    return [invoice["number"] for invoice in invoices]


def _extend_licenses(tx: Tx, connection: Connection, staged: list[Any]) -> None:
    """A renewed period renews the license it pays for: valid to the new period end, and
    re-provisioned (a fresh key). One query finds them for the whole batch."""
    ends = {(row.deal_id, row.sku_id): (end, start) for row, _, _, start, end, *_ in staged}
    table, zone = License.__table__, ZoneInfo(tx.policy.timezone)
    found = connection.execute(select(table.c.id, table.c.deal_id, table.c.sku_id, table.c.product).where(
        table.c.deal_id.in_(sorted({deal for deal, _ in ends})), table.c.status != LicenseStatus.REVOKED)).all()
    for license_id, deal_id, sku_id, product in found:
        if (deal_id, sku_id) not in ends:
            continue
        end, start = ends[(deal_id, sku_id)]
        connection.execute(update(table).where(table.c.id == license_id)
                           .values(valid_until=datetime.combine(end, time(), zone)))
        tx.enqueue("license.provision", {"deal_id": deal_id, "product": product, "status": "renewed"},
                   key=f"license.provision:{deal_id}:{product}:period:{start.isoformat()}", deal_id=deal_id)


def take_numbers(connection: Connection, series: str, count: int) -> int:
    """Take `count` consecutive numbers of a series in one statement; returns the first.
    The counter row stays locked until commit (concurrent batches queue behind it)."""
    table = NumberSeries.__table__
    statement = _upsert(connection, table).values(series=series, next_value=count + 1)
    after = connection.execute(
        statement.on_conflict_do_update(index_elements=[table.c.series],
                                        set_={"next_value": table.c.next_value + count})
        .returning(table.c.next_value)).scalar_one()
    return int(after) - count


def _announce_invoice(tx: Tx, row: Any, invoice_id: int, number: str, start: date, end: date, gross: int,
                      credit: int, contact: tuple[str, str, str | None] | None) -> None:
    name, language, email = contact or ("", "en", None)
    tx.record("invoice.issued", deal_id=row.deal_id, customer_id=row.customer_id, invoice=number, gross=gross,
              period_start=start.isoformat(), period_end=end.isoformat(), subscription=row.id,
              **({"credit": credit} if credit else {}))
    tx.enqueue("invoice.deliver", invoice_delivery(invoice_id, number, customer=name, language=language, to=email),
               key=f"invoice.deliver:{number}", deal_id=row.deal_id)
    tx.enqueue("payment.collect", {"invoice": number, "invoice_id": invoice_id},
               key=f"payment.collect:{number}", deal_id=row.deal_id)


def _park(tx: Tx, row: Any, bound: int, day: date) -> dict[str, Any]:
    text = (f"Subscription {row.id} parked: it would get more than {bound} invoices on {day} "
            f"(next period {row.next_start}); billing stops until someone resumes it")
    announce_ids(tx, row.deal_id, row.customer_id, "subscription.parked", text, subscription=row.id,
                 next_start=row.next_start.isoformat(), bound=bound)
    tx.enqueue("slack.alert", {"text": text, "subscription": row.id, "deal_id": row.deal_id},
               key=f"slack.alert:subscription.parked:{row.id}:{row.next_start.isoformat()}", deal_id=row.deal_id)
    return {"sid": row.id, "status": SubscriptionStatus.PARKED}


def _end(tx: Tx, row: Any) -> dict[str, Any]:
    announce_ids(tx, row.deal_id, row.customer_id, "subscription.ended",
                 f"Subscription {row.id} ended on {row.ends_on} as cancelled", subscription=row.id,
                 ends_on=row.ends_on.isoformat())
    return {"sid": row.id, "status": SubscriptionStatus.CANCELLED, "next_start": None}


def announce_ids(tx: Tx, deal_id: int, customer_id: int, kind: str, text: str, **data: Any) -> str:
    """`steps.announce` for a batch that holds ids, not loaded deals."""
    uid = tx.record(kind, deal_id=deal_id, customer_id=customer_id, **data)
    tx.enqueue("slack.deal_thread", {"deal_id": deal_id, "event": uid, "kind": kind, "text": text, "data": data},
               key=f"slack.deal_thread:{uid}", deal_id=deal_id)
    return uid


def _billing_contacts(connection: Connection, customer_ids: set[int]) -> dict[int, tuple[str, str, str | None]]:
    """customer id -> (name, language, billing email or None), for the batch in one query."""
    rows = connection.execute(
        select(Customer.id, Customer.name, Customer.language, Contact.email)
        .outerjoin(Contact, (Contact.customer_id == Customer.id) & (Contact.role == ContactRole.BILLING)
                   & Contact.bounced_at.is_(None))
        .where(Customer.id.in_(customer_ids)).order_by(Customer.id, Contact.id.desc()))
    return {cid: (name, language, email) for cid, name, language, email in rows}


def _upsert(connection: Connection, table: Any) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


def _decimal(quantity: Any) -> Any:
    from decimal import Decimal
    return quantity if isinstance(quantity, Decimal) else Decimal(quantity)

