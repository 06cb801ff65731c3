"""The billing run: one invoice per subscription and period however often and however
concurrently it runs; month ends, 29 February and daylight-saving changes; seat changes
with proration; cancellation both ways; parking a runaway subscription."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from closeloop.bootstrap import build
from flows.billing import Subscription, SubscriptionPeriod, SubscriptionStatus
from flows.billing_run import run_billing
from flows.deals import Stage
from flows.errors import InvalidInput
from flows.invoices import Invoice, InvoiceLine
from flows.outbox import OutboxMessage
from flows.steps import Done, LineRequest
from flows.subscriptions import cancel_subscription, change_seats, prorate, resume_subscription
from flows.timeline import Event
from tests.factories import deal_at, row_counts, seed


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def subscription_of(ledger, deal_id: int, sku_code: str = "SEAT") -> int:
    from flows.catalog import Sku
    return ledger.read(lambda s: s.scalar(select(Subscription.id).join(Sku, Sku.id == Subscription.sku_id)
                                          .where(Subscription.deal_id == deal_id, Sku.code == sku_code)))


def period_invoices(ledger, subscription_id: int) -> list[tuple[date, date, str | None]]:
    def read(session):
        rows = session.execute(select(SubscriptionPeriod.start, SubscriptionPeriod.end, Invoice.number)
                               .outerjoin(Invoice, Invoice.id == SubscriptionPeriod.invoice_id)
                               .where(SubscriptionPeriod.subscription_id == subscription_id)
                               .order_by(SubscriptionPeriod.index))
        return [tuple(r) for r in rows]
    return ledger.read(read)


def billed_deal(ledger, customer: int, lines=None) -> int:
    return deal_at(ledger, customer, Stage.BILLING_ACTIVE, lines=lines)


def test_each_period_is_billed_once_and_a_rerun_creates_nothing(services, clock):
    ledger = services.ledger
    deal = billed_deal(ledger, seed(ledger))
    seat = subscription_of(ledger, deal)
    assert run_billing(ledger).invoices == 0  # the first period is the deal's own invoice
    clock.set(utc(2026, 4, 10, 6))
    first = run_billing(ledger, keep_numbers=True)
    assert first.invoices == 1
    before = row_counts(ledger)
    assert run_billing(ledger).invoices == 0 and run_billing(ledger).invoices == 0
    assert row_counts(ledger) == before
    periods = period_invoices(ledger, seat)
    assert [(p[0], p[1]) for p in periods] == [(date(2026, 3, 10), date(2026, 4, 10)),
                                                (date(2026, 4, 10), date(2026, 5, 10))]

    def check(session):
        invoice = session.scalar(select(Invoice).where(Invoice.number == first.numbers[0]))
        assert (invoice.net, invoice.tax, invoice.due_on) == (40000, 8000, date(2026, 5, 10))  # 30 days' terms
        assert [(l.period_start, l.period_end) for l in invoice.lines] == [(date(2026, 4, 10), date(2026, 5, 10))]
        kinds = {m.kind: m.payload for m in session.scalars(select(OutboxMessage).where(
            OutboxMessage.idempotency_key.like(f"%:{invoice.number}")))}
        assert kinds["payment.collect"]["invoice_id"] == invoice.id
        assert kinds["invoice.deliver"] == {"invoice": invoice.number, "invoice_id": invoice.id,
                                            "customer": "Acme GmbH", "language": "de",
                                            "to": "billing@acme.example"}
    ledger.read(check)


def test_month_ends_and_29_february_follow_the_anchor(services, clock):
    ledger = services.ledger
    clock.set(utc(2028, 1, 31, 10))
    deal = billed_deal(ledger, seed(ledger), lines=[LineRequest("SEAT", Decimal(1)), LineRequest("ANNUAL", Decimal(1))])
    seat, annual = subscription_of(ledger, deal), subscription_of(ledger, deal, "ANNUAL")
    for day in (date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 30), date(2028, 3, 31), date(2028, 4, 30)):
        clock.set(datetime(day.year, day.month, day.day, 8, tzinfo=timezone.utc))
        run_billing(ledger)
        run_billing(ledger)
    assert [(p[0], p[1]) for p in period_invoices(ledger, seat)] == [
        (date(2028, 1, 31), date(2028, 2, 29)), (date(2028, 2, 29), date(2028, 3, 31)),
        (date(2028, 3, 31), date(2028, 4, 30)), (date(2028, 4, 30), date(2028, 5, 31))]
    clock.set(utc(2029, 1, 31, 8))
    assert run_billing(ledger, date(2029, 1, 30)).invoices > 0  # catching up the monthly one only
    assert len(period_invoices(ledger, annual)) == 1
    run_billing(ledger, date(2029, 1, 31))
    assert [(p[0], p[1]) for p in period_invoices(ledger, annual)][-1] == (date(2029, 1, 31), date(2030, 1, 31))


def test_a_leap_day_anchor_renews_on_28_february_then_29_again(services, clock):
    ledger = services.ledger
    clock.set(utc(2028, 2, 29, 10))
    deal = billed_deal(ledger, seed(ledger), lines=[LineRequest("ANNUAL", Decimal(1))])
    annual = subscription_of(ledger, deal, "ANNUAL")
    for year, day in ((2029, 28), (2030, 28), (2031, 28), (2032, 29)):
        clock.set(utc(year, 2, day, 9))
        assert run_billing(ledger).invoices == 1
    assert [p[0] for p in period_invoices(ledger, annual)] == [
        date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28), date(2032, 2, 29)]


def test_periods_are_local_dates_across_daylight_saving_changes_in_warsaw(settings, clock):
    services = build(settings.model_copy(update={"timezone": "Europe/Warsaw"}), clock)
    ledger = services.ledger
    clock.set(utc(2027, 2, 27, 23, 30))  # 00:30 on 28 February in Warsaw (CET, UTC+1)
    seat = subscription_of(ledger, billed_deal(ledger, seed(ledger)))
    assert period_invoices(ledger, seat)[0][:2] == (date(2027, 2, 28), date(2027, 3, 28))
    clock.set(utc(2027, 3, 27, 22, 59))  # 23:59 on 27 March in Warsaw: not yet
    assert run_billing(ledger).invoices == 0
    clock.set(utc(2027, 3, 27, 23, 1))  # 00:01 on 28 March, the night clocks go forward
    assert run_billing(ledger).invoices == 1
    clock.set(utc(2027, 4, 27, 21, 59))  # 23:59 on 27 April in Warsaw, now CEST (UTC+2)
    assert run_billing(ledger).invoices == 0
    clock.set(utc(2027, 4, 27, 22, 1))  # 00:01 on 28 April local, still 27 April in UTC
    assert run_billing(ledger).invoices == 1
    for month in range(5, 11):  # summer time: local midnight is 22:00 UTC the day before
        clock.set(utc(2027, month, 27, 22, 30))
        assert run_billing(ledger).invoices == 1
    clock.set(utc(2027, 11, 27, 22, 30))  # clocks went back on 31 October: 23:30 on 27 November local
    assert run_billing(ledger).invoices == 0
    clock.set(utc(2027, 11, 27, 23, 30))
    assert run_billing(ledger).invoices == 1
    starts = [p[0] for p in period_invoices(ledger, seat)]
    assert starts == [date(2027, m, 28) for m in range(2, 12)]
    services.close()


def test_concurrent_billing_runs_make_one_invoice_per_period_with_gapless_numbers(make_services, clock):
    first, second = make_services(), make_services()
    customer = seed(first.ledger)
    subscriptions = [subscription_of(first.ledger, billed_deal(first.ledger, customer)) for _ in range(6)]
    clock.set(utc(2026, 4, 10, 6))
    barrier, results, errors = threading.Barrier(4), [], []

    def run(services):
        try:
            barrier.wait()
            results.append(run_billing(services.ledger, batch=2, keep_numbers=True))
        except Exception as error:  # noqa: BLE001 — reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s,)) for s in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r.invoices for r in results) == 6
    numbers = sorted(n for r in results for n in r.numbers)
    assert len(set(numbers)) == 6
    for subscription in subscriptions:
        assert len(period_invoices(first.ledger, subscription)) == 2

    def sequences(session):
        return sorted(session.scalars(select(Invoice.sequence).where(Invoice.purpose_key.like("period:%"))))
    taken = first.ledger.read(sequences)
    assert taken == list(range(taken[0], taken[0] + 6))  # gapless, after the six deal invoices
    assert taken[0] == 7


def test_more_seats_mid_period_are_invoiced_prorated_and_fewer_are_credited_next_time(services, clock):
    ledger = services.ledger
    seat = subscription_of(ledger, billed_deal(ledger, seed(ledger)))  # 10 seats at 40.00 EUR, 10 Mar - 10 Apr
    clock.set(utc(2026, 3, 25, 12))  # 16 of 31 days left
    assert ledger.run(change_seats, seat, seats=15, actor="U_FIN", request_key="r1") is Done.ACTED
    assert ledger.run(change_seats, seat, seats=15, actor="U_FIN", request_key="r1") is Done.ALREADY

    def proration(session):
        invoice = session.scalar(select(Invoice).where(Invoice.purpose_key == f"seats:{seat}:r1"))
        return invoice.net, invoice.tax, invoice.number is not None
    assert ledger.read(proration) == (10323, 2065, True)  # 4000 × 5 × 16/31 = 10322.58 -> 10323
    assert ledger.run(change_seats, seat, seats=12, actor="U_FIN", request_key="r2") is Done.ACTED
    assert prorate(4000, Decimal(-3), date(2026, 3, 10), date(2026, 4, 10), date(2026, 3, 25)) == -6194
    clock.set(utc(2026, 4, 10, 6))
    numbers = run_billing(ledger, keep_numbers=True).numbers

    def renewal(session):
        invoice = session.scalar(select(Invoice).where(Invoice.number == numbers[0]))
        return [(l.quantity, l.net) for l in invoice.lines], invoice.net
    assert ledger.read(renewal) == ([(Decimal(12), 48000), (Decimal(1), -6194)], 41806)
    assert ledger.read(lambda s: s.get(Subscription, seat).credit) == 0
    with pytest.raises(InvalidInput):
        ledger.run(change_seats, seat, seats=Decimal("2.5"), actor="U_FIN", request_key="r3")


def test_cancelling_at_the_period_end_bills_nothing_more_and_ends_then(services, clock):
    ledger = services.ledger
    seat = subscription_of(ledger, billed_deal(ledger, seed(ledger)))
    clock.set(utc(2026, 3, 25, 12))
    assert ledger.run(cancel_subscription, seat, at_period_end=True, reason="moving on", actor="U_FIN") is Done.ACTED
    assert ledger.run(cancel_subscription, seat, at_period_end=True, reason="moving on", actor="U_FIN") is Done.ALREADY
    assert ledger.read(lambda s: s.get(Subscription, seat).status) is SubscriptionStatus.CANCELLING
    clock.set(utc(2026, 5, 11, 6))
    result = run_billing(ledger)
    assert (result.invoices, result.ended) == (0, 1)
    assert ledger.read(lambda s: (s.get(Subscription, seat).status, s.get(Subscription, seat).ends_on)) == (
        SubscriptionStatus.CANCELLED, date(2026, 4, 10))
    assert len(period_invoices(ledger, seat)) == 1


def test_cancelling_immediately_stops_billing_now(services, clock):
    ledger = services.ledger
    seat = subscription_of(ledger, billed_deal(ledger, seed(ledger)))
    clock.set(utc(2026, 3, 25, 12))
    ledger.run(cancel_subscription, seat, at_period_end=False, reason="fraud", actor="U_FIN")
    clock.set(utc(2026, 4, 10, 6))
    assert run_billing(ledger).invoices == 0

    def event(session):
        return session.scalar(select(Event.data).where(Event.kind == "subscription.cancelled"))
    data = ledger.read(event)
    assert data["immediately"] is True and data["unused"] == round(40000 * 16 / 31)


def test_a_subscription_that_would_be_billed_too_often_in_a_day_is_parked_and_raised(services, clock):
    ledger = services.ledger
    seat = subscription_of(ledger, billed_deal(ledger, seed(ledger)))
    clock.set(utc(2026, 9, 10, 6))  # six periods behind in one day; the bound is 3
    result = run_billing(ledger)
    assert (result.invoices, result.parked) == (3, 1)
    assert run_billing(ledger).invoices == 0
    assert ledger.read(lambda s: s.get(Subscription, seat).status) is SubscriptionStatus.PARKED

    def alerts(session):
        return (session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "slack.alert")),
                session.scalar(select(func.count()).select_from(Event).where(Event.kind == "subscription.parked")))
    assert ledger.read(alerts) == (1, 1)
    ledger.run(resume_subscription, seat, actor="U_FIN", reason="checked: catch up")
    clock.set(utc(2026, 9, 11, 6))
    assert run_billing(ledger).invoices == 3  # the next day's bound


def test_external_invoicing_issues_no_invoice_and_bills_nothing(settings, clock):
    services = build(settings.model_copy(update={"invoicing": "external"}), clock)
    ledger = services.ledger
    deal = billed_deal(ledger, seed(ledger))
    assert ledger.read(lambda s: s.scalar(select(func.count()).select_from(Invoice))) == 0
    assert period_invoices(ledger, subscription_of(ledger, deal))[0][2] is None
    clock.set(utc(2026, 4, 10, 6))
    assert run_billing(ledger).skipped
    assert ledger.read(lambda s: s.scalar(select(func.count()).select_from(InvoiceLine))) == 0
    services.close()


def test_the_deal_invoice_is_due_after_its_payment_terms(services):
    ledger = services.ledger
    deal = billed_deal(ledger, seed(ledger))
    due = ledger.read(lambda s: s.scalar(select(Invoice.due_on).where(Invoice.deal_id == deal)))
    assert due == date(2026, 3, 10) + timedelta(days=30)


def test_a_parked_subscription_is_raised_in_the_finance_channel(slack_services, slack_api, clock):
    ledger = slack_services.ledger
    billed_deal(ledger, seed(ledger))
    clock.set(utc(2026, 9, 10, 6))
    assert run_billing(ledger).parked == 1
    slack_services.relay.drain()
    alerts = [c.args for c in slack_api.of("chat.postMessage") if "parked" in c.args.get("text", "")]
    assert len(alerts) == 2 and "#finance" in {a["channel"] for a in alerts}  # the deal's thread and finance
