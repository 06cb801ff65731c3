"""Reading a catalog file (TOML) into checked specs. Every problem is collected and
reported together, with the SKU it concerns; nothing is loaded unless all is well.

    currencies = ["EUR", "USD"]
    [tax_categories]
    standard = "21"          # percent, as text
    [[sku]]
    code = "PRO-SEAT"
    name = "Pro plan, per seat"
    kind = "recurring"       # one_off | recurring | usage
    unit = "seat"
    interval = "month"       # month | year; recurring and usage SKUs only
    licensable = true
    features = ["sso"]
    tax_category = "standard"
    prices = { EUR = "40.00", USD = "45.00" }
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flows.catalog import Interval, SkuKind
from flows.errors import CatalogError, LedgerError
from flows.money import BASIS_POINTS, Money, check_currency

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
# Units a license can count; selling "seats" of gigabytes makes no sense.
COUNTABLE_UNITS = frozenset({"seat", "user", "license", "instance", "device", "site", "server", "workspace"})
KNOWN_UNITS = COUNTABLE_UNITS | {
    "unit", "item", "hour", "day", "month", "year", "project", "gb", "tb", "mb", "request",
    "api_call", "message", "minute", "transaction", "document", "plan",
}


@dataclass(frozen=True)
class SkuSpec:
    code: str
    name: str
    kind: SkuKind
    unit: str
    interval: Interval | None
    licensable: bool
    features: tuple[str, ...]
    tax_category: str
    tax_rate_bp: int
    prices: dict[str, int]  # currency -> minor units


@dataclass(frozen=True)
class CatalogSpec:
    currencies: tuple[str, ...]
    skus: tuple[SkuSpec, ...]


def read_catalog(text: str, source: str = "<catalog>") -> CatalogSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(source, [f"not valid TOML: {error}"]) from None
    problems: list[str] = []
    currencies = _currencies(data.get("currencies"), problems)
    rates = _tax_categories(data.get("tax_categories"), problems)
    entries = data.get("sku")
    if not isinstance(entries, list) or not entries:
        problems.append("no [[sku]] entries")
        entries = []
    skus: list[SkuSpec] = []
    seen: dict[str, int] = {}
    units: dict[str, str] = {}
    for position, entry in enumerate(entries, start=1):
        label = f"sku #{position}"
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a table")
            continue
        code = entry.get("code")
        if isinstance(code, str) and code:
            label = f"sku {code}"
            key = code.upper()
            if key in seen:
                problems.append(f"{label}: duplicate SKU code (also sku #{seen[key]})")
            seen.setdefault(key, position)
        spec = _sku(entry, label, currencies, rates, units, problems)
        if spec is not None:
            skus.append(spec)
    if problems:
        raise CatalogError(source, problems)
    return CatalogSpec(tuple(currencies), tuple(skus))


def _currencies(value: Any, problems: list[str]) -> list[str]:
    if not isinstance(value, list) or not value:
        problems.append('"currencies" must list the currencies every SKU is priced in, e.g. ["EUR"]')
        return []
    good = []
    for code in value:
        try:
            good.append(check_currency(code))
        except LedgerError as error:
            problems.append(f"currencies: {error}")
    return good


def _tax_categories(value: Any, problems: list[str]) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        problems.append('[tax_categories] must name at least one rate, e.g. standard = "20"')
        return {}
    rates = {}
    for name, percent in value.items():
        bp = _percent_to_bp(percent)
        if bp is None:
            problems.append(f'tax category {name}: rate must be a percent as text, e.g. "20" or "8.25"')
        else:
            rates[name] = bp
    return rates


def _percent_to_bp(percent: Any) -> int | None:
    if not isinstance(percent, (str, int)) or isinstance(percent, bool):
        return None
    try:
        bp = Decimal(str(percent)) * 100
    except InvalidOperation:
        return None
    if bp != bp.to_integral_value() or not 0 <= bp <= BASIS_POINTS:
        return None
    return int(bp)


def _sku(entry: dict[str, Any], label: str, currencies: list[str], rates: dict[str, int],
         units: dict[str, str], problems: list[str]) -> SkuSpec | None:
    start = len(problems)
    code = entry.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        problems.append(f"{label}: code must be 1-64 capitals, digits, '.', '_' or '-'")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: name is missing")
    kind = _choice(SkuKind, entry.get("kind"), f"{label}: kind", problems)
    interval = None
    if "interval" in entry:
        interval = _choice(Interval, entry.get("interval"), f"{label}: interval", problems)
    if kind in (SkuKind.RECURRING, SkuKind.USAGE) and interval is None and "interval" not in entry:
        problems.append(f"{label}: a {kind.value} SKU needs an interval (month or year)")
    if kind is SkuKind.ONE_OFF and interval is not None:
        problems.append(f"{label}: a one_off SKU has no interval (it is charged once)")
    unit = _unit(entry.get("unit"), label, units, problems)
    licensable = entry.get("licensable", False)
    if not isinstance(licensable, bool):
        problems.append(f"{label}: licensable must be true or false")
    elif licensable and unit and unit not in COUNTABLE_UNITS:
        problems.append(f"{label}: a licensable SKU counts seats; unit '{unit}' is not countable "
                        f"(use one of {', '.join(sorted(COUNTABLE_UNITS))})")
    features = entry.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        problems.append(f"{label}: features must be a list of names")
        features = []
    category = entry.get("tax_category")
    if category not in rates:
        problems.append(f"{label}: tax_category '{category}' is not one of [tax_categories] "
                        f"({', '.join(rates) or 'none declared'})")
    prices = _prices(entry.get("prices"), label, currencies, problems)
    if len(problems) > start:
        return None
    return SkuSpec(code, name.strip(), kind, unit, interval, licensable, tuple(features),
                   category, rates[category], prices)


def _choice(kind: Any, value: Any, label: str, problems: list[str]) -> Any:
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{label} '{value}' must be one of {', '.join(m.value for m in kind)}")
        return None


def _unit(value: Any, label: str, units: dict[str, str], problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{label}: unit is missing (e.g. seat, GB, hour)")
        return ""
    unit = value.strip().lower()
    singular = unit[:-1] if unit.endswith("s") and unit[:-1] in KNOWN_UNITS else unit
    if singular != unit:
        problems.append(f"{label}: unit '{value}' is a plural; write '{singular}'")
    elif unit not in KNOWN_UNITS:
        problems.append(f"{label}: unknown unit '{value}' (known: {', '.join(sorted(KNOWN_UNITS))})")
    if singular in units and units[singular] != value.strip():
        problems.append(f"{label}: unit '{value}' is written '{units[singular]}' elsewhere in this catalog")
    units.setdefault(singular, value.strip())
    return singular


def _prices(value: Any, label: str, currencies: list[str], problems: list[str]) -> dict[str, int]:
    if not isinstance(value, dict):
        problems.append(f"{label}: prices missing; give one per currency ({', '.join(currencies)})")
        return {}
    prices: dict[str, int] = {}
    for currency in currencies:
        if currency not in value:
            problems.append(f"{label}: no {currency} price")
    for currency, amount in value.items():
        if currency not in currencies:
            problems.append(f"{label}: price in {currency}, which is not in currencies")
            continue
        try:
            money = Money.parse(amount, currency)
        except LedgerError as error:
            problems.append(f"{label}: {currency} price: {error}")
            continue
        if money.amount < 0:
            problems.append(f"{label}: {currency} price is negative")
        prices[currency] = money.amount
    return prices
