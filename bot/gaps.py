"""/gaps: completeness gaps — mine (by default), all, by rule, by customer — each with a
button to act (send a reminder, issue the invoice, suspend or reinstate the license)
and one to snooze it, which opens a modal for the reason and the end date.

"Mine" is the gaps owned by the person, plus finance's when they hold the finance role
and admin's when they are an admin. The list shows the last evaluation's findings,
checked again first when that is more than a minute old. Buttons on the daily digest
are the same buttons, answered here."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from slack_bolt import App
from slack_sdk.webhook import WebhookClient

from adapters.gap_blocks import GAP_ACT, GAP_SNOOZE, GAP_SNOOZE_MODAL, gap_list, snooze_modal
from bot.deal import Respond, moment, parsed_or_answered, refused, resolve
from bot.finance_blocks import escape, pack, plain, unpack
from bot.identity import Identity
from closeloop.bootstrap import Services
from closeloop.gaps_wiring import gap_policy
from flows import finance_views as views
from flows.access import Role, roles_of
from flows.errors import LedgerError
from flows.gap_actions import ACTION_PERMISSION, act_on_gap
from flows.gap_states import evaluate_gaps, gap, last_run, list_gaps, snooze_gap
from flows.gaps import RULES_BY_NAME
from flows.steps import Done
from parsers.slash import GapsList, match_names, parse_gaps

PAGE = 20           # a gap is two blocks: 20 of them and the header stay below 50
STALE = timedelta(minutes=1)


def register(app: App, services: Services, identity: Identity) -> None:
    read = services.ledger.read

    @app.command("/gaps")
    def gaps_command(ack: Callable[..., Any], command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, "/gaps", parse_gaps, command)
        if parsed is None:
            return
        assert isinstance(parsed, GapsList)
        user = command["user_id"]
        if refused(identity, user, "gaps.view", respond):
            return
        if parsed.rule and parsed.rule not in RULES_BY_NAME:
            close = match_names(parsed.rule, sorted(RULES_BY_NAME)).candidates
            hint = f" Did you mean `{close[0]}`?" if close else ""
            respond(**plain(f":mag: There is no gap rule `{escape(parsed.rule)}`.{hint} Rules: "
                            + ", ".join(f"`{name}`" for name in RULES_BY_NAME)), response_type="ephemeral")
            return
        customer_id, title = None, "Your gaps" if parsed.scope == "mine" else "All gaps"
        if parsed.customer:
            customer_id = _customer(services, parsed.customer)
            if customer_id is None:
                respond(**plain(f":mag: No single customer matches `{escape(parsed.customer)}`; try the exact "
                                "name."), response_type="ephemeral")
                return
            title += f" of {read(views.customer, customer_id).name}"
        if parsed.rule:
            title += f" · {RULES_BY_NAME[parsed.rule].title}"
        now, _, tz = moment(services)
        checked = checked_recently(services)
        owners = None if parsed.scope == "all" else owners_of(services, identity, user)
        page = read(list_gaps, now, owners=owners, rule=parsed.rule, customer_id=customer_id, limit=PAGE)
        hint = "`/gaps all`, `/gaps rule NAME` or `closeloop gaps` list them all."
        respond(**gap_list(title, page, tz, as_of=checked, hint=hint), response_type="ephemeral")

    @app.action(re.compile(rf"^{GAP_ACT}(remind|invoice|suspend|reinstate)$"))
    def act(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        user, verb = body["user"]["id"], action["action_id"][len(GAP_ACT):]
        gap_id = int(unpack(action.get("value")).get("g", 0))
        found = read(gap, gap_id, services.ledger.clock.now())
        if refused(identity, user, ACTION_PERMISSION[verb], respond, deal_id=found.deal_id):
            return
        # One press of one button on one message acts once, however often it is pressed.
        message = ((body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
                   or action.get("action_ts", ""))
        done, text = services.ledger.run(act_on_gap, gap_id, action=verb, actor=user,
                                         request_key=f"{message}:{gap_id}:{verb}")
        mark = ":white_check_mark:" if done is Done.ACTED else ":information_source: Already done:"
        respond(**plain(f"{mark} {escape(text)} (gap `{found.key}`). It resolves at the next check once the step "
                        "has happened."), response_type="ephemeral", replace_original=False)

    @app.action(GAP_SNOOZE)
    def ask_snooze(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], respond: Respond,
                   client: Any) -> None:
        ack()
        user = body["user"]["id"]
        gap_id = int(unpack(action.get("value")).get("g", 0))
        now, today, _ = moment(services)
        found = read(gap, gap_id, now)
        if refused(identity, user, "gaps.snooze", respond, deal_id=found.deal_id):
            return
        client.views_open(trigger_id=body["trigger_id"],
                          view=snooze_modal(found, today, pack(g=gap_id, u=body.get("response_url") or "")))

    @app.view(GAP_SNOOZE_MODAL)
    def snooze_given(ack: Callable[..., Any], body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get("reason") or {}).get("reason") or {}).get("value") or ""
        picked = ((values.get("until") or {}).get("until") or {}).get("selected_date") or ""
        _, today, _ = moment(services)
        errors = {}
        if not reason.strip():
            errors["reason"] = "Say why: it goes on the timeline."
        try:
            until = date.fromisoformat(picked)
            if until <= today:
                errors["until"] = "Pick a day after today."
        except ValueError:
            errors["until"] = "Pick the day it should come back."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        user, meta = body["user"]["id"], unpack(view.get("private_metadata"))
        gap_id = int(meta.get("g", 0))

        def tell(text: str) -> None:  # a view submission has no response_url: use the list's, or a DM
            if meta.get("u"):
                WebhookClient(str(meta["u"])).send(text=text, response_type="ephemeral", replace_original=False)
            else:
                client.chat_postMessage(channel=user, text=text)

        if not identity.allowed(user, "gaps.snooze"):
            tell(identity.refusal("gaps.snooze"))
            return
        try:
            done = services.ledger.run(snooze_gap, gap_id, until=until, reason=reason, actor=user)
        except LedgerError as error:
            tell(f":warning: {error}")
            return
        found = read(gap, gap_id, services.ledger.clock.now())
        tell(f":zzz: Gap `{found.key}` ({escape(found.label)}) snoozed until {until}: {escape(reason.strip())}"
             if done is Done.ACTED else f":information_source: Already done: `{found.key}` was snoozed so.")


def checked_recently(services: Services) -> Any:
    """When the gaps were last checked, checking them now when that is over a minute ago."""
    now, checked = services.ledger.clock.now(), services.ledger.read(last_run)
    if checked is None or now - checked > STALE:
        services.ledger.run(evaluate_gaps, gap_policy(services.settings))
        checked = now
    return checked


def owners_of(services: Services, identity: Identity, user: str) -> list[str]:
    """Whose gaps are "mine": the person's own, finance's for finance, all roles' for an admin."""
    roles = services.ledger.read(roles_of, [user, *identity.groups_of(user)])
    owners = [user]
    if Role.FINANCE in roles or Role.ADMIN in roles:
        owners.append("finance")
    if Role.ADMIN in roles:
        owners.append("admin")
    return owners


def _customer(services: Services, query: str) -> int | None:
    found = resolve(services, query)
    if isinstance(found, dict):
        if found["t"] == "customer":
            return int(found["r"])
        if found["t"] == "deal":
            return services.ledger.read(views.customer_of, deal_id=int(found["r"]))
        return services.ledger.read(views.customer_of, invoice=found["r"])
    return found[0].id if len(found) == 1 else None
