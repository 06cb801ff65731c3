"""/deal: a deal's stage, amounts, owner, quote and invoices, and the last events of its
timeline — found by customer name, quote, invoice or deal number.

Also the lookup every read command shares (/deal, /invoice, /license, /collect): parse
first (pure, so a malformed command or a request for help is answered in the ack
itself, and nothing changes); otherwise ack, check the role (a refusal is audited),
resolve the query — an invoice number, a deal (D-12, a quote or invoice number), or a
customer name matched loosely, with a pick-list when more than one customer could be
meant — and answer ephemerally. Pick-list and paging buttons finish the same lookup."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt import App

from bot.finance_blocks import (DEAL_EARLIER, DEAL_SHOW, Message, deal_card, deal_list, help_message, message,
                                not_found, page_pattern, pick_list, pick_pattern, plain, section, timeline_blocks,
                                unpack, usage_message)
from bot.identity import Identity
from closeloop.bootstrap import Services
from flows import finance_views as views
from flows.access import may
from parsers.slash import USAGE, Help, Lookup, UsageError, match_names, parse_deal

PAGE = 10  # list items per message: a card is at most 2 blocks, so a page stays far below 50

# (user, target, card key, offset) -> the answer. A target is {"t": "customer"|"deal"|"invoice", "r": ref}.
Render = Callable[[str, dict[str, Any], str, int], Message]
Respond = Callable[..., Any]


def register(app: App, services: Services, identity: Identity) -> None:
    render = deal_renderer(services)

    @app.command("/deal")
    def deal_command(ack: Callable[..., Any], command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, "/deal", parse_deal, command)
        if parsed is None:
            return
        assert isinstance(parsed, Lookup)
        user = command["user_id"]
        if refused(identity, user, "deal.view", respond):
            return
        answer_lookup(services, user=user, query=parsed.query, key=card_key(command), prefix="deal",
                      command="/deal", render=render, respond=respond)

    register_followups(app, identity, prefix="deal", permission="deal.view", render=render)

    @app.action(DEAL_SHOW)
    def show_deal(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        if refused(identity, user, "deal.view", respond):
            return
        value = unpack(action.get("value"))
        respond(**render(user, value, value.get("k") or body.get("trigger_id", ""), 0),
                response_type="ephemeral", replace_original=False)

    @app.action(DEAL_EARLIER)
    def earlier_events(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                       respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        if refused(identity, user, "deal.view", respond):
            return
        value = unpack(action.get("value"))
        deal_id, before = int(value["d"]), int(value["b"])
        page = services.ledger.read(views.timeline_page, deal_id, before=before, limit=PAGE)
        _, _, tz = moment(services)
        respond(**message(f"Earlier events of D-{deal_id}",
                          [section(f"*Earlier events of D-{deal_id}*"),
                           *timeline_blocks(page, tz=tz, key=str(value.get("k", "")))]),
                response_type="ephemeral", replace_original=False)


def deal_renderer(services: Services) -> Render:
    def render(user: str, target: dict[str, Any], key: str, offset: int) -> Message:
        now, _, tz = moment(services)
        kind, ref = target.get("t"), str(target.get("r", ""))
        read = services.ledger.read
        if kind == "customer":
            page = read(views.deals_of_customer, int(ref), now, offset=offset, limit=PAGE)
            if page.total != 1 or offset:
                return deal_list(read(views.customer, int(ref)), page, key=key, size=PAGE)
            deal_id = page.items[0].id
        elif kind == "invoice":
            found = read(views.deal_of_invoice, ref)
            if found is None:
                return plain(f"Invoice `{ref}` is not part of a deal; `/invoice {ref}` shows it.")
            deal_id = found
        else:
            deal_id = int(ref)
        return deal_card(read(views.deal, deal_id, now), read(views.timeline_page, deal_id, limit=PAGE),
                         tz=tz, key=key)

    return render


# --- the lookup the read commands share -------------------------------------------------

def parsed_or_answered(ack: Callable[..., Any], name: str, parse: Callable[[str], Any],
                       command: dict[str, Any]) -> Any | None:
    """Parse first — pure and fast, so it fits in the ack. A malformed command gets its
    usage and the closest valid form, help gets the help; both return None, having
    changed nothing. Anything else is acked empty and returned for the slow part."""
    try:
        parsed = parse(command.get("text") or "")
    except UsageError as error:
        ack(response_type="ephemeral", **usage_message(name, error.message, error.usage, error.suggestion))
        return None
    if isinstance(parsed, Help):
        ack(response_type="ephemeral", **help_message(parsed.command, USAGE.get(parsed.command, "")))
        return None
    ack()
    return parsed


def refused(identity: Identity, user: str, action: str, respond: Respond, *, deal_id: int | None = None) -> bool:
    """Deny by default: True (and the refusal answered and audited) unless the user may."""
    if identity.allowed(user, action, deal_id=deal_id):
        return False
    respond(text=identity.refusal(action), response_type="ephemeral", replace_original=False)
    return True


def may_see(services: Services, identity: Identity, user: str, action: str) -> bool:
    """Whether to show a button: asks without auditing (pressing it checks, and audits)."""
    return services.ledger.read(may, [user, *identity.groups_of(user)], action)


def card_key(payload: dict[str, Any]) -> str:
    """What identifies the request that drew a card: Slack's trigger id. Buttons carry it,
    so a double click or a retried delivery acts once."""
    return str(payload.get("trigger_id") or payload.get("action_ts") or "")


def moment(services: Services) -> tuple[datetime, date, ZoneInfo]:
    """Now, today in the company's time zone, and that zone."""
    tz = ZoneInfo(services.ledger.policy.timezone)
    now = services.ledger.clock.now()
    return now, now.astimezone(tz).date(), tz


def resolve(services: Services, query: str) -> dict[str, Any] | tuple[views.CustomerRef, ...]:
    """What a query names: {"t": "invoice"|"deal"|"customer", "r": ref}, or the customers
    it could mean (none: nothing matched)."""
    read = services.ledger.read
    number = read(views.invoice_number, query)
    if number is not None:
        return {"t": "invoice", "r": number}
    deal_id = read(views.deal_named, query)
    if deal_id is not None:
        return {"t": "deal", "r": str(deal_id)}
    known = read(views.customers)
    match = match_names(query, sorted({c.name for c in known}))
    if match.exact is not None:
        same = tuple(c for c in known if c.name == match.exact)
        return {"t": "customer", "r": str(same[0].id)} if len(same) == 1 else same
    return tuple(c for name in match.candidates for c in known if c.name == name)


def answer_lookup(services: Services, *, user: str, query: str, key: str, prefix: str, command: str,
                  render: Render, respond: Respond) -> None:
    found = resolve(services, query)
    if isinstance(found, dict):
        answer = render(user, {**found, "k": key}, key, 0)
    elif found:
        answer = pick_list(prefix, query, found, {"k": key})
    else:
        answer = not_found(command, query)
    respond(**answer, response_type="ephemeral")


def register_followups(app: App, identity: Identity, *, prefix: str, permission: str, render: Render) -> None:
    """The pick-list buttons (which customer) and the page buttons of a lookup: both carry
    a target, and answer in place of the message they are on."""
    def follow(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        if refused(identity, user, permission, respond):
            return
        value = unpack(action.get("value"))
        key = str(value.get("k") or card_key(body))
        respond(**render(user, value, key, max(0, int(value.get("o", 0)))), response_type="ephemeral",
                replace_original=True)

    app.action(pick_pattern(prefix))(follow)
    app.action(page_pattern(prefix))(follow)
