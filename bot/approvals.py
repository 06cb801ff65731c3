"""The discount buttons in a deal's thread: a manager approves, or rejects with a reason
(asked in a modal). Anyone else pressing them is refused, and the refusal audited.

Button values are "deal_id:version", so a decision is always about the version the
thread asked about; pressing twice decides once and the second press is told so."""
from __future__ import annotations

import json
from typing import Any, Callable

from slack_bolt import App
from slack_sdk import WebClient

from adapters.slack import APPROVE_DISCOUNT, REJECT_DISCOUNT
from bot import quote_blocks as kit
from bot.identity import Identity
from bot.quote import Asker, answering, button_ids, later, reason_of
from closeloop.bootstrap import Services
from flows.errors import LedgerError
from flows.quote_views import quote_view
from flows.steps import Done, approve_discount, reject_discount

REJECT_MODAL = "discount_reject_reason"


def register(app: App, services: Services, identity: Identity) -> None:
    ledger = services.ledger

    def may(asker: Asker, deal_id: int) -> bool:
        if identity.allowed(asker.user, "discount.decide", deal_id=deal_id):
            return True
        asker.say(identity.refusal("discount.decide"), replace=False)
        return False

    def decided(deal_id: int, version: int, done: Done, asker: Asker, verb: str) -> None:
        quote = ledger.read(quote_view, deal_id)
        if done is Done.ALREADY:
            asker.say(f"Already done: the discount on {quote.number} v{version} was already {verb}.")
            return
        then = (f"{kit.who(quote.owner)} can send it now." if verb == "approved"
                else f"{kit.who(quote.owner)} must revise it before sending.")
        asker.say(f":white_check_mark: You {verb} the {kit.percent(quote.discount_bp)} discount on "
                  f"{quote.number} v{version}. {then}")

    @app.action(APPROVE_DISCOUNT)
    def approve(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                respond: Callable[..., Any]) -> None:
        ack()
        asker = Asker(body["user"]["id"], "", respond)
        with answering(asker):
            deal_id, version = button_ids(action["value"])
            if may(asker, deal_id):
                done = ledger.run(approve_discount, deal_id, version=version, approver=asker.user)
                decided(deal_id, version, done, asker, "approved")

    @app.action(REJECT_DISCOUNT)
    def reject(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
               respond: Callable[..., Any], client: WebClient) -> None:
        ack()
        deal_id, version = button_ids(action["value"])
        asker = Asker(body["user"]["id"], "", respond)
        if may(asker, deal_id):
            client.views_open(trigger_id=body["trigger_id"], view=kit.reason_modal(
                callback_id=REJECT_MODAL, title="Reject discount", submit="Reject",
                prompt=f"Reject the discount of deal D-{deal_id}, version {version}? The rep must revise the quote.",
                label="Why? (the rep sees this)",
                metadata={"d": deal_id, "v": version, "u": body.get("response_url") or ""}))

    @app.view(REJECT_MODAL)
    def submit_reject(ack: Callable[..., Any], body: dict[str, Any], view: dict[str, Any],
                      client: WebClient) -> None:
        user = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        reason = (reason_of(view) or "").strip()
        if not identity.allowed(user, "discount.decide", deal_id=meta["d"]):
            ack(response_action="errors", errors={kit.REASON: identity.refusal("discount.decide")})
            return
        if not reason:
            ack(response_action="errors", errors={kit.REASON: "Say why, so the rep knows what to change."})
            return
        ack(response_action="clear")
        asker = later(client, user, meta.get("u"))
        try:
            done = ledger.run(reject_discount, meta["d"], version=meta["v"], approver=user, reason=reason)
        except LedgerError as error:  # e.g. approved meanwhile: nothing left to decide
            asker.say(f":warning: {error}", replace=False)
            return
        decided(meta["d"], meta["v"], done, asker, "rejected")
