"""The catalog file: every problem reported at once with the SKU it concerns, and
nothing loaded unless the whole file is right."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from flows.catalog import Interval, Sku, SkuKind
from flows.catalog_file import SkuSpec, read_catalog
from flows.errors import CatalogError
from flows.steps import load_catalog
from flows.timeline import Event
from tests.factories import row_counts

HEADER = """
currencies = ["EUR", "USD"]
[tax_categories]
standard = "21"
reduced = "8.25"
"""

CATALOG = HEADER + """
[[sku]]
code = "PRO-SEAT"
name = "  Pro plan, per seat  "
kind = "recurring"
unit = "seat"
interval = "month"
licensable = true
features = ["sso", "audit"]
tax_category = "standard"
prices = { EUR = "40.00", USD = "45" }

[[sku]]
code = "STORAGE"
name = "Extra storage"
kind = "usage"
unit = "GB"
interval = "month"
tax_category = "reduced"
prices = { EUR = "0.12", USD = "0.15" }

[[sku]]
code = "SETUP"
name = "Onboarding"
kind = "one_off"
unit = "project"
tax_category = "standard"
prices = { EUR = "1_500.00", USD = "1650.00" }
"""


def sku(code: str, **fields: str) -> str:
    """One [[sku]] table; fields given as TOML right-hand sides override a valid seat SKU."""
    values = {
        "code": f'"{code}"', "name": '"A product"', "kind": '"recurring"', "unit": '"seat"',
        "interval": '"month"', "tax_category": '"standard"', "prices": '{ EUR = "10.00", USD = "11.00" }',
    }
    values.update(fields)
    body = "\n".join(f"{key} = {value}" for key, value in values.items() if value is not None)
    return f"\n[[sku]]\n{body}\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as raised:
        read_catalog(text, "test.toml")
    assert raised.value.source == "test.toml"
    assert "nothing was loaded" in str(raised.value)
    return raised.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- a valid file --------------------------------------------------------------------


def test_a_valid_catalog_gives_prices_in_minor_units_and_rates_in_basis_points():
    spec = read_catalog(CATALOG, "catalog.toml")
    assert spec.currencies == ("EUR", "USD")
    seat, storage, setup = spec.skus
    assert seat == SkuSpec(
        code="PRO-SEAT", name="Pro plan, per seat", kind=SkuKind.RECURRING, unit="seat",
        interval=Interval.MONTH, licensable=True, features=("sso", "audit"), tax_category="standard",
        tax_rate_bp=2100, prices={"EUR": 4000, "USD": 4500},
    )
    assert storage.kind is SkuKind.USAGE


def test_prices_with_three_decimals_are_not_valid_euros():
    problems = problems_of(CATALOG.replace('"0.12"', '"0.125"'))
    assert problems == ["sku STORAGE: EUR price: 0.125 EUR: EUR has 2 decimal place(s)"]


def test_a_valid_catalog_keeps_units_lowercase_and_one_off_skus_without_interval():
    spec = read_catalog(CATALOG)
    seat, storage, setup = spec.skus
    assert (storage.unit, storage.interval, storage.licensable, storage.features) == ("gb", Interval.MONTH, False, ())
    assert (storage.tax_category, storage.tax_rate_bp, storage.prices) == ("reduced", 825, {"EUR": 12, "USD": 15})
    assert (setup.kind, setup.interval, setup.prices) == (SkuKind.ONE_OFF, None, {"EUR": 150000, "USD": 165000})


def test_yen_prices_are_whole_yen():
    text = """
currencies = ["JPY"]
[tax_categories]
standard = "10"
""" + sku("SEAT", prices='{ JPY = "6000" }')
    assert read_catalog(text).skus[0].prices == {"JPY": 6000}
    assert "JPY has 0 decimal place(s)" in only_problem(text.replace('"6000"', '"6000.5"'))


# --- each problem, named by SKU --------------------------------------------------------


def test_a_duplicate_sku_code_is_reported():
    problem = only_problem(HEADER + sku("SEAT") + sku("SEAT", name='"Another seat"'))
    assert problem.startswith("sku SEAT: duplicate SKU code")
    assert "sku #1" in problem


def test_sku_codes_that_differ_only_in_case_are_duplicates():
    problems = problems_of(HEADER + sku("SEAT-PRO") + sku("Seat-Pro"))
    assert any(p.startswith("sku Seat-Pro: duplicate SKU code (also sku #1)") for p in problems), problems


def test_a_missing_price_for_a_declared_currency_is_reported():
    assert only_problem(HEADER + sku("SEAT", prices='{ EUR = "10.00" }')) == "sku SEAT: no USD price"


def test_a_price_in_an_undeclared_currency_is_reported():
    text = HEADER + sku("SEAT", prices='{ EUR = "10.00", USD = "11.00", GBP = "9.00" }')
    assert only_problem(text) == "sku SEAT: price in GBP, which is not in currencies"


def test_a_price_written_as_a_toml_float_is_refused_and_told_to_write_text():
    problem = only_problem(HEADER + sku("SEAT", prices='{ EUR = 40.00, USD = "11.00" }'))
    assert problem.startswith("sku SEAT: EUR price:")
    assert 'write amounts as text like "40.00"' in problem
    assert "float" in problem


def test_a_price_written_as_a_toml_integer_is_whole_units():
    assert read_catalog(HEADER + sku("SEAT", prices='{ EUR = 40, USD = "11.00" }')).skus[0].prices["EUR"] == 4000


def test_a_price_with_too_many_decimals_is_reported():
    problem = only_problem(HEADER + sku("SEAT", prices='{ EUR = "40.001", USD = "11.00" }'))
    assert problem == "sku SEAT: EUR price: 40.001 EUR: EUR has 2 decimal place(s)"


def test_a_price_that_is_not_a_number_is_reported():
    problem = only_problem(HEADER + sku("SEAT", prices='{ EUR = "forty", USD = "11.00" }'))
    assert problem == "sku SEAT: EUR price: 'forty' is not an amount (write it like 1234.50)"


def test_a_negative_price_is_reported():
    assert only_problem(HEADER + sku("SEAT", prices='{ EUR = "-1.00", USD = "11.00" }')) == \
        "sku SEAT: EUR price is negative"


def test_a_zero_price_is_allowed():
    assert read_catalog(HEADER + sku("FREE", prices='{ EUR = "0", USD = "0.00" }')).skus[0].prices == \
        {"EUR": 0, "USD": 0}


def test_a_recurring_sku_without_an_interval_is_reported():
    problem = only_problem(HEADER + sku("SEAT", interval=None))
    assert problem == "sku SEAT: a recurring SKU needs an interval (month or year)"


def test_a_usage_sku_without_an_interval_is_reported():
    problem = only_problem(HEADER + sku("API", kind='"usage"', unit='"request"', interval=None))
    assert problem == "sku API: a usage SKU needs an interval (month or year)"


def test_an_unknown_interval_is_reported():
    problem = only_problem(HEADER + sku("SEAT", interval='"week"'))
    assert problem == "sku SEAT: interval 'week' must be one of month, year"


def test_a_one_off_sku_with_an_interval_is_reported():
    problem = only_problem(HEADER + sku("SETUP", kind='"one_off"', unit='"project"'))
    assert problem == "sku SETUP: a one_off SKU has no interval (it is charged once)"


def test_an_unknown_kind_is_reported():
    problem = only_problem(HEADER + sku("SEAT", kind='"subscription"'))
    assert problem == "sku SEAT: kind 'subscription' must be one of one_off, recurring, usage"


def test_a_plural_unit_is_reported_with_the_singular_to_write():
    assert only_problem(HEADER + sku("SEAT", unit='"seats"')) == "sku SEAT: unit 'seats' is a plural; write 'seat'"


def test_an_unknown_unit_is_reported():
    problem = only_problem(HEADER + sku("SEAT", unit='"bananas"'))
    assert problem.startswith("sku SEAT: unknown unit 'bananas'")


def test_the_same_unit_spelled_two_ways_in_one_catalog_is_reported():
    text = HEADER + sku("STORAGE", unit='"GB"') + sku("BACKUP", unit='"gb"')
    assert only_problem(text) == "sku BACKUP: unit 'gb' is written 'GB' elsewhere in this catalog"


def test_the_same_unit_spelled_the_same_way_twice_is_fine():
    spec = read_catalog(HEADER + sku("STORAGE", unit='"GB"') + sku("BACKUP", unit='"GB"'))
    assert [s.unit for s in spec.skus] == ["gb", "gb"]


def test_a_licensable_sku_must_count_something_countable():
    problem = only_problem(HEADER + sku("STORAGE", unit='"GB"', licensable="true"))
    assert problem.startswith("sku STORAGE: a licensable SKU counts seats; unit 'gb' is not countable")
    assert "seat" in problem


def test_an_unknown_tax_category_is_reported():
    problem = only_problem(HEADER + sku("SEAT", tax_category='"luxury"'))
    assert problem == "sku SEAT: tax_category 'luxury' is not one of [tax_categories] (standard, reduced)"


def test_a_tax_rate_written_as_a_float_is_reported():
    text = HEADER.replace('reduced = "8.25"', "reduced = 8.25") + sku("SEAT")
    assert only_problem(text).startswith("tax category reduced: rate must be a percent as text")


def test_invalid_toml_is_reported_as_such():
    problems = problems_of(HEADER + '[[sku]]\ncode = "SEAT\n')
    assert len(problems) == 1
    assert problems[0].startswith("not valid TOML:")


def test_a_file_without_skus_or_currencies_is_reported():
    problems = problems_of('[tax_categories]\nstandard = "20"\n')
    assert problems == ['"currencies" must list the currencies every SKU is priced in, e.g. ["EUR"]',
                        "no [[sku]] entries"]


def test_every_problem_in_a_file_is_reported_at_once():
    text = (HEADER
            + sku("SEAT", unit='"seats"')
            + sku("SETUP", kind='"one_off"', unit='"project"', prices='{ EUR = 40.0, USD = "1.00" }')
            + sku("STORAGE", unit='"GB"', licensable="true", tax_category='"luxury"')
            + sku("SEAT")
            + sku("OK", unit='"user"'))
    problems = problems_of(text)
    assert problems == [
        "sku SEAT: unit 'seats' is a plural; write 'seat'",
        "sku SETUP: a one_off SKU has no interval (it is charged once)",
        'sku SETUP: EUR price: write amounts as text like "40.00", not as a float (40.0)',
        "sku STORAGE: a licensable SKU counts seats; unit 'gb' is not countable "
        "(use one of device, instance, license, seat, server, site, user, workspace)",
        "sku STORAGE: tax_category 'luxury' is not one of [tax_categories] (standard, reduced)",
        "sku SEAT: duplicate SKU code (also sku #1)",
        "sku SEAT: unit 'seat' is written 'seats' elsewhere in this catalog",
    ]
    message = str(CatalogError("test.toml", problems))
    assert "7 problem(s)" in message


# --- loading into the ledger -----------------------------------------------------------


def skus_in(ledger) -> dict[str, Sku]:
    def query(session):
        rows = session.scalars(select(Sku).options(selectinload(Sku.prices))).all()
        return {row.code: row for row in rows}
    return ledger.read(query)


VALID = CATALOG


def test_loading_a_catalog_inserts_its_skus_with_their_prices(services):
    counts = services.ledger.run(load_catalog, read_catalog(VALID, "v1.toml"), source="v1.toml")
    assert (counts["added"], counts["updated"], counts["deactivated"]) == (3, 0, 0)
    skus = skus_in(services.ledger)
    assert set(skus) == {"PRO-SEAT", "STORAGE", "SETUP"}
    seat = skus["PRO-SEAT"]
    assert (seat.name, seat.kind, seat.unit, seat.interval, seat.licensable, seat.features, seat.active) == \
        ("Pro plan, per seat", SkuKind.RECURRING, "seat", Interval.MONTH, True, ["sso", "audit"], True)
    assert (seat.tax_category, seat.tax_rate_bp) == ("standard", 2100)
    assert {p.currency: p.unit_amount for p in seat.prices} == {"EUR": 4000, "USD": 4500}
    assert skus["SETUP"].interval is None
    loaded = services.ledger.read(lambda s: s.scalars(select(Event).where(Event.kind == "catalog.loaded")).all())
    assert [e.data["source"] for e in loaded] == ["v1.toml"]


def test_a_sku_left_out_of_the_next_file_is_deactivated_not_deleted_and_changed_prices_update(services):
    services.ledger.run(load_catalog, read_catalog(VALID, "v1.toml"), source="v1.toml")
    before = skus_in(services.ledger)
    second = (HEADER + """
[[sku]]
code = "PRO-SEAT"
name = "Pro plan, per seat"
kind = "recurring"
unit = "seat"
interval = "month"
licensable = true
features = ["sso", "audit", "scim"]
tax_category = "standard"
prices = { EUR = "42.00", USD = "45.00" }

[[sku]]
code = "SETUP"
name = "Onboarding"
kind = "one_off"
unit = "project"
tax_category = "standard"
prices = { EUR = "1500.00", USD = "1650.00" }

[[sku]]
code = "TRAINING"
name = "Training day"
kind = "one_off"
unit = "day"
tax_category = "reduced"
prices = { EUR = "900.00", USD = "990.00" }
""")
    counts = services.ledger.run(load_catalog, read_catalog(second, "v2.toml"), source="v2.toml")
    assert (counts["added"], counts["updated"], counts["deactivated"]) == (1, 1, 1)

    after = skus_in(services.ledger)
    assert set(after) == {"PRO-SEAT", "STORAGE", "SETUP", "TRAINING"}
    assert after["STORAGE"].active is False
    assert after["STORAGE"].id == before["STORAGE"].id
    assert {p.currency: p.unit_amount for p in after["STORAGE"].prices} == {"EUR": 12, "USD": 15}
    seat = after["PRO-SEAT"]
    assert seat.id == before["PRO-SEAT"].id
    assert seat.active is True
    assert {p.currency: p.unit_amount for p in seat.prices} == {"EUR": 4200, "USD": 4500}
    assert seat.features == ["sso", "audit", "scim"]
    assert after["SETUP"].active is True
    assert {p.currency: p.unit_amount for p in after["SETUP"].prices} == {"EUR": 150000, "USD": 165000}
    assert after["TRAINING"].active is True

    # bringing the SKU back in a later file reactivates the same row
    services.ledger.run(load_catalog, read_catalog(VALID, "v3.toml"), source="v3.toml")
    again = skus_in(services.ledger)
    assert again["STORAGE"].active is True and again["STORAGE"].id == before["STORAGE"].id
    assert again["TRAINING"].active is False
    assert {p.currency: p.unit_amount for p in again["PRO-SEAT"].prices} == {"EUR": 4000, "USD": 4500}


def test_a_price_dropped_for_a_currency_no_longer_sold_is_removed(services):
    services.ledger.run(load_catalog, read_catalog(VALID), source="v1")
    eur_only = VALID.replace('currencies = ["EUR", "USD"]', 'currencies = ["EUR"]')
    for usd in (', USD = "45"', ', USD = "0.15"', ', USD = "1650.00"'):
        eur_only = eur_only.replace(usd, "")
    services.ledger.run(load_catalog, read_catalog(eur_only), source="v2")
    skus = skus_in(services.ledger)
    assert {code: [p.currency for p in s.prices] for code, s in skus.items()} == \
        {"PRO-SEAT": ["EUR"], "STORAGE": ["EUR"], "SETUP": ["EUR"]}


def test_a_catalog_with_problems_changes_nothing(services):
    services.ledger.run(load_catalog, read_catalog(VALID, "v1.toml"), source="v1.toml")
    before_counts = row_counts(services.ledger)
    before = {code: (s.active, {p.currency: p.unit_amount for p in s.prices})
              for code, s in skus_in(services.ledger).items()}
    # A file that drops two SKUs and changes a price, but also has one bad price:
    bad = HEADER + sku("PRO-SEAT", prices='{ EUR = "99.00", USD = "99.999" }')

    with pytest.raises(CatalogError) as raised:  # what `closeloop catalog load` does
        spec = read_catalog(bad, "bad.toml")
        services.ledger.run(load_catalog, spec, source="bad.toml")

    assert raised.value.problems == ["sku PRO-SEAT: USD price: 99.999 USD: USD has 2 decimal place(s)"]
    assert row_counts(services.ledger) == before_counts
    assert {code: (s.active, {p.currency: p.unit_amount for p in s.prices})
            for code, s in skus_in(services.ledger).items()} == before
