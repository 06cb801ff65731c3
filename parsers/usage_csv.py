"""A vendor's usage bill as CSV: one row per period of a metered product.

Header row required; column names are matched loosely (case, spaces, underscores):
  period        YYYY-MM (a calendar month)      — or period_start + period_end (YYYY-MM-DD, end exclusive)
  quantity      a plain decimal (1234.5), the units billed (e.g. GB)
  amount        optional, what the vendor charged, a plain decimal in major units (123.45)
  currency      optional ISO 4217 code, needed with amount

Every problem is listed by line, and nothing is returned unless all rows are good."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation


@dataclass(frozen=True)
class UsageRow:
    line: int
    period_start: date
    period_end: date
    quantity: Decimal
    amount: Decimal | None
    currency: str | None


class UsageCsvError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_usage_csv(text: str) -> list[UsageRow]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows = [r for r in reader if any(cell.strip() for cell in r)]
    if not rows:
        raise UsageCsvError(["the file is empty: it needs a header row and one row per period"])
    names = [re.sub(r"[\s_-]+", "_", h.strip().lower()) for h in rows[0]]
    index = {name: i for i, name in enumerate(names)}
    problems: list[str] = []
    if "quantity" not in index:
        problems.append("no 'quantity' column")
    if "period" not in index and not {"period_start", "period_end"} <= set(index):
        problems.append("no 'period' column (YYYY-MM), nor 'period_start' and 'period_end'")
    if problems:
        raise UsageCsvError(problems + [f"columns found: {', '.join(rows[0])}"])
    found: list[UsageRow] = []
    for number, row in enumerate(rows[1:], start=2):
        def cell(name: str, row: list[str] = row) -> str:
            i = index.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""
        try:
            found.append(_row(number, cell))
        except ValueError as error:
            problems.append(f"line {number}: {error}")
    if problems:
        raise UsageCsvError(problems)
    if not found:
        raise UsageCsvError(["no usage rows after the header"])
    starts = [r.period_start for r in found]
    if len(set(starts)) != len(starts):
        raise UsageCsvError(["the same period appears twice"])
    return found


def _row(number: int, cell) -> UsageRow:  # type: ignore[no-untyped-def]
    if cell("period"):
        match = _MONTH.match(cell("period"))
        if not match:
            raise ValueError(f"period '{cell('period')}' must be YYYY-MM")
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise ValueError(f"period '{cell('period')}' has no month {month}")
        start = date(year, month, 1)
        end = date(year + (month == 12), month % 12 + 1, 1)
    else:
        try:
            start, end = date.fromisoformat(cell("period_start")), date.fromisoformat(cell("period_end"))
        except ValueError:
            raise ValueError("period_start and period_end must be YYYY-MM-DD") from None
        if end <= start:
            raise ValueError(f"period ends ({end}) before it starts ({start})")
    quantity = _decimal(cell("quantity"), "quantity")
    if quantity is None or quantity < 0:
        raise ValueError("quantity must be a number >= 0")
    amount = _decimal(cell("amount"), "amount")
    currency = cell("currency").upper() or None
    if amount is not None and currency is None:
        raise ValueError("an amount needs a currency")
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"currency '{currency}' must be a three-letter ISO code")
    return UsageRow(number, start, end, quantity, amount, currency)


def _decimal(text: str, what: str) -> Decimal | None:
    if not text:
        return None
    if not _DECIMAL.match(text):
        raise ValueError(f"{what} '{text}' must be a plain decimal such as 1234.5")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what} '{text}' is not a number") from None
