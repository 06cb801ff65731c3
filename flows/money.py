"""Money as integer minor units of an ISO 4217 currency. No floats, ever.

The rounding rule (one, everywhere):
  * a line's net amount is quantity x unit price, less the line's discount, rounded
    half-up to the currency's minor unit;
  * tax is computed once per tax rate over the whole document, on the sum of the line
    nets at that rate, rounded half-up to the minor unit.
This is EN 16931's VAT breakdown (BR-CO-17: category tax = taxable amount x rate,
rounded), so the totals we print match the Factur-X XML embedded in our invoices.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Iterable

from babel.numbers import list_currencies

from flows.errors import CurrencyMismatch, InvalidInput

# ISO 4217 minor-unit exponents that are not 2 (the standard's own table; CLDR's
# display precisions differ for some, e.g. HUF cash, so we do not borrow them).
_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
_KNOWN = frozenset(list_currencies())
BASIS_POINTS = 10_000
MAX_MINOR = 10**15  # amounts stay below this many minor units: far beyond any invoice, well inside BIGINT
_AMOUNT = re.compile(r"-?\d+(\.\d+)?")  # plain decimal notation only: no 1e3, no NaN  # rates and discounts are integer basis points: 2000 = 20.00 %


def check_currency(code: str) -> str:
    if not isinstance(code, str) or code.upper() != code or code not in _KNOWN:
        raise InvalidInput(f"'{code}' is not an ISO 4217 currency code (e.g. EUR, USD, JPY)")
    return code


def exponent(currency: str) -> int:
    return _EXPONENTS.get(check_currency(currency), 2)


@dataclass(frozen=True, slots=True, order=False)
class Money:
    amount: int  # minor units: cents for EUR, yen for JPY, fils (1/1000) for KWD
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise InvalidInput(f"money amounts are integer minor units, not {type(self.amount).__name__}")
        check_currency(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str | Decimal | int, currency: str) -> Money:
        """'1234.50' EUR -> 123450. Refuses more decimals than the currency has."""
        if isinstance(text, float) or isinstance(text, bool):
            raise InvalidInput(f"write amounts as text like \"40.00\", not as a float ({text!r})")
        written = str(text).strip().replace("_", "")
        if not _AMOUNT.fullmatch(written):
            raise InvalidInput(f"'{text}' is not an amount (write it like 1234.50)")
        value = Decimal(written)
        places = exponent(currency)
        minor = value.scaleb(places)
        if minor != minor.to_integral_value():
            raise InvalidInput(f"{text} {currency}: {currency} has {places} decimal place(s)")
        if abs(minor) >= MAX_MINOR:
            raise InvalidInput(f"{text} {currency} is larger than any amount closeloop handles")
        return cls(int(minor), currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount).scaleb(-exponent(self.currency))

    def __str__(self) -> str:
        places = exponent(self.currency)
        return f"{self.to_decimal():,.{places}f} {self.currency}"

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount


def round_half_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def check_quantity(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise InvalidInput(f"quantities are exact numbers, not floats ({value!r})")
    try:
        quantity = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(f"'{value}' is not a quantity") from None
    if not quantity.is_finite() or quantity <= 0:
        raise InvalidInput(f"quantity must be positive, got {value}")
    if quantity.normalize().as_tuple().exponent < -6:  # type: ignore[operator]
        raise InvalidInput(f"quantity {value} has more than 6 decimal places")
    return quantity


def check_basis_points(value: int, what: str, *, maximum: int = BASIS_POINTS) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise InvalidInput(f"{what} must be between 0 and {maximum / 100:.2f} %")
    return value


def line_net(unit_amount: int, quantity: Decimal, discount_bp: int = 0) -> int:
    """Net of one line in minor units: quantity x unit, less discount, rounded half-up."""
    gross = Decimal(unit_amount) * quantity
    return round_half_up(gross * (BASIS_POINTS - discount_bp) / BASIS_POINTS)


@dataclass(frozen=True, slots=True)
class TaxLine:
    rate_bp: int
    taxable: int
    tax: int


@dataclass(frozen=True, slots=True)
class Totals:
    currency: str
    net: int
    tax: int
    taxes: tuple[TaxLine, ...]

    @property
    def gross(self) -> int:
        return self.net + self.tax

    def money(self) -> Money:
        return Money(self.gross, self.currency)


def document_totals(currency: str, lines: Iterable[tuple[int, int]]) -> Totals:
    """Totals from (line net, tax rate in basis points) pairs, with tax per rate."""
    taxable: dict[int, int] = defaultdict(int)
    for net, rate_bp in lines:
        taxable[rate_bp] += net
    taxes = tuple(
        TaxLine(rate, base, round_half_up(Decimal(base) * rate / BASIS_POINTS))
        for rate, base in sorted(taxable.items())
    )
    return Totals(currency, sum(t.taxable for t in taxes), sum(t.tax for t in taxes), taxes)
