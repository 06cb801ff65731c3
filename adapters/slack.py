"""Slack Web API, for what closeloop posts on its own: each deal's timeline in its own
thread of the deals channel, with buttons where a person must act.

Called by the outbox relay. A 429 becomes RetryAfter (the relay waits exactly as long
as Slack asked); a 5xx or a dropped connection is retried with backoff; an error that
retrying cannot fix (a bad token, an unknown channel) is permanent."""
from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from flows.deals import Deal
from flows.ledger import Ledger
from flows.outbox import Delivery, PermanentFailure, RetryAfter
from flows.steps import set_deal_thread

# action_id of the buttons closeloop puts in deal threads (the bot's listeners answer them)
APPROVE_DISCOUNT = "discount_approve"
REJECT_DISCOUNT = "discount_reject"

_PERMANENT = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "channel_not_found",
              "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks", "no_text"}


def slack_client(token: str, base_url: str) -> WebClient:
    return WebClient(token=token, base_url=base_url if base_url.endswith("/") else base_url + "/")


class SlackDealThreads:
    def __init__(self, client: WebClient, ledger: Ledger, channel: str) -> None:
        self.client, self.ledger, self.channel = client, ledger, channel

    def post(self, delivery: Delivery) -> None:
        """Relay handler for "slack.deal_thread": one timeline line into the deal's thread."""
        payload = delivery.payload
        deal_id = int(payload["deal_id"])
        channel, thread_ts = self._thread(deal_id)
        call(self.client.chat_postMessage, channel=channel, thread_ts=thread_ts, text=payload["text"],
             blocks=thread_blocks(payload), unfurl_links=False,
             metadata={"event_type": "closeloop_timeline", "event_payload": {"key": delivery.idempotency_key}})

    def _thread(self, deal_id: int) -> tuple[str, str]:
        thread, title = self.ledger.read(_thread_and_title, deal_id)
        if thread is None:
            root = call(self.client.chat_postMessage, channel=self.channel, text=title, unfurl_links=False)
            thread = f"{root['channel']}:{root['ts']}"
            self.ledger.run(set_deal_thread, deal_id, thread=thread)
        channel, _, ts = thread.partition(":")
        return channel, ts


def _thread_and_title(session: Any, deal_id: int) -> tuple[str | None, str]:
    deal = session.get(Deal, deal_id)
    if deal is None:
        raise PermanentFailure(f"deal {deal_id} does not exist")
    return deal.slack_thread, f"{deal.reference} · {deal.customer.name} · quote {deal.quote.number} (owner <@{deal.owner}>)"


def thread_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The text as a section, plus the buttons an event calls for."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": payload["text"][:3000]}}]
    if payload.get("kind") == "discount.approval_requested":
        data = payload.get("data", {})
        value = f"{payload['deal_id']}:{data.get('version')}"
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": APPROVE_DISCOUNT, "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve discount"}},
            {"type": "button", "action_id": REJECT_DISCOUNT, "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Reject"}},
        ]})
    return blocks


def call(method: Any, **kwargs: Any) -> Any:
    """One Web API call, with Slack's failures turned into what the relay understands."""
    try:
        return method(**kwargs)
    except SlackApiError as error:
        response = error.response
        if response.status_code == 429:
            raise RetryAfter(float(response.headers.get("Retry-After", response.headers.get("retry-after", 30))),
                             f"Slack rate limit on {getattr(method, '__name__', 'call')}") from None
        if response.status_code >= 500:
            raise ConnectionError(f"Slack answered {response.status_code}") from None
        code = response.get("error") if hasattr(response, "get") else None
        if code in _PERMANENT:
            raise PermanentFailure(f"Slack refused: {code}") from None
        raise
