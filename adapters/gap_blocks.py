"""Block Kit for completeness gaps: a gap as a line with its buttons (act, snooze), a
list of gaps, and the daily digest split into messages within Slack's limits (50
blocks a message, 3,000 characters a section, 75 on a button). Used by /gaps and
App Home (bot/) and by the digest the relay posts (adapters/gap_digest.py)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from flows.finance_views import Page
from flows.gap_digest import Digest
from flows.gap_states import GapView
from flows.gaps import INVOICE, REINSTATE, REMIND, SUSPEND, aging_bucket
from flows.money import Money

Block = dict[str, Any]
Message = dict[str, Any]

MESSAGE_BLOCKS = 50
SECTION_TEXT = 3000
BUTTON_TEXT = 75

GAP_SNOOZE = "gap_snooze"            # opens the snooze modal
GAP_SNOOZE_MODAL = "gap_snooze_modal"
GAP_ACT = "gap_act_"                 # + the action: gap_act_remind, gap_act_invoice, …
ACTION_LABEL = {REMIND: "Send reminder", INVOICE: "Issue invoice", SUSPEND: "Suspend license",
                REINSTATE: "Reinstate license"}


def escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150), "emoji": True}}


def button(text: str, action_id: str, value: dict[str, Any], style: str | None = None) -> Block:
    block: Block = {"type": "button", "action_id": action_id, "value": json.dumps(value, separators=(",", ":")),
                    "text": {"type": "plain_text", "text": clip(text, BUTTON_TEXT), "emoji": True}}
    if style:
        block["style"] = style
    return block


def packed(lines: Iterable[str]) -> list[Block]:
    """Lines packed into as few sections as fit in 3,000 characters each."""
    blocks: list[Block] = []
    current = ""
    for line in lines:
        line = clip(line, SECTION_TEXT)
        if current and len(current) + 1 + len(line) > SECTION_TEXT:
            blocks.append(section(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(section(current))
    return blocks


def amounts(totals: Iterable[Money]) -> str:
    return " + ".join(str(m) for m in totals) or "—"


def owner_text(owner: str) -> str:
    return owner if owner in ("finance", "admin") else f"<@{owner}>"


def gap_line(gap: GapView, tz: tzinfo) -> str:
    parts = [f"*{escape(gap.title)}*", f"`{escape(gap.label)}`"]
    if gap.customer:
        parts.append(escape(gap.customer))
    if gap.amount is not None:
        parts.append(str(gap.amount))
    age = f"{gap.age_days} day{'s' if gap.age_days != 1 else ''}"
    if gap.rule == "invoice-overdue":
        age += f" overdue ({aging_bucket(gap.age_days)})"
    parts.append(age)
    parts.append(f"owner {owner_text(gap.owner)}")
    if gap.detail:
        parts.append(escape(gap.detail))
    if gap.snoozed_until:
        parts.append(f"snoozed until {gap.snoozed_until.astimezone(tz):%Y-%m-%d} by {owner_text(gap.snoozed_by or '?')}: "
                     f"{escape(gap.snooze_reason or '')}")
    return " · ".join(parts)


def gap_buttons(gap: GapView) -> Block:
    value = {"g": gap.id}
    elements = []
    if gap.action:
        elements.append(button(ACTION_LABEL[gap.action], GAP_ACT + gap.action, value,
                               "danger" if gap.action == SUSPEND else "primary"))
    elements.append(button("Snooze…", GAP_SNOOZE, value))
    return {"type": "actions", "elements": elements}


def gap_unit(gap: GapView, tz: tzinfo) -> list[Block]:
    """A gap and its buttons: two blocks that stay together when a message is split."""
    return [section(gap_line(gap, tz)), gap_buttons(gap)]


def gap_list(title: str, page: Page[GapView], tz: tzinfo, *, as_of: datetime | None = None,
             hint: str = "") -> Message:
    blocks: list[Block] = [section(f"*{escape(title)}* — {page.total} open")]
    if as_of is not None:
        blocks.append(context(f"as of the last check, {as_of.astimezone(tz):%Y-%m-%d %H:%M}"))
    if not page.items:
        blocks.append(section(":white_check_mark: No open gaps here."))
    for gap in page.items:
        blocks.extend(gap_unit(gap, tz))
    if page.more:
        blocks.append(context(f"…and {page.more} more. {hint}".strip()))
    return {"text": f"{title}: {page.total} open gaps", "blocks": blocks[:MESSAGE_BLOCKS]}


def snooze_modal(gap: GapView, today: date, metadata: str) -> Block:
    return {
        "type": "modal", "callback_id": GAP_SNOOZE_MODAL, "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Snooze a gap"},
        "submit": {"type": "plain_text", "text": "Snooze"}, "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(gap_line(gap, timezone.utc)),
            {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Why"},
             "element": {"type": "plain_text_input", "action_id": "reason", "max_length": 300,
                         "placeholder": {"type": "plain_text", "text": "e.g. waiting for the customer's PO"}}},
            {"type": "input", "block_id": "until", "label": {"type": "plain_text", "text": "Until"},
             "element": {"type": "datepicker", "action_id": "until",
                         "initial_date": (today + timedelta(days=7)).isoformat()}},
        ],
    }


# --- the daily digest ---------------------------------------------------------------------

def digest_messages(digest: Digest, tz: tzinfo) -> list[Message]:
    """The digest as one or more messages, each within 50 blocks; units never split."""
    since = digest.since.astimezone(tz)
    open_total = sum(t.count for t in digest.totals)
    summary = [header(f"Completeness digest — {digest.day.isoformat()}"),
               section(f"*{open_total}* open gap{'s' if open_total != 1 else ''} · *{digest.opened.total}* new and "
                       f"*{digest.resolved.total}* resolved since {since:%Y-%m-%d %H:%M}"),
               context("The aging chart, the full list (CSV) and the aging report are attached below.")]
    units: list[list[Block]] = [summary]
    if digest.totals:
        units.append([section("*At stake per rule*"),
                      *packed(f"• {escape(t.title)} (`{t.rule}`): {t.count} · {amounts(t.totals)}"
                              for t in digest.totals)])
    units.extend(_listed("New since yesterday", digest.opened.items, digest.opened.more, tz))
    units.extend(_listed("Resolved since yesterday", digest.resolved.items, digest.resolved.more, tz, resolved=True))
    if digest.top.items:
        units.append([section("*Top items* (most at stake first)")])
        units.extend(gap_unit(gap, tz) for gap in digest.top.items)
        if digest.top.more:
            units.append([context(f"…and {digest.top.more} more in the attached CSV, or `/gaps all`.")])
    return split(units, f"Completeness digest {digest.day.isoformat()}: {open_total} open gaps")


def _listed(title: str, gaps: Sequence[GapView], more: int, tz: tzinfo, *, resolved: bool = False) -> list[list[Block]]:
    if not gaps:
        return [[section(f"*{title}*: none")]]
    mark = ":white_check_mark: " if resolved else ":new: "
    lines = [mark + gap_line(gap, tz) for gap in gaps]
    if more:
        lines.append(f"…and {more} more")
    return [[section(f"*{title}*"), *packed(lines)]]


def split(units: Sequence[list[Block]], text: str, limit: int = MESSAGE_BLOCKS) -> list[Message]:
    messages: list[list[Block]] = [[]]
    for unit in units:
        if messages[-1] and len(messages[-1]) + len(unit) > limit:
            messages.append([])
        messages[-1].extend(unit[:limit])
    count = len(messages)
    return [{"text": text if count == 1 else f"{text} ({n}/{count})", "blocks": blocks}
            for n, blocks in enumerate(messages, start=1)]
