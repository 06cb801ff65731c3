"""Billing periods computed from the anchor, a clock that never runs backwards, and
instants and quantities that survive the database exactly, on both backends."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from flows.base import ExactDecimal, UtcDateTime
from flows.billing import period_bounds
from flows.catalog import Interval
from flows.clock import ManualClock, as_utc
from flows.parties import Customer
from flows.steps import LineRequest
from flows.quotes import QuoteLine
from flows.timeline import Event
from tests.factories import quoted_deal, seed

BERLIN = ZoneInfo("Europe/Berlin")

# --- billing periods -------------------------------------------------------------------


def test_a_month_from_january_31_ends_on_february_29_in_a_leap_year():
    assert period_bounds(date(2028, 1, 31), Interval.MONTH, 0) == (date(2028, 1, 31), date(2028, 2, 29))


def test_a_month_from_january_31_ends_on_february_28_in_a_common_year():
    assert period_bounds(date(2027, 1, 31), Interval.MONTH, 0) == (date(2027, 1, 31), date(2027, 2, 28))


@pytest.mark.parametrize("year", [2027, 2028])
def test_the_period_after_february_ends_on_march_31_not_march_28(year):
    february_end = date(year, 2, 29) if year == 2028 else date(year, 2, 28)
    assert period_bounds(date(year, 1, 31), Interval.MONTH, 1) == (february_end, date(year, 3, 31))
    assert period_bounds(date(year, 1, 31), Interval.MONTH, 2) == (date(year, 3, 31), date(year, 4, 30))
    assert period_bounds(date(year, 1, 31), Interval.MONTH, 3) == (date(year, 4, 30), date(year, 5, 31))


@pytest.mark.parametrize("anchor", [date(2028, 1, 31), date(2027, 1, 31), date(2026, 3, 10), date(2027, 8, 30)])
def test_twelve_monthly_periods_are_contiguous_and_make_a_year(anchor):
    periods = [period_bounds(anchor, Interval.MONTH, index) for index in range(12)]
    assert periods[0][0] == anchor
    for (_, end), (next_start, _) in zip(periods, periods[1:]):
        assert end == next_start
    for start, end in periods:
        assert 28 <= (end - start).days <= 31
    assert periods[-1][1] == anchor.replace(year=anchor.year + 1)
    assert period_bounds(anchor, Interval.MONTH, 12)[0] == anchor.replace(year=anchor.year + 1)


def test_a_year_from_february_29_ends_on_february_28():
    assert period_bounds(date(2028, 2, 29), Interval.YEAR, 0) == (date(2028, 2, 29), date(2029, 2, 28))
    assert period_bounds(date(2028, 2, 29), Interval.YEAR, 1) == (date(2029, 2, 28), date(2030, 2, 28))
    # the anchor is remembered: four years on, the leap day comes back
    assert period_bounds(date(2028, 2, 29), Interval.YEAR, 4) == (date(2032, 2, 29), date(2033, 2, 28))


def test_yearly_periods_are_contiguous():
    periods = [period_bounds(date(2026, 3, 10), Interval.YEAR, index) for index in range(5)]
    assert periods == [(date(2026 + i, 3, 10), date(2027 + i, 3, 10)) for i in range(5)]


# --- the clock -------------------------------------------------------------------------


def test_the_manual_clock_moves_only_forward():
    clock = ManualClock(datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc))
    assert clock.now() == datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
    assert clock.advance(timedelta(days=45)) == datetime(2026, 4, 24, 9, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == datetime(2026, 4, 24, 9, 0, tzinfo=timezone.utc)
    assert clock.advance(timedelta(0)) == datetime(2026, 4, 24, 9, 0, tzinfo=timezone.utc)


def test_the_manual_clock_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 3, 10, 9, 0))
    clock = ManualClock(datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 3, 11, 9, 0))
    assert clock.now() == datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


def test_the_manual_clock_cannot_be_set_into_the_past():
    clock = ManualClock(datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc))
    clock.set(datetime(2026, 3, 12, 9, 0, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="backwards"):
        clock.set(datetime(2026, 3, 11, 9, 0, tzinfo=timezone.utc))
    assert clock.now() == datetime(2026, 3, 12, 9, 0, tzinfo=timezone.utc)


def test_the_manual_clock_tells_time_in_utc_whatever_zone_it_was_given():
    clock = ManualClock(datetime(2026, 7, 1, 12, 0, tzinfo=BERLIN))
    assert clock.now() == datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.now().tzinfo is timezone.utc
    assert as_utc(datetime(2026, 1, 1, 0, 30, tzinfo=BERLIN)) == datetime(2025, 12, 31, 23, 30, tzinfo=timezone.utc)


# --- instants in the database ----------------------------------------------------------


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_a_naive_datetime_cannot_be_bound(dialect):
    with pytest.raises(ValueError, match="naive datetime"):
        UtcDateTime().process_bind_param(datetime(2026, 3, 10, 9, 0), dialect)


def test_a_naive_datetime_cannot_be_stored(services):
    with services.ledger.sessions() as session:
        session.add(Customer(name="Naive Ltd", country="DE", language="de", currency="EUR",
                             created_at=datetime(2026, 3, 10, 9, 0)))
        with pytest.raises(StatementError, match="naive datetime") as raised:
            session.commit()
        assert isinstance(raised.value.orig, ValueError)
        session.rollback()
    assert services.ledger.read(lambda s: s.scalars(select(Customer)).all()) == []


def test_stored_instants_come_back_timezone_aware_in_utc(services):
    written = datetime(2026, 7, 1, 12, 0, 5, 123456, tzinfo=BERLIN)  # 10:00:05.123456 UTC
    with services.ledger.sessions() as session, session.begin():
        customer = Customer(name="Zone GmbH", country="DE", language="de", currency="EUR", created_at=written)
        session.add(customer)
        session.flush()
        session.add(Event(customer_id=customer.id, kind="test.instant", actor="test", data={},
                          occurred_at=datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5)))))

    with services.ledger.sessions() as session:
        created_at = session.scalar(select(Customer.created_at))
        occurred_at = session.scalar(select(Event.occurred_at).where(Event.kind == "test.instant"))
    assert created_at == datetime(2026, 7, 1, 10, 0, 5, 123456, tzinfo=timezone.utc)
    assert created_at.tzinfo is not None and created_at.utcoffset() == timedelta(0)
    assert created_at.tzinfo == timezone.utc
    assert occurred_at == datetime(2027, 1, 1, 4, 59, 59, 999999, tzinfo=timezone.utc)
    assert occurred_at.tzinfo == timezone.utc
    assert occurred_at.year == 2027  # stored as the UTC instant, not the wall-clock of its zone


def test_stored_instants_are_ordered_as_instants_not_wall_clock(services):
    # 10:30 in Berlin (CET, 09:30 UTC) is earlier than 10:00 UTC, though its wall clock reads later
    with services.ledger.sessions() as session, session.begin():
        session.add(Customer(name="Later", country="GB", language="en", currency="GBP",
                             created_at=datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc)))
        session.add(Customer(name="Earlier", country="DE", language="de", currency="EUR",
                             created_at=datetime(2026, 3, 10, 10, 30, tzinfo=BERLIN)))
    names = services.ledger.read(lambda s: s.scalars(select(Customer.name).order_by(Customer.created_at)).all())
    assert names == ["Earlier", "Later"]


# --- exact quantities ------------------------------------------------------------------


def test_quantities_round_trip_exactly(services):
    customer = seed(services.ledger)
    quantities = [Decimal("0.000001"), Decimal("123456789012.5"), Decimal("2.50"), Decimal("7")]
    quoted_deal(services.ledger, customer, lines=[LineRequest("SETUP", q) for q in quantities])
    with services.ledger.sessions() as session:
        stored = session.scalars(select(QuoteLine.quantity).order_by(QuoteLine.position)).all()
        raw = session.execute(text("SELECT quantity FROM quote_lines ORDER BY position")).scalars().all()
    assert stored == quantities
    assert all(isinstance(q, Decimal) for q in stored)
    assert [str(q) for q in stored] == ["0.000001", "123456789012.5", "2.5", "7"]
    # what the database itself holds is exact too (text on SQLite, NUMERIC on PostgreSQL)
    assert [Decimal(str(q)) for q in raw] == quantities
    assert not any(isinstance(q, float) for q in raw)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_a_quantity_must_be_a_decimal_to_be_stored(dialect):
    with pytest.raises(TypeError, match="must be Decimal"):
        ExactDecimal().process_bind_param(1.5, dialect)  # type: ignore[arg-type]
