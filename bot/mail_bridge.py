"""The Slack side of the email bridge: a rep's reply in a deal's thread is sent to
the customer by email with the message shortcut "Send to customer" — threaded into
the customer's email thread (In-Reply-To their last message). Customers' mails
reach the thread through the deal timeline (flows.mail routes)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App
from sqlalchemy import select

from bot.identity import Identity
from closeloop.bootstrap import Services
from flows.deals import Deal
from flows.mail import reply_to_customer

SEND_TO_CUSTOMER = "send_to_customer"  # callback_id of the message shortcut (slack/manifest.json)


def register(app: App, services: Services, identity: Identity) -> None:
    @app.shortcut(SEND_TO_CUSTOMER)
    def send_to_customer(ack: Callable[..., Any], shortcut: dict[str, Any], respond: Callable[..., Any]) -> None:
        ack()
        user = shortcut["user"]["id"]
        message = shortcut.get("message") or {}
        channel = (shortcut.get("channel") or {}).get("id", "")
        thread = message.get("thread_ts")
        if not thread or thread == message.get("ts"):
            respond(text=":information_source: Use *Send to customer* on a reply inside a deal's thread.",
                    response_type="ephemeral", replace_original=False)
            return
        deal_id = services.ledger.read(_deal_of_thread, f"{channel}:{thread}")
        if deal_id is None:
            respond(text=":information_source: This thread is not a deal's thread.", response_type="ephemeral",
                    replace_original=False)
            return
        if not identity.allowed(user, "mail.reply", deal_id=deal_id):
            respond(text=identity.refusal("mail.reply"), response_type="ephemeral", replace_original=False)
            return
        text = (message.get("text") or "").strip()
        if not text:
            respond(text=":warning: That message has no text to send.", response_type="ephemeral",
                    replace_original=False)
            return
        # Keyed by the Slack message: pressing it twice sends one email.
        services.ledger.run(reply_to_customer, deal_id, key=f"slack.reply:{channel}:{message.get('ts')}",
                            text=text, actor=user, domain=services.settings.mail_domain)
        respond(text=":outbox_tray: Sent to the customer by email, in their thread.", response_type="ephemeral",
                replace_original=False)


def _deal_of_thread(session: Any, thread: str) -> int | None:
    return session.scalar(select(Deal.id).where(Deal.slack_thread == thread))
