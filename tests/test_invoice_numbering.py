"""Gapless invoice numbers: assigned at finalization, under a lock, returned on
rollback — so two workers racing never skip or repeat a number."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import select

from flows.deals import Stage
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus, NumberSeries
from flows.ledger import Tx
from flows.steps import Done, finalize_invoice, issue_invoice
from tests.factories import deal_at, seed


def _drafts(ledger, customer_id, count):
    """Draft invoices, as a manual or period invoice is before it is finalized."""
    def arrange(tx):
        invoices = []
        for n in range(count):
            invoice = Invoice(customer_id=customer_id, purpose_key=f"manual:{n}", status=InvoiceStatus.DRAFT,
                              currency="EUR", net=0, tax=0, amount_paid=0, payment_terms_days=14,
                              created_at=tx.now)
            invoice.lines.append(InvoiceLine(position=1, description="Consulting", quantity=Decimal(2),
                                             unit_amount=10000, tax_rate_bp=2000, net=20000))
            tx.session.add(invoice)
            invoices.append(invoice)
        tx.session.flush()
        return [i.id for i in invoices]
    return ledger.run(arrange)


def _numbers(ledger):
    return ledger.read(lambda s: sorted(
        (i.sequence, i.id) for i in s.scalars(select(Invoice).where(Invoice.sequence.is_not(None)))))


def _next_value(ledger):
    return ledger.read(lambda s: s.get(NumberSeries, "INV-2026").next_value)


def test_a_worker_racing_a_finalization_in_progress_waits_and_exits_cleanly(services, make_services):
    ledger = services.ledger
    invoice_id = _drafts(ledger, seed(ledger), 1)[0]
    other = make_services().ledger
    moments: dict[str, float] = {}
    results: list[Done] = []

    def loser() -> None:
        moments["loser_started"] = time.monotonic()
        results.append(other.run(finalize_invoice, invoice_id))
        moments["loser_done"] = time.monotonic()

    with ledger.sessions() as session:
        tx = Tx(session, ledger.clock.now(), ledger.policy)
        assert finalize_invoice(tx, invoice_id) is Done.ACTED  # holds the invoice and counter locks
        thread = threading.Thread(target=loser)
        thread.start()
        time.sleep(0.5)
        moments["winner_commit"] = time.monotonic()
        session.commit()
    thread.join(timeout=30)

    assert results == [Done.ALREADY]
    assert moments["loser_started"] < moments["winner_commit"] < moments["loser_done"], \
        "the loser did not overlap the winner's transaction"
    assert _numbers(ledger) == [(1, invoice_id)]
    assert _next_value(ledger) == 2


def test_two_workers_finalizing_the_same_invoices_number_them_without_gaps(services, make_services):
    ledger = services.ledger
    ids = _drafts(ledger, seed(ledger), 30)
    workers = [services.ledger, make_services().ledger]

    def work(worker_ledger, order):
        return [worker_ledger.run(finalize_invoice, invoice_id) for invoice_id in order]

    orders = [random.Random(seed_).sample(ids, len(ids)) for seed_ in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        outcomes = [o for batch in pool.map(work, workers, orders) for o in batch]

    assert outcomes.count(Done.ACTED) == 30 and outcomes.count(Done.ALREADY) == 30
    numbers = _numbers(ledger)
    assert [sequence for sequence, _ in numbers] == list(range(1, 31))
    assert sorted(invoice_id for _, invoice_id in numbers) == sorted(ids)
    assert _next_value(ledger) == 31


def test_a_rolled_back_finalization_gives_its_number_back(services):
    ledger = services.ledger
    first, second = _drafts(ledger, seed(ledger), 2)
    with ledger.sessions() as session:
        tx = Tx(session, ledger.clock.now(), ledger.policy)
        finalize_invoice(tx, first)
        session.rollback()  # e.g. the worker failed after numbering, before commit
    ledger.run(finalize_invoice, second)
    ledger.run(finalize_invoice, first)
    assert _numbers(ledger) == [(1, second), (2, first)]


def test_two_workers_invoicing_one_won_deal_create_one_invoice(services, make_services):
    ledger = services.ledger
    deals = [deal_at(ledger, seed(ledger), Stage.WON) for _ in range(10)]
    workers = [ledger, make_services().ledger]
    barrier = threading.Barrier(2)

    def work(worker_ledger):
        barrier.wait()
        return [worker_ledger.run(issue_invoice, deal) for deal in deals]

    with ThreadPoolExecutor(2) as pool:
        outcomes = [o for batch in pool.map(work, workers) for o in batch]
    assert outcomes.count(Done.ACTED) == 10
    per_deal = ledger.read(lambda s: sorted(i.deal_id for i in s.scalars(select(Invoice))))
    assert per_deal == sorted(deals)
    assert [n for n, _ in _numbers(ledger)] == list(range(1, 11))


def test_two_workers_deciding_one_discount_decide_it_once(services, make_services):
    """The second worker waits for the deal's lock and must then see the first one's
    decision: the deal's quote graph is read after the lock is taken, not with it."""
    from flows.quotes import Approval, QuoteVersion
    from flows.steps import LineRequest, approve_discount
    from flows.timeline import Event
    from tests.factories import quoted_deal

    ledger = services.ledger
    customer = seed(ledger)
    deals = [quoted_deal(ledger, customer, discount_bp=2500, lines=[LineRequest("SEAT", Decimal(3))])
             for _ in range(10)]
    workers = [ledger, make_services().ledger]
    barrier = threading.Barrier(2)

    def work(worker_ledger):
        barrier.wait()
        return [worker_ledger.run(approve_discount, deal, version=1, approver="U0MGR") for deal in deals]

    with ThreadPoolExecutor(2) as pool:
        outcomes = [o for batch in pool.map(work, workers) for o in batch]
    assert outcomes.count(Done.ACTED) == 10 and outcomes.count(Done.ALREADY) == 10
    decisions = ledger.read(lambda s: len(s.scalars(select(Event).where(Event.kind == "discount.approved")).all()))
    assert decisions == 10
    assert ledger.read(lambda s: {v.approval for v in s.scalars(select(QuoteVersion))}) == {Approval.APPROVED}
