"""Money is integer minor units of an ISO 4217 currency, parsed from text, never floats;
lines round half-up, tax is rounded once per rate over the document."""
from __future__ import annotations

from decimal import Decimal

import pytest

from flows.errors import CurrencyMismatch, InvalidInput
from flows.money import (Money, TaxLine, check_currency, check_quantity, document_totals, exponent,
                         line_net, round_half_up)

# --- currencies ----------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "places"), [
    ("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("CLF", 4),
])
def test_each_currency_has_its_iso_4217_minor_unit(currency, places):
    assert exponent(currency) == places


@pytest.mark.parametrize("code", ["eur", "Eur", "EURO", "XYZ", "", "E", None, 978])
def test_unknown_or_lowercase_currency_codes_are_refused(code):
    with pytest.raises(InvalidInput, match="ISO 4217"):
        check_currency(code)


def test_money_in_an_unknown_currency_cannot_be_made():
    with pytest.raises(InvalidInput):
        Money(100, "usd")
    with pytest.raises(InvalidInput):
        Money.parse("1.00", "XYZ")


def test_money_amounts_are_integer_minor_units_only():
    assert Money(4000, "EUR").amount == 4000
    for amount in (40.0, Decimal("40"), "4000", True):
        with pytest.raises(InvalidInput):
            Money(amount, "EUR")  # type: ignore[arg-type]


# --- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("1234.50", "EUR", 123450),
    ("1234.5", "EUR", 123450),
    ("0.01", "EUR", 1),
    ("40", "EUR", 4000),
    (" 40.00 ", "EUR", 4000),
    ("1_000", "EUR", 100000),
    ("1_000", "JPY", 1000),
    ("6000", "JPY", 6000),
    ("1.234", "KWD", 1234),
    ("0.0001", "CLF", 1),
    (Decimal("19.99"), "USD", 1999),
    (Decimal("1.230"), "EUR", 123),   # trailing zeros are not extra precision
    (25, "EUR", 2500),
    (25, "JPY", 25),
    ("-5.00", "EUR", -500),
])
def test_amounts_written_as_text_decimal_or_int_become_minor_units(text, currency, minor):
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize("value", [40.0, 0.1, 1e3, True])
def test_floats_are_refused_as_amounts(value):
    with pytest.raises(InvalidInput, match="not as a float"):
        Money.parse(value, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "currency"), [
    ("1.234", "EUR"),
    ("0.001", "USD"),
    ("1.5", "JPY"),
    ("100.1", "JPY"),
    ("1.2345", "KWD"),
    ("0.00001", "CLF"),
    (Decimal("0.005"), "EUR"),
])
def test_more_decimals_than_the_currency_has_are_refused(text, currency):
    with pytest.raises(InvalidInput, match=f"{currency} has {exponent(currency)} decimal place"):
        Money.parse(text, currency)


@pytest.mark.parametrize("text", [
    "", "   ", "abc", "12,50", "1,234.50", "EUR 40", "40 EUR", "1.2.3", "--1", "0x10",
    "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("Infinity"),
    "1e999999999", "1e3", "1E2",  # scientific notation is not how amounts are written
])
def test_garbage_is_not_an_amount(text):
    with pytest.raises(InvalidInput, match="not an amount"):
        Money.parse(text, "EUR")


def test_an_amount_beyond_any_invoice_is_refused_before_it_reaches_the_database():
    assert Money.parse("9999999999999.99", "EUR").amount == 999999999999999
    with pytest.raises(InvalidInput, match="larger than any amount"):
        Money.parse("10000000000000.00", "EUR")


# --- arithmetic and display ----------------------------------------------------------


def test_money_adds_and_subtracts_within_one_currency():
    assert Money(4000, "EUR") + Money(150, "EUR") == Money(4150, "EUR")
    assert Money(4000, "EUR") - Money(4150, "EUR") == Money(-150, "EUR")
    assert -Money(1, "JPY") == Money(-1, "JPY")
    assert Money(1, "EUR") < Money(2, "EUR") <= Money(2, "EUR")
    assert Money.zero("KWD") == Money(0, "KWD")


def test_adding_euros_to_dollars_is_refused():
    with pytest.raises(CurrencyMismatch, match="EUR.*USD"):
        Money(100, "EUR") + Money(100, "USD")
    with pytest.raises(CurrencyMismatch):
        Money(100, "EUR") - Money(100, "USD")
    with pytest.raises(CurrencyMismatch):
        Money(100, "EUR") < Money(100, "USD")  # noqa: B015


def test_money_does_not_mix_with_plain_numbers():
    with pytest.raises(TypeError):
        Money(100, "EUR") + 1  # type: ignore[operator]


@pytest.mark.parametrize(("money", "text"), [
    (Money(123450, "EUR"), "1,234.50 EUR"),
    (Money(5, "EUR"), "0.05 EUR"),
    (Money(0, "USD"), "0.00 USD"),
    (Money(-123450, "EUR"), "-1,234.50 EUR"),
    (Money(1500, "JPY"), "1,500 JPY"),
    (Money(1234, "KWD"), "1.234 KWD"),
    (Money(12345, "CLF"), "1.2345 CLF"),
    (Money(123456789, "EUR"), "1,234,567.89 EUR"),
])
def test_amounts_print_with_the_currencys_decimals(money, text):
    assert str(money) == text


def test_printed_amount_parses_back_to_the_same_money():
    money = Money(123450, "EUR")
    assert Money.parse(str(money).split()[0].replace(",", "_"), "EUR") == money
    assert Money(123450, "EUR").to_decimal() == Decimal("1234.50")
    assert Money(1234, "KWD").to_decimal() == Decimal("1.234")


# --- line nets -----------------------------------------------------------------------


def test_a_line_is_quantity_times_unit_price():
    assert line_net(4000, Decimal(10)) == 40000
    assert line_net(6000, Decimal(3)) == 18000


def test_a_line_net_rounds_half_up_to_the_minor_unit():
    # 33.335 EUR is not representable: 100.00 x 0.33335 = 33.335 -> 33.34 (half-up)
    assert line_net(10000, Decimal("0.33335")) == 3334
    # 0.01 x 2.5 = 0.025 -> 0.03; banker's rounding would say 0.02
    assert line_net(1, Decimal("2.5")) == 3
    # 33.33 x 0.5 = 16.665 -> 16.67
    assert line_net(3333, Decimal("0.5")) == 1667
    # just under the half rounds down
    assert line_net(10000, Decimal("0.333349")) == 3333


def test_three_lines_of_a_third_each_do_not_add_up_to_the_whole():
    # 100.00 split in three lines of 0.333333: each rounds on its own
    thirds = [line_net(10000, Decimal("0.333333")) for _ in range(3)]
    assert thirds == [3333, 3333, 3333]
    assert sum(thirds) == 9999


def test_a_discount_comes_off_before_the_line_is_rounded():
    # 3 x 33.35 = 100.05, less 10 % = 90.045 -> 90.05 half-up
    assert line_net(3335, Decimal(3), 1000) == 9005
    # 9.99 less 50 % = 4.995 -> 5.00
    assert line_net(999, Decimal(1), 5000) == 500
    # 10 seats at 40.00 less 12.5 % is exact
    assert line_net(4000, Decimal(10), 1250) == 35000
    # a 100 % discount leaves nothing
    assert line_net(4000, Decimal(10), 10000) == 0


def test_yen_lines_round_to_whole_yen():
    # 6000 JPY x 0.00025 = 1.5 -> 2
    assert line_net(6000, Decimal("0.00025")) == 2


# --- document totals -----------------------------------------------------------------


def test_tax_is_rounded_once_per_rate_not_per_line():
    # Five lines of 0.65 at 10 %: per line 0.065 -> 0.07, five times 0.35.
    # Per rate: 3.25 x 10 % = 0.325 -> 0.33. The document says 0.33.
    lines = [(65, 1000)] * 5
    per_line = sum(round_half_up(Decimal(net) * rate / 10000) for net, rate in lines)
    assert per_line == 35  # what rounding each line would have given
    totals = document_totals("EUR", lines)
    assert totals.taxes == (TaxLine(rate_bp=1000, taxable=325, tax=33),)
    assert totals.net == 325
    assert totals.tax == 33
    assert totals.gross == 358


def test_per_rate_tax_rounds_half_up():
    # 3.25 x 10 % = 0.325 -> 0.33 (half-even would give 0.32)
    assert document_totals("EUR", [(325, 1000)]).tax == 33
    # 1.05 x 10 % = 0.105 -> 0.11
    assert document_totals("EUR", [(105, 1000)]).tax == 11
    # 1.04 x 10 % = 0.104 -> 0.10
    assert document_totals("EUR", [(104, 1000)]).tax == 10


def test_each_tax_rate_gets_its_own_breakdown_line_sorted_by_rate():
    totals = document_totals("EUR", [(40000, 2000), (150000, 2000), (120000, 0), (1001, 700), (1001, 700)])
    assert totals.taxes == (
        TaxLine(rate_bp=0, taxable=120000, tax=0),
        TaxLine(rate_bp=700, taxable=2002, tax=140),      # 20.02 x 7 % = 1.4014 -> 1.40
        TaxLine(rate_bp=2000, taxable=190000, tax=38000),
    )
    assert totals.net == 40000 + 150000 + 120000 + 2002
    assert totals.tax == 38140
    assert totals.gross == totals.net + totals.tax
    assert totals.money() == Money(totals.gross, "EUR")
    assert totals.currency == "EUR"


def test_a_document_without_lines_totals_zero():
    totals = document_totals("JPY", [])
    assert (totals.net, totals.tax, totals.taxes, totals.money()) == (0, 0, (), Money(0, "JPY"))


# --- quantities ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal(10), Decimal(10)),
    (3, Decimal(3)),
    ("2.5", Decimal("2.5")),
    ("0.000001", Decimal("0.000001")),
    (Decimal("123456789012.5"), Decimal("123456789012.5")),
    ("2.5000000", Decimal("2.5")),  # trailing zeros are not precision
])
def test_quantities_are_exact_positive_numbers(value, expected):
    assert check_quantity(value) == expected
    assert isinstance(check_quantity(value), Decimal)


@pytest.mark.parametrize("value", [1.5, 10.0, True])
def test_float_quantities_are_refused(value):
    with pytest.raises(InvalidInput, match="not floats"):
        check_quantity(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, "0", Decimal("0.000"), -1, "-0.5", Decimal("-3")])
def test_zero_and_negative_quantities_are_refused(value):
    with pytest.raises(InvalidInput, match="must be positive"):
        check_quantity(value)


@pytest.mark.parametrize("value", ["0.0000001", Decimal("1.1234567")])
def test_quantities_with_more_than_six_decimals_are_refused(value):
    with pytest.raises(InvalidInput, match="more than 6 decimal places"):
        check_quantity(value)


@pytest.mark.parametrize("value", ["ten", "", "NaN", "Infinity", "1/2"])
def test_quantities_that_are_not_numbers_are_refused(value):
    with pytest.raises(InvalidInput):
        check_quantity(value)
