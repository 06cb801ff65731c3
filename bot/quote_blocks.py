"""Block Kit for quotes: the preview a rep acts on, the list of their deals, the
customer pick-list, usage help, the quote modal and the small "why?" modals.

Pure builders (records in, dicts out). Every message stays inside Slack's limits —
at most 50 blocks, 3,000 characters per section text, 75 per option — by splitting
long text over sections and paging or trimming long lists."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flows.deals import Stage
from flows.money import Money
from flows.quote_views import CatalogItem, CustomerRef, DealRow, QuoteView
from flows.quotes import Approval

Block = dict[str, Any]

# action ids (buttons and selects) and modal callback ids this module's blocks carry
SEND = "quote_send"
VOID = "quote_void"
SHOW = "quote_show"
LIST_PAGE = "quote_list_page"
PICK_CUSTOMER = "quote_pick_customer"
CUSTOMER_SEARCH = "quote_customer"
NEW_MODAL = "quote_new"
VOID_MODAL = "quote_void_reason"

# blocks of the quote modal (errors are reported against these ids)
CUSTOMER = "customer"
DISCOUNT = "discount"
REASON = "reason"

MAX_BLOCKS = 50          # per message
MAX_SECTION = 3000       # characters of a section's text
MAX_OPTIONS = 100        # per select (or per option group)
MAX_OPTION_TEXT = 75
MAX_VALUE = 2000         # a button's value
PAGE_SIZE = 10           # deals per page of /quote list
MODAL_LINES = 3          # empty line rows in a fresh quote modal
MAX_MODAL_LINES = 15     # 3 inputs each, well inside a modal's 100 blocks


def line_block(index: int, part: str) -> str:
    """Block id of one field of a line row of the quote modal ("sku", "qty", "price")."""
    return f"line{index}_{part}"


# --- text ---------------------------------------------------------------------------

def esc(text: object) -> str:
    """Text safe inside mrkdwn: Slack reads &, < and > as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int = MAX_OPTION_TEXT) -> dict[str, Any]:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def money(amount: int, currency: str) -> str:
    return str(Money(amount, currency))


def percent(bp: int) -> str:
    return f"{Decimal(bp).scaleb(-2).normalize():f} %"


def who(principal: str | None) -> str:
    """A Slack user as a mention; anything else (an email, "closeloop") as text."""
    if principal and principal[:1] in ("U", "W") and principal.isalnum() and principal.isupper():
        return f"<@{principal}>"
    return esc(principal or "someone")


def days(n: int) -> str:
    return "today" if n <= 0 else "1 day" if n == 1 else f"{n} days"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION] or " "}}


def sections(text: str, *, limit: int = MAX_SECTION) -> list[Block]:
    """Text over as many sections as it needs, cut between lines (or inside a line
    longer than a section)."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return [section(part) for part in parts]


def trimmed(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    """At most `limit` blocks; what did not fit is said in the last one."""
    if len(blocks) <= limit:
        return blocks
    return [*blocks[: limit - 1], context(f"…and {len(blocks) - limit + 1} more parts not shown here")]


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_SECTION]}]}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value[:MAX_VALUE],
                               "text": plain(text)}
    if style:
        element["style"] = style
    return element


# --- help and usage ------------------------------------------------------------------

def usage_blocks(message: str, usage: str, suggestion: str | None = None) -> list[Block]:
    """A malformed command: what is wrong, the closest valid form, then the usage."""
    blocks = [section(f":grey_question: {esc(message)}")]
    if suggestion:
        blocks.append(section(f"Closest valid form:\n`{esc(suggestion)}`"))
    if usage:
        blocks += [{"type": "divider"}, *help_blocks(usage)]
    return trimmed(blocks)


def help_blocks(usage: str) -> list[Block]:
    """The usage text is mrkdwn already (`code` for forms); only <placeholders> need escaping."""
    return trimmed(sections(esc(usage or "/quote help")))


# --- the quote preview ---------------------------------------------------------------

_PER = {"month": "/month", "year": "/year"}


def quote_preview(q: QuoteView, *, note: str | None = None) -> list[Block]:
    """The quote as the rep checks it before sending: lines, totals, the discount's
    approval, and the buttons that act on it."""
    head: list[Block] = sections(note) if note else []
    head.append({"type": "header", "text": plain(f"{q.number} · v{q.version} · {q.customer}", 150)})
    head.append(section(
        f"*{esc(q.customer)}* · deal {q.deal_ref} · stage *{q.stage.value.replace('_', ' ')}*\n"
        f"Valid until {q.valid_until.isoformat()} · payment terms {q.payment_terms_days} days · "
        f"owner {who(q.owner)}"))
    lines = "\n".join(
        f"{l.position}. `{esc(l.sku)}` {esc(l.description)} — {l.quantity.normalize():f} {esc(l.unit)} × "
        f"{money(l.unit_amount, q.currency)}{_PER.get(l.interval or '', '')} = *{money(l.net, q.currency)}*"
        for l in q.lines)
    tail: list[Block] = [section(_totals(q))]
    approval = _approval(q)
    if approval:
        tail.append(context(approval))
    actions = []
    if q.sendable:
        actions.append(button("Send for signature", SEND, f"{q.deal_id}:{q.version}", style="primary"))
    if q.voidable:
        actions.append(button("Void", VOID, f"{q.deal_id}:{q.number}", style="danger"))
    if q.stage is Stage.SENT:  # DocuSign emails the signer again (no effect for email signing: it says so)
        actions.append(button("Remind signer", "esign_remind", str(q.deal_id)))
    if actions:
        tail.append({"type": "actions", "elements": actions})
    body = sections(lines)
    room = MAX_BLOCKS - len(head) - len(tail)
    if len(body) > room:
        body = [*body[: room - 1], context(f"…and more lines: {len(q.lines)} in all, every one on the PDF")]
    return [*head, *body, *tail]


def preview_text(q: QuoteView) -> str:
    """The notification text beside the blocks."""
    return f"{q.number} v{q.version} for {q.customer}: {money(q.gross, q.currency)} ({q.stage.value})"


def _totals(q: QuoteView) -> str:
    parts = [f"Net {money(q.net, q.currency)}"]
    parts += [f"tax {percent(t.rate_bp)} on {money(t.taxable, q.currency)}: {money(t.tax, q.currency)}"
              for t in q.taxes]
    text = " · ".join(parts) + f"\n*Total {money(q.gross, q.currency)}*"
    if q.discount_bp:
        text += f" (after a {percent(q.discount_bp)} discount on every line)"
    return text


def _approval(q: QuoteView) -> str | None:
    if q.approval is Approval.PENDING:
        return (f":hourglass_flowing_sand: The {percent(q.discount_bp)} discount is above policy: a manager must "
                "approve it in the deal's thread before the quote can be sent.")
    if q.approval is Approval.APPROVED:
        return f":white_check_mark: Discount approved by {who(q.approval_by)}."
    if q.approval is Approval.REJECTED:
        return (f":no_entry: Discount rejected by {who(q.approval_by)}: revise it with "
                f"`/quote discount {q.number} N%` before sending.")
    return None


# --- /quote list -------------------------------------------------------------------------

def deal_list(rows: Sequence[DealRow], *, total: int, offset: int, page_size: int = PAGE_SIZE) -> list[Block]:
    """One page of a rep's open deals, each with a Show button, and Previous/Next."""
    if not rows:
        return [section("You have no open quotes. Start one with `/quote new` (or `/quote help`).")]
    blocks: list[Block] = [{"type": "header", "text": plain(
        f"Your open quotes: {offset + 1}–{offset + len(rows)} of {total}", 150)}]
    for row in rows:
        text = (f"*{esc(row.number)}* v{row.version} · {esc(row.customer)} · {row.deal_ref}\n"
                f"{row.stage.value.replace('_', ' ')} for {days(row.stage_days)} · "
                f"*{money(row.amount, row.currency)}* · opened {days(row.age_days)} ago")
        if row.approval is Approval.PENDING:
            text += " · :hourglass_flowing_sand: discount awaiting approval"
        blocks.append({**section(text), "accessory": button("Show", SHOW, str(row.deal_id))})
    paging = []
    if offset > 0:
        paging.append(button("Previous", LIST_PAGE, str(max(0, offset - page_size))))
    if offset + len(rows) < total:
        paging.append(button("Next", LIST_PAGE, str(offset + len(rows))))
    if paging:
        blocks.append({"type": "actions", "elements": paging})
    return trimmed(blocks)


# --- the customer pick-list ------------------------------------------------------------

def customer_label(customer: CustomerRef) -> str:
    return f"{customer.name} ({customer.country}, {customer.currency})"


def customer_pick_list(query: str, choices: Sequence[tuple[CustomerRef, str]]) -> list[Block]:
    """`query` named more than one customer: one button per candidate, whose value
    finishes the command with that customer."""
    blocks = [section(f"Which customer did you mean by “{esc(query)}”? Choose one to finish the command:")]
    for customer, value in choices[: MAX_BLOCKS - 1]:
        blocks.append({**section(f"*{esc(customer.name)}* · {customer.country} · quotes in {customer.currency}"),
                       "accessory": button("Choose", PICK_CUSTOMER, value)})
    return blocks


# --- the quote modal ---------------------------------------------------------------------

@dataclass(frozen=True)
class ModalLine:
    sku: str | None = None
    quantity: str | None = None
    price: str | None = None


def _sku_option(item: CatalogItem) -> dict[str, Any]:
    prices = " · ".join(f"{money(amount, currency)}" for currency, amount in sorted(item.prices.items()))
    per = f" per {item.unit}" + (f"/{item.interval}" if item.interval else "")
    return {"text": plain(f"{item.code} · {item.name}"), "value": item.code,
            "description": plain(f"{prices}{per}" if prices else f"no price{per}")}


def _sku_select(options: list[dict[str, Any]], initial: dict[str, Any] | None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "static_select", "action_id": "sku", "placeholder": plain("Choose a SKU")}
    if len(options) <= MAX_OPTIONS:
        element["options"] = options
    else:  # a big catalog: groups of 100 (Slack allows 100 groups)
        element["option_groups"] = [
            {"label": plain(f"{chunk[0]['value']} – {chunk[-1]['value']}"), "options": chunk}
            for chunk in (options[i:i + MAX_OPTIONS] for i in range(0, MAX_OPTIONS ** 2, MAX_OPTIONS))
            if chunk]
    if initial is not None:
        element["initial_option"] = initial
    return element


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = True,
           hint: str | None = None) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, 2000), "element": element,
                    "optional": optional}
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _text_input(action_id: str, *, initial: str | None = None, placeholder: str | None = None,
                multiline: bool = False, max_length: int = 60) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "multiline": multiline,
                               "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    return element


def customer_option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text), "value": value[:150]}


def quote_modal(catalog: Sequence[CatalogItem], *, metadata: dict[str, Any],
                customer: dict[str, Any] | None = None, lines: Sequence[ModalLine] = (),
                discount: str | None = None) -> dict[str, Any]:
    """The quote form: a customer searched in the ledger, line rows (SKU from the
    catalog, quantity, price override) and a discount."""
    if not catalog:
        return notice_modal("New quote", "The catalog is empty, so there is nothing to quote yet. "
                                         "Load one with `closeloop catalog load FILE`.")
    options = [_sku_option(item) for item in catalog[: MAX_OPTIONS ** 2]]
    by_code = {option["value"]: option for option in options}
    customer_select: dict[str, Any] = {"type": "external_select", "action_id": CUSTOMER_SEARCH,
                                       "placeholder": plain("Search customers by name"), "min_query_length": 1}
    if customer is not None:
        customer_select["initial_option"] = customer
    blocks: list[Block] = [
        section("Prices come from the catalog in the customer's currency; give a unit price to override one."),
        _input(CUSTOMER, "Customer", customer_select, optional=False),
    ]
    rows = max(MODAL_LINES, min(len(lines), MAX_MODAL_LINES))
    for index in range(1, rows + 1):
        line = lines[index - 1] if index <= len(lines) else ModalLine()
        blocks.append(_input(line_block(index, "sku"), f"Line {index}: SKU",
                             _sku_select(options, by_code.get(line.sku or ""))))
        blocks.append(_input(line_block(index, "qty"), f"Line {index}: quantity",
                             _text_input("qty", initial=line.quantity, placeholder="1")))
        blocks.append(_input(line_block(index, "price"), f"Line {index}: unit price (optional)",
                             _text_input("price", initial=line.price, placeholder="catalog price")))
    blocks.append(_input(DISCOUNT, "Discount %", _text_input("discount", initial=discount, placeholder="0"),
                         hint="Above the policy limit a manager must approve before the quote is sent."))
    return {"type": "modal", "callback_id": NEW_MODAL, "title": plain("New quote", 24),
            "submit": plain("Draft quote", 24), "close": plain("Cancel", 24), "blocks": blocks,
            "private_metadata": _metadata(metadata)}


def reason_modal(*, callback_id: str, title: str, prompt: str, label: str, submit: str,
                 metadata: dict[str, Any]) -> dict[str, Any]:
    """A small modal asking why (voiding a quote, rejecting a discount)."""
    return {"type": "modal", "callback_id": callback_id, "title": plain(title, 24), "submit": plain(submit, 24),
            "close": plain("Cancel", 24), "private_metadata": _metadata(metadata),
            "blocks": [section(prompt),
                       _input(REASON, label, _text_input(REASON, multiline=True, max_length=500), optional=False)]}


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (no submit)."""
    return {"type": "modal", "title": plain(title, 24), "close": plain("Close", 24), "blocks": sections(text)}


def _metadata(data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > 3000:  # Slack's limit; our metadata is ids and a URL, far below it
        raise ValueError("modal metadata too long")
    return text
