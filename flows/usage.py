"""Vendors' usage bills (e.g. a storage provider billing gigabytes), recorded per period
so the usage-unbilled gap rule can compare them with what customers were charged.

The figures arrive as plain records (parsed from a CSV by parsers/usage_csv.py, or
from the vendor's invoice PDF by the invoice extractor); recording is idempotent per
(vendor, SKU, period start): importing the same bill again changes nothing, and a
corrected bill replaces the figures, on the timeline."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from flows.catalog import Sku, SkuKind
from flows.errors import InvalidInput
from flows.gap_models import VendorUsage
from flows.ledger import Tx
from flows.money import check_currency, check_quantity


@dataclass(frozen=True)
class UsageLine:
    period_start: date
    period_end: date  # exclusive
    quantity: Decimal
    amount: int | None = None  # what the vendor charged, minor units
    currency: str | None = None


def record_vendor_usage(tx: Tx, *, vendor: str, sku_code: str, lines: list[UsageLine], source: str,
                        actor: str) -> dict[str, int]:
    """Record a vendor's usage bill; returns how many periods were added, updated, unchanged."""
    vendor = " ".join(vendor.split())
    if not vendor:
        raise InvalidInput("name the vendor (--vendor)")
    sku = tx.session.scalar(select(Sku).where(Sku.code == sku_code))
    if sku is None:
        raise InvalidInput(f"there is no SKU '{sku_code}' in the catalog")
    if sku.kind is not SkuKind.USAGE:
        raise InvalidInput(f"{sku_code} is a {sku.kind.value.replace('_', '-')} SKU; vendor usage is compared "
                           "with usage SKUs only")
    if not lines:
        raise InvalidInput("the bill has no usage lines")
    for line in lines:
        if line.period_end <= line.period_start:
            raise InvalidInput(f"period {line.period_start}..{line.period_end} ends before it starts")
        check_quantity(line.quantity)
        if line.currency is not None:
            check_currency(line.currency)
        if line.amount is not None and (type(line.amount) is not int or line.amount < 0):
            raise InvalidInput("the vendor's amount must be whole minor units >= 0")
    existing = {row.period_start: row for row in tx.session.scalars(
        select(VendorUsage).where(VendorUsage.vendor == vendor, VendorUsage.sku_id == sku.id,
                                  VendorUsage.period_start.in_([line.period_start for line in lines])))}
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    for line in lines:
        row = existing.get(line.period_start)
        figures = (line.period_end, line.quantity, line.amount, line.currency)
        if row is not None and (row.period_end, row.quantity, row.amount, row.currency) == figures:
            counts["unchanged"] += 1
            continue
        if row is None:
            row = VendorUsage(vendor=vendor, sku_id=sku.id, period_start=line.period_start)
            tx.session.add(row)
            counts["added"] += 1
        else:
            counts["updated"] += 1
        row.period_end, row.quantity, row.amount, row.currency = figures
        row.source, row.imported_at = source[:200], tx.now
    if counts["added"] or counts["updated"]:
        tx.record("usage.imported", deal_id=None, customer_id=None, actor=actor, vendor=vendor, sku=sku_code,
                  source=source, **counts)
    return counts
