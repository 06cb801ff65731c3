"""The "Remind signer" button on a quote waiting for its DocuSign signature: DocuSign
sends the signing email again (its resend). Pressing twice (one trigger) acts once."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.identity import Identity
from closeloop.bootstrap import Services
from flows.errors import LedgerError
from flows.esign import request_reminder
from flows.steps import Done

REMIND = "esign_remind"


def remind_button(deal_id: int) -> dict[str, Any]:
    return {"type": "button", "action_id": REMIND, "value": str(deal_id),
            "text": {"type": "plain_text", "text": "Remind signer", "emoji": True}}


def register(app: App, services: Services, identity: Identity) -> None:
    @app.action(REMIND)
    def remind(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
               respond: Callable[..., Any]) -> None:
        ack()
        user = body["user"]["id"]
        try:
            deal_id = int(action.get("value") or "")
        except ValueError:
            respond(text=":warning: this button names no deal", response_type="ephemeral", replace_original=False)
            return
        if not identity.allowed(user, "quote.send", deal_id=deal_id):
            respond(text=identity.refusal("quote.send"), response_type="ephemeral", replace_original=False)
            return
        key = str(body.get("trigger_id") or action.get("action_ts") or "")
        try:
            done = services.ledger.run(request_reminder, deal_id, actor=user, key=key)
        except LedgerError as error:
            respond(text=f":warning: {error}", response_type="ephemeral", replace_original=False)
            return
        text = ("DocuSign will email the signer again." if done is Done.ACTED
                else "Already done: the reminder was already requested.")
        respond(text=text, response_type="ephemeral", replace_original=False)
