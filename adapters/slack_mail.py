"""Slack posts of the email agent that belong to no deal: the triage list of mail
that matched nothing (outbox kind "slack.triage"), posted to the triage channel."""
from __future__ import annotations

from slack_sdk import WebClient

from adapters.slack import call
from flows.outbox import Delivery


class SlackTriage:
    def __init__(self, client: WebClient, channel: str) -> None:
        self.client, self.channel = client, channel

    def post(self, delivery: Delivery) -> None:
        p = delivery.payload
        text = (f":inbox_tray: Unmatched mail #{p['inbound_id']} in {p.get('mailbox')} from {p.get('from') or '?'}: "
                f"\"{p.get('subject', '')}\" — {p.get('reason', '')}\n>{(p.get('text') or '').strip()[:400]}\n"
                f"_List them all with `closeloop mail triage`._")
        call(self.client.chat_postMessage, channel=self.channel, text=text, unfurl_links=False,
             metadata={"event_type": "closeloop_triage", "event_payload": {"key": delivery.idempotency_key}})
