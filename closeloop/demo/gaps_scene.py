"""The demo's last act, completeness: the storage vendor's bill arrives, finance presses
[Send reminder] on the overdue invoice from /gaps, and the morning digest is posted to
the finance channel — its blocks, aging chart and CSV also written to DIR/gaps/."""
from __future__ import annotations

import json
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.gap_blocks import GAP_ACT
from adapters.gap_digest import render_digest
from adapters.gap_files import gaps_csv
from closeloop.gaps_wiring import digest_schedule, gap_policy
from flows.gap_digest import DigestSchedule, digest_data, post_digest_if_due
from flows.gap_models import GapDigest
from flows.gap_states import evaluate_gaps, list_gaps
from flows.usage import UsageLine, record_vendor_usage

FINANCE = "U0FINANCE"


def show_gaps(log: Any, services: Any, scene: Any, out: Path) -> None:
    ledger, clock = services.ledger, services.ledger.clock
    policy = gap_policy(services.settings)
    folder = out / "gaps"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*"):
        stale.unlink()
    log.say()
    log.say("8. Completeness gaps and the morning digest")
    today = policy.today(clock.now())
    month = date(today.year, today.month, 1)
    log.step("the storage vendor's bill for this month: 1,250 GB for 150.00 EUR (closeloop usage import)",
             lambda: ledger.run(record_vendor_usage, vendor="Blob Storage Inc", sku_code="STORAGE-GB",
                                source="csv:blob-storage.csv", actor="demo",
                                lines=[UsageLine(month, _next_month(month), Decimal(1250), 15000, "EUR")]))
    found = log.step("all 17 gap rules checked", lambda: ledger.run(evaluate_gaps, policy))
    log.say(f"      {found.open} open gaps, found by {found.queries} queries (one per rule):")
    page = ledger.read(list_gaps, clock.now(), limit=None)
    for gap in page.items:
        amount = f" · {gap.amount}" if gap.amount else ""
        log.say(f"      - {gap.title}: {gap.label}{amount} · {gap.age_days} days · owner {gap.owner}"
                + (f" · {gap.detail}" if gap.detail else ""))
    (folder / "gaps.csv").write_text(gaps_csv(page.items), encoding="utf-8")
    overdue = next((g for g in page.items if g.rule == "invoice-overdue"), None)
    if overdue is not None:
        log.press(scene, FINANCE, "Send reminder", GAP_ACT + "remind", json.dumps({"g": overdue.id}))
        scene.settle()
    schedule = digest_schedule(services.settings)
    due = DigestSchedule(schedule.at, schedule.timezone).due_day(clock.now())
    log.say(f"  · the scheduler ticks every few minutes; the digest is due at {schedule.at:%H:%M} "
            f"{schedule.timezone} ({'due now' if due else 'not yet today: the demo posts it anyway'})")
    day = log.step("digest claimed for today (a second tick the same day posts nothing)", lambda: ledger.run(
        post_digest_if_due, policy, DigestSchedule(_midnight(), schedule.timezone)))
    again = ledger.run(post_digest_if_due, policy, DigestSchedule(_midnight(), schedule.timezone))
    log.say(f"      second tick: {'posted again (wrong!)' if again else 'nothing to do, as it should be'}")
    services.relay.drain()
    claim = ledger.read(lambda s: s.get(GapDigest, day))
    digest = ledger.read(digest_data, day, claim.since, clock.now(), policy)
    rendered = render_digest(digest, policy.timezone)
    (folder / f"digest-{day}.json").write_text(json.dumps(rendered.messages, indent=2, ensure_ascii=False),
                                               encoding="utf-8")
    (folder / f"aging-chart-{day}.png").write_bytes(rendered.chart_png)
    posted = [c for c in scene.api.of("chat.postMessage") if c.args.get("channel") == services.settings.slack_finance_channel]
    uploads = [c.args.get("filename") for c in scene.api.of("files.getUploadURLExternal")]
    log.say(f"  ✓ digest posted to {services.settings.slack_finance_channel}: {len(posted)} message(s), "
            f"{sum(len(c.args.get('blocks') or []) for c in posted)} blocks; files uploaded: {', '.join(uploads)}")
    for total in digest.totals:
        log.say(f"      {total.title}: {total.count} · " + (" + ".join(str(m) for m in total.totals) or "—"))
    log.say(f"  · {rendered.note()}")
    log.say(f"  ✓ written: gaps/digest-{day}.json (the blocks), gaps/aging-chart-{day}.png, gaps/gaps.csv")


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _midnight() -> time:
    return time(0, 0)
