"""Block Kit for looking things up: deal cards and timelines, invoice and license cards,
what a customer owes by age, pick-lists, usage help, and the App Home per role.

Builders take the read-side views of flows.finance_views and return plain dicts.
Everything stays inside Slack's limits: at most 50 blocks in a message and 100 in a
Home tab, 3,000 characters in a section, 75 on a button; long lists are packed several
lines to a section, paged with buttons, or cut with an "and N more" line."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, tzinfo
from typing import Any

from flows.finance_views import (NOT_DUE, Aging, CustomerRef, DealView, InvoiceView, LicenseView, Page,
                                 PendingApproval, StageRow, TimelinePage)
from flows.invoices import InvoiceStatus
from flows.money import Money
from flows.quotes import Approval

Block = dict[str, Any]
Message = dict[str, Any]  # {"text": fallback, "blocks": [...]}, what ack/respond take

MESSAGE_BLOCKS = 50
HOME_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
BUTTON_TEXT = 75
HEADER_TEXT = 150

# action_id of the buttons these builders make (the listeners in bot/ answer them)
DEAL_SHOW = "deal_show"
DEAL_EARLIER = "deal_timeline_earlier"
INVOICE_RESEND = "invoice_resend"
INVOICE_MARK_PAID = "invoice_mark_paid"
LICENSE_SUSPEND = "license_suspend"
LICENSE_REINSTATE = "license_reinstate"
COLLECT_STATEMENT = "collect_statement"
LICENSE_MODAL = "license_status"  # callback_id of the modal that asks why


def pick_action(prefix: str, index: int) -> str:
    """Buttons of one actions block need distinct ids: deal_pick_0, deal_pick_1, …"""
    return f"{prefix}_pick_{index}"


def page_action(prefix: str, direction: str) -> str:
    return f"{prefix}_page_{direction}"


def pick_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{prefix}_pick_\d+$")


def page_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{prefix}_page_(prev|next)$")


# --- pieces ------------------------------------------------------------------------------

def pack(**value: Any) -> str:
    """A button value: compact JSON of ids (never objects)."""
    return json.dumps(value, separators=(",", ":"))


def unpack(value: str | None) -> dict[str, Any]:
    try:
        data = json.loads(value or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def escape(text: object) -> str:
    """Text someone typed, shown in mrkdwn without turning into markup or mentions."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def who(principal: str) -> str:
    """A Slack user as a mention; anyone else (closeloop, customer, an email) as text."""
    return f"<@{principal}>" if re.fullmatch(r"[UW][A-Z0-9]{2,}", principal) else escape(principal)


def amounts(totals: Iterable[Money]) -> str:
    shown = " + ".join(str(m) for m in totals)
    return shown or "—"


def on_day(instant: datetime | None, tz: tzinfo) -> str:
    return instant.astimezone(tz).strftime("%Y-%m-%d") if instant else "—"


def at_minute(instant: datetime, tz: tzinfo) -> str:
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def section(text: str, *, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def fields(*pairs: tuple[str, str]) -> Block:
    """Label/value pairs side by side (Slack shows at most 10)."""
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", FIELD_TEXT)}
                                          for label, value in pairs[:10]]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_TEXT), "emoji": True}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, *, style: str | None = None,
           confirm: Block | None = None) -> Block:
    element: Block = {"type": "button", "action_id": action_id, "value": value,
                      "text": {"type": "plain_text", "text": clip(text, BUTTON_TEXT), "emoji": True}}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm(title: str, text: str, yes: str) -> Block:
    return {"title": {"type": "plain_text", "text": clip(title, 100)},
            "text": {"type": "mrkdwn", "text": clip(text, 300)},
            "confirm": {"type": "plain_text", "text": clip(yes, 30)},
            "deny": {"type": "plain_text", "text": "Cancel"}}


def actions(*elements: Block) -> Block:
    return {"type": "actions", "elements": list(elements[:25])}


def packed(lines: Sequence[str], *, limit: int = SECTION_TEXT) -> list[Block]:
    """Lines packed into as few sections as fit 3,000 characters each."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        line = clip(line, limit)
        if chunk and len(chunk) + 1 + len(line) > limit:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(section(chunk))
    return blocks


def capped(blocks: list[Block], limit: int) -> list[Block]:
    """At most `limit` blocks; what does not fit is counted in a last line."""
    if len(blocks) <= limit:
        return blocks
    kept = blocks[:limit - 1]
    return [*kept, context(f"…and {len(blocks) - len(kept)} more blocks not shown; narrow the query to see them.")]


def message(text: str, blocks: list[Block]) -> Message:
    return {"text": clip(text, SECTION_TEXT), "blocks": capped(blocks, MESSAGE_BLOCKS)}


def more_line(page: Page[Any], noun: str) -> str:
    first = page.offset + 1 if page.items else page.offset
    return f"{noun.capitalize()} {first}–{page.offset + len(page.items)} of {page.total}" + (
        f" · and {page.more} more" if page.more else "")


def pager(prefix: str, page: Page[Any], target: dict[str, Any], size: int) -> list[Block]:
    """Previous / next buttons, when the list has more than one page."""
    buttons = []
    if page.offset > 0:
        buttons.append(button("◀ Previous", page_action(prefix, "prev"),
                              pack(**target, o=max(0, page.offset - size))))
    if page.more:
        buttons.append(button("Next ▶", page_action(prefix, "next"),
                              pack(**target, o=page.offset + len(page.items))))
    return [actions(*buttons)] if buttons else []


# --- answers to any command ----------------------------------------------------------------

def usage_message(command: str, error_message: str, usage: str, suggestion: str | None) -> Message:
    """A malformed command: what is wrong, the closest valid form, the usage. Nothing changed."""
    lines = [f":warning: {escape(error_message)} Nothing was changed."]
    if suggestion:
        lines.append(f"Closest valid form: `{escape(suggestion)}`")
    blocks = [section("\n".join(lines))]
    if usage:
        blocks.extend(packed(_usage_lines(usage)))
    return message(f"{error_message} — closest valid form: {suggestion}" if suggestion else error_message, blocks)


def help_message(command: str, usage: str) -> Message:
    return message(f"How to use {command}",
                   packed(_usage_lines(usage) if usage else [f"No help is written for {command} yet."]))


def _usage_lines(usage: str) -> list[str]:
    """The grammar's help is mrkdwn already; only its <placeholders> need escaping."""
    return [escape(line) for line in usage.splitlines()]


def plain(text: str) -> Message:
    return message(text, [section(text)])


def not_found(command: str, query: str) -> Message:
    return plain(f":mag: Nothing matches `{escape(query)}` — no customer, deal (D-12), quote or invoice number "
                 f"by that name. Try `{command} help`.")


def pick_list(prefix: str, query: str, choices: Sequence[CustomerRef], value: dict[str, Any]) -> Message:
    """Which customer did they mean? One button per candidate; pressing one finishes the lookup."""
    shown = choices[:5]
    buttons = [button(f"{c.name} ({c.country})", pick_action(prefix, i), pack(**value, t="customer", r=str(c.id)))
               for i, c in enumerate(shown)]
    text = f"More than one customer could be `{escape(query)}`. Which one did you mean?"
    if len(choices) == 1:
        text = f"No customer is called exactly `{escape(query)}`. Did you mean this one?"
    blocks = [section(text), actions(*buttons)]
    if len(choices) > len(shown):
        blocks.append(context(f"…and {len(choices) - len(shown)} more; type more of the name to narrow it."))
    return message(text, blocks)


# --- /deal ---------------------------------------------------------------------------------

def deal_card(deal: DealView, timeline: TimelinePage, *, tz: tzinfo, key: str) -> Message:
    """A deal's stage, amounts, owner, quote and invoices, then the last events of its timeline."""
    discount = ""
    if deal.discount_bp:
        discount = f" · {deal.discount_bp / 100:g} % off"
        if deal.approval is not Approval.NOT_NEEDED:
            discount += f" (discount {deal.approval.value})"
    invoices = ", ".join(f"`{n}` {s.value}" for n, s in deal.invoices) or "none yet"
    blocks = [
        header(f"{deal.reference} · {deal.customer}"),
        fields(("Stage", f"{_stage(deal.stage.value)} for {days(deal.days_in_stage)}"),
               ("Amount", f"{deal.amount}\nnet {deal.net} + tax {deal.tax}"),
               ("Owner", who(deal.owner)),
               ("Quote", f"`{deal.quote}` v{deal.version}{discount}"),
               ("Invoices", invoices),
               ("Paid / open", f"{deal.paid} paid · {deal.open_balance} open"),
               ("Age", f"{days(deal.age_days)} (opened {on_day(deal.created_at, tz)})")),
        *timeline_blocks(timeline, tz=tz, key=key),
    ]
    return message(f"{deal.reference} · {deal.customer}: {_stage(deal.stage.value)}, {deal.amount}", blocks)


def timeline_blocks(timeline: TimelinePage, *, tz: tzinfo, key: str) -> list[Block]:
    if not timeline.events:
        return [context("No events on the timeline yet.")]
    lines = [f"`{at_minute(e.occurred_at, tz)}` {escape(e.text)} — {who(e.actor)}" for e in timeline.events]
    blocks: list[Block] = [context(f"Timeline: {len(timeline.events)} of {timeline.total} events, latest last")]
    blocks.extend(packed(lines))
    if timeline.earlier is not None:
        blocks.append(actions(button("Earlier events", DEAL_EARLIER,
                                     pack(d=timeline.deal_id, b=timeline.earlier, k=key))))
    return blocks


def deal_list(customer: CustomerRef, page: Page[DealView], *, key: str, size: int) -> Message:
    """A customer's deals, one line each, with a button to open one."""
    if not page.items:
        return plain(f"{escape(customer.name)} has no deals yet.")
    blocks: list[Block] = [header(f"Deals of {customer.name}")]
    for deal in page.items:
        line = (f"*{deal.reference}* · {_stage(deal.stage.value)} · {deal.amount} · quote `{deal.quote}` · "
                f"owner {who(deal.owner)} · {days(deal.age_days)} old")
        blocks.append(section(line, accessory=button("Show", DEAL_SHOW, pack(t="deal", r=str(deal.id), k=key))))
    blocks.append(context(more_line(page, "deals")))
    blocks.extend(pager("deal", page, {"t": "customer", "r": str(customer.id), "k": key}, size))
    return message(f"{page.total} deals of {customer.name}", blocks)


# --- /invoice ------------------------------------------------------------------------------

def invoice_cards(title: str, page: Page[InvoiceView], *, today: date, finance: bool, key: str,
                  target: dict[str, Any], size: int) -> Message:
    """Each invoice's status, amounts and due date; Resend and Mark paid for finance."""
    if not page.items:
        return plain(f"{escape(title)}: no issued invoices yet.")
    blocks: list[Block] = [header(title)]
    for invoice in page.items:
        blocks.append(fields(("Invoice", f"`{invoice.number}`"),
                             ("Customer", escape(invoice.customer) + (f" · {invoice.deal}" if invoice.deal else "")),
                             ("Status", _invoice_status(invoice, today)),
                             ("Amount", f"{invoice.gross}" + (f" ({invoice.paid} paid)" if invoice.paid.amount else "")),
                             ("Balance", str(invoice.balance)),
                             ("Due", _due(invoice, today))))
        buttons = invoice_buttons(invoice, key=key) if finance else []
        if buttons:
            blocks.append(actions(*buttons))
    if page.total > 1:
        blocks.append(context(more_line(page, "invoices")))
    blocks.extend(pager("invoice", page, target, size))
    return message(f"{title}: {page.total} invoice(s)", blocks)


def invoice_buttons(invoice: InvoiceView, *, key: str) -> list[Block]:
    value = pack(n=invoice.number, k=key)
    buttons = []
    if invoice.status in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
        buttons.append(button("Resend", INVOICE_RESEND, value))
    if invoice.open:  # the amount shown is the amount recorded, however often it is pressed
        buttons.append(button(f"Mark paid ({invoice.balance})", INVOICE_MARK_PAID,
                              pack(n=invoice.number, a=invoice.balance.amount, k=key), style="primary",
                              confirm=confirm("Mark paid?", f"Record a payment of {invoice.balance} on "
                                              f"{invoice.number}, the whole open balance.", "Mark paid")))
    return buttons


def _invoice_status(invoice: InvoiceView, today: date) -> str:
    if invoice.days_overdue:
        return f":red_circle: {invoice.status.value} · {days(invoice.days_overdue)} overdue"
    return invoice.status.value


def _due(invoice: InvoiceView, today: date) -> str:
    if invoice.due_on is None:
        return "—"
    if invoice.status is not InvoiceStatus.ISSUED or invoice.days_overdue:
        return invoice.due_on.isoformat()
    ahead = (invoice.due_on - today).days
    return f"{invoice.due_on.isoformat()} ({'today' if ahead == 0 else 'in ' + days(ahead)})"


# --- /license ------------------------------------------------------------------------------

def license_cards(title: str, page: Page[LicenseView], *, tz: tzinfo, finance: bool, key: str,
                  target: dict[str, Any], size: int) -> Message:
    if not page.items:
        return plain(f"{escape(title)}: no licenses.")
    blocks: list[Block] = [header(title)]
    for item in page.items:
        blocks.append(fields(("License", f"#{item.id} · {escape(item.product)} × {item.seats}"),
                             ("Status", f"{_license_status(item.status)} since {on_day(item.status_changed_at, tz)}"),
                             ("Valid until", on_day(item.valid_until, tz) if item.valid_until else "no end"),
                             ("Deal", f"{item.deal} · {escape(item.customer)}"),
                             ("Features", escape(", ".join(item.features)) or "—")))
        if finance and item.status == "active":
            blocks.append(actions(button("Suspend", LICENSE_SUSPEND, pack(l=item.id, k=key), style="danger")))
        elif finance and item.status == "suspended":
            blocks.append(actions(button("Reinstate", LICENSE_REINSTATE, pack(l=item.id, k=key), style="primary")))
    if page.total > 1:
        blocks.append(context(more_line(page, "licenses")))
    blocks.extend(pager("license", page, target, size))
    return message(f"{title}: {page.total} license(s)", blocks)


def license_modal(item: LicenseView, verb: str, private_metadata: str) -> Block:
    """Asks why a license is suspended or reinstated (the reason goes on the timeline)."""
    title = "Suspend license" if verb == "suspend" else "Reinstate license"
    return {
        "type": "modal", "callback_id": LICENSE_MODAL, "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Suspend" if verb == "suspend" else "Reinstate"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"{'Suspend' if verb == 'suspend' else 'Reinstate'} license #{item.id}: "
                    f"*{escape(item.product)} × {item.seats}* of {escape(item.customer)} ({item.deal}), "
                    f"now {item.status}."),
            {"type": "input", "block_id": "reason",
             "label": {"type": "plain_text", "text": "Why? (it goes on the customer's timeline)"},
             "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True,
                         "max_length": 500}},
        ],
    }


def _license_status(status: str) -> str:
    return {"active": ":large_green_circle: active", "suspended": ":double_vertical_bar: suspended",
            "revoked": ":no_entry_sign: revoked"}.get(status, status)


# --- /collect ------------------------------------------------------------------------------

def aging_card(customer: CustomerRef, aging: Aging, *, finance: bool, key: str, size: int) -> Message:
    """What a customer owes, by days past due, and the invoices behind it."""
    blocks: list[Block] = [header(f"Open invoices · {customer.name}")]
    blocks.append(fields(*((_bucket_label(b.label), f"{b.count} · {amounts(b.totals)}") for b in aging.buckets)))
    page = aging.invoices
    if page.items:
        blocks.extend(packed([_aging_line(i) for i in page.items]))
        blocks.append(context(more_line(page, "open invoices")))
    else:
        blocks.append(section(f"{escape(customer.name)} owes nothing: no open invoices."))
    blocks.extend(pager("collect", page, {"t": "customer", "r": str(customer.id), "k": key}, size))
    if finance:
        blocks.append(actions(button("Send statement now", COLLECT_STATEMENT, pack(c=customer.id, k=key),
                                     confirm=confirm("Send a statement?", f"Email {escape(customer.name)} a "
                                                     "statement of their open invoices now.", "Send"))))
    overdue = sum(b.count for b in aging.overdue)
    return message(f"{customer.name}: {page.total} open invoice(s), {overdue} overdue", blocks)


def _aging_line(invoice: InvoiceView) -> str:
    due = f"due {invoice.due_on.isoformat()}" if invoice.due_on else "no due date"
    late = f" · *{days(invoice.days_overdue)} overdue*" if invoice.days_overdue else ""
    return f"`{invoice.number}` {escape(invoice.customer)} · {invoice.balance} open · {due}{late}"


def _bucket_label(label: str) -> str:
    return "Not yet due" if label == NOT_DUE else f"{label} days past due"


# --- App Home ------------------------------------------------------------------------------

def home_view(*, roles: Sequence[str], now: datetime, tz: tzinfo, rep: Page[DealView] | None = None,
              pipeline: Sequence[StageRow] | None = None, approvals: Page[PendingApproval] | None = None,
              collections: Aging | None = None) -> Block:
    """The Home tab: a section per role the user holds, or how to get one."""
    blocks: list[Block] = [header("closeloop"),
                           context(f"Your roles: {', '.join(roles) or 'none'} · as of {at_minute(now, tz)}")]
    if not roles:
        blocks.append(section(
            "You have no closeloop role yet, so there is nothing to show here. Ask an admin to grant you one "
            "(`closeloop roles grant <your Slack id> rep`, or `manager`, `finance`, `admin`). "
            "Reps see their open deals, managers the pipeline and discounts to approve, finance collections."))
    if rep is not None:
        blocks.extend(_rep_section(rep))
    if pipeline is not None:
        blocks.extend(_manager_section(pipeline, approvals))
    if collections is not None:
        blocks.extend(_finance_section(collections))
    return {"type": "home", "blocks": capped(blocks, HOME_BLOCKS)}


def _rep_section(deals: Page[DealView]) -> list[Block]:
    blocks = [divider(), header("Your open quotes and deals")]
    if not deals.items:
        return [*blocks, section("No open deals. Draft a quote with `/quote new`.")]
    blocks.extend(packed([f"*{d.reference}* {escape(d.customer)} · {_stage(d.stage.value)} · {d.amount} · "
                          f"{days(d.age_days)} old, {days(d.days_in_stage)} in this stage · `{d.quote}`"
                          for d in deals.items]))
    if deals.more:
        blocks.append(context(f"…and {deals.more} more; `/deal <customer>` finds any of them."))
    return blocks


def _manager_section(rows: Sequence[StageRow], approvals: Page[PendingApproval] | None) -> list[Block]:
    blocks = [divider(), header("Pipeline by stage"),
              fields(*((_stage(r.stage.value), f"{r.count} · {amounts(r.totals)}") for r in rows))]
    if approvals is not None:
        blocks.append(header("Discounts waiting for approval"))
        if not approvals.items:
            blocks.append(section("None waiting."))
        else:
            blocks.extend(packed([f"*{a.deal}* `{a.quote}` v{a.version} · {escape(a.customer)} · "
                                  f"{a.discount_bp / 100:g} % off {a.amount} · by {who(a.owner)} · "
                                  f"waiting {days(a.waiting_days)}" for a in approvals.items]))
            blocks.append(context("Approve or reject with the buttons in each deal's thread."
                                  + (f" …and {approvals.more} more." if approvals.more else "")))
    return blocks


def _finance_section(aging: Aging) -> list[Block]:
    blocks = [divider(), header("Collections: overdue invoices"),
              fields(*((_bucket_label(b.label), f"{b.count} · {amounts(b.totals)}") for b in aging.overdue))]
    page = aging.invoices
    if page.items:
        blocks.extend(packed([_aging_line(i) for i in page.items]))
        if page.more:
            blocks.append(context(f"…and {page.more} more; `/collect <customer>` shows a customer's."))
    else:
        blocks.append(section("Nothing overdue."))
    return blocks


def _stage(value: str) -> str:
    return value.replace("_", " ")
