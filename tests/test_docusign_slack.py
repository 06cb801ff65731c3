"""The "Remind signer" button through signed Slack requests: DocuSign gets one resend
per press, a double click (the same trigger) acts once, a stranger is refused."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from slack_bolt.request import BoltRequest

from bot.app import build_app
from bot.esign import REMIND
from closeloop.bootstrap import Services, build
from flows.access import Role, grant_role
from flows.steps import send_quote
from tests.factories import quoted_deal, seed
from tests.slack_peer import APP, SIGNING_SECRET, TEAM, block_action, interaction_body, sign

REP, STRANGER = "U0REP", "U0NOBODY"


@pytest.fixture
def both(esign_settings, slack_api, clock) -> Iterator[Services]:
    settings = esign_settings.model_copy(update={
        "slack_bot_token": "xoxb-test", "slack_signing_secret": SIGNING_SECRET, "slack_api_url": slack_api.base_url,
        "slack_team_id": TEAM, "slack_app_id": APP, "slack_deals_channel": "C0DEALS"})
    built = build(settings, clock)
    built.ledger.run(grant_role, principal=REP, role=Role.REP, granted_by="test")
    yield built
    built.close()


def press(app, slack_api, user: str, value: str, trigger: str) -> None:
    payload = block_action(REMIND, value, user=user, response_url=slack_api.response_url)
    payload["trigger_id"] = trigger
    body = interaction_body(payload)
    headers = {name.lower(): [v] for name, v in sign(body).items()}
    headers["content-type"] = ["application/x-www-form-urlencoded"]
    assert app.dispatch(BoltRequest(body=body.decode(), headers=headers)).status == 200


def answers(slack_api, needle: str, count: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = [c.args["text"] for c in slack_api.of("respond") if needle in json.dumps(c.args)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_remind_signer_resends_once_per_press_and_refuses_strangers(both, docusign, slack_api):
    deal_id = quoted_deal(both.ledger, seed(both.ledger))
    both.ledger.run(send_quote, deal_id, provider="docusign", actor=REP)
    both.relay.drain()
    app = build_app(both)
    press(app, slack_api, REP, str(deal_id), "7.1.remind")
    press(app, slack_api, REP, str(deal_id), "7.1.remind")  # double click
    assert answers(slack_api, "DocuSign will email the signer again", 1)
    assert answers(slack_api, "Already done", 1)
    press(app, slack_api, STRANGER, str(deal_id), "7.2.remind")
    assert answers(slack_api, "sending a quote for signature", 1)
    both.relay.drain()
    [stored] = docusign.envelopes.values()
    assert stored.resends == 1 and docusign.invalid == []
