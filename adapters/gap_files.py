"""The files that go with the gap digest: the full list as CSV, the aging chart as a
PNG (matplotlib, headless Agg backend), and the aging report PDF.

The aging report PDF is rendered by adapters/pdf_render/aging.py; the wiring hands the
digest poster a function for it (closeloop/gaps_wiring.py)."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from flows.gap_states import GapView
from flows.money import exponent

CSV_COLUMNS = ("gap", "rule", "title", "about", "customer", "deal", "owner", "amount", "currency", "since",
               "age_days", "detail", "first_seen", "snoozed_until", "snooze_reason")


def gaps_csv(gaps: Iterable[GapView]) -> str:
    """One row per gap; amounts in major units as exact decimals (e.g. 2280.00)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for g in gaps:
        writer.writerow([g.key, g.rule, g.title, g.label, g.customer or "", f"D-{g.deal_id}" if g.deal_id else "",
                         g.owner, major(g.amount.amount, g.amount.currency) if g.amount else "",
                         g.amount.currency if g.amount else "", g.since.isoformat(), g.age_days, g.detail or "",
                         g.first_seen.isoformat(), g.snoozed_until.isoformat() if g.snoozed_until else "",
                         g.snooze_reason or ""])
    return out.getvalue()


def major(minor: int, currency: str) -> str:
    places = exponent(currency)
    return format(Decimal(minor).scaleb(-places), f".{places}f")


def gap_dicts(gaps: Iterable[GapView]) -> list[dict[str, Any]]:
    """For --json: the CSV's columns, with numbers as numbers and amounts as exact decimal text."""
    return [{"gap": g.key, "id": g.id, "rule": g.rule, "title": g.title, "about": g.label, "customer": g.customer,
             "deal": f"D-{g.deal_id}" if g.deal_id else None, "owner": g.owner,
             "amount": major(g.amount.amount, g.amount.currency) if g.amount else None,
             "amount_minor": g.amount.amount if g.amount else None, "currency": g.amount.currency if g.amount else None,
             "since": g.since.isoformat(), "age_days": g.age_days, "detail": g.detail,
             "first_seen": g.first_seen.isoformat(), "action": g.action,
             "snoozed_until": g.snoozed_until.isoformat() if g.snoozed_until else None,
             "snooze_reason": g.snooze_reason} for g in gaps]


def aging_chart_png(aging: Mapping[str, Mapping[str, int]], day: date) -> bytes:
    """Overdue amounts per aging bucket, one bar series per currency (major units)."""
    import matplotlib
    matplotlib.use("Agg")  # no display; safe in worker threads
    from matplotlib.figure import Figure

    buckets = list(aging)
    currencies = sorted({c for per in aging.values() for c in per})
    figure = Figure(figsize=(7, 3.6), dpi=110)
    axes = figure.subplots()
    width = 0.8 / max(1, len(currencies))
    for n, currency in enumerate(currencies):
        # floats only to draw the bars; the figures people read are in the CSV and the blocks
        values = [float(Decimal(aging[b].get(currency, 0)).scaleb(-exponent(currency))) for b in buckets]
        axes.bar([i + n * width for i in range(len(buckets))], values, width, label=currency)
    axes.set_xticks([i + width * (len(currencies) - 1) / 2 for i in range(len(buckets))],
                    [f"{b} days" for b in buckets])
    axes.set_ylabel("overdue (major units)")
    axes.set_title(f"Overdue invoices by age — {day.isoformat()}")
    if currencies:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "nothing overdue", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
