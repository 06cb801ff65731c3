"""Alerts for finance in Slack (`slack.alert` outbox rows: a parked subscription, …),
posted to CLOSELOOP's finance channel; Slack's failures are mapped as for deal threads."""
from __future__ import annotations

from slack_sdk import WebClient

from adapters.slack import call
from flows.outbox import Delivery


class SlackAlerts:
    def __init__(self, client: WebClient, channel: str) -> None:
        self.client, self.channel = client, channel

    def post(self, delivery: Delivery) -> None:
        call(self.client.chat_postMessage, channel=self.channel, text=f":rotating_light: {delivery.payload['text']}",
             unfurl_links=False,
             metadata={"event_type": "closeloop_alert", "event_payload": {"key": delivery.idempotency_key}})
