"""The Slack endpoint as Slack reaches it: signed HTTP requests to `closeloop web`."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.factories import row_counts
from tests.slack_peer import command_body, sign


def post(url: str, body: bytes, headers: dict[str, str],
         content_type: str = "application/x-www-form-urlencoded") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_health_and_readiness_answer(web):
    with urllib.request.urlopen(f"{web}/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True}
    with urllib.request.urlopen(f"{web}/readyz", timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True, "database": "ok"}
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{web}/nothing-here", timeout=5)
    assert missing.value.code == 404


@pytest.mark.parametrize("forgery", ["wrong secret", "stale", "no headers", "body changed", "bad timestamp"])
def test_forged_or_stale_requests_are_refused_with_401_and_change_nothing(web, slack_services, slack_api, forgery):
    body = command_body("/quote", "help", response_url=slack_api.response_url)
    headers = {
        "wrong secret": sign(body, secret="not-the-secret"),
        "stale": sign(body, timestamp=int(time.time()) - 301),
        "no headers": {},
        "body changed": sign(body + b"&x=1"),
        "bad timestamp": {**sign(body), "X-Slack-Request-Timestamp": "yesterday"},
    }[forgery]
    counts = row_counts(slack_services.ledger)
    status, _ = post(f"{web}/slack/events", body, headers)
    assert status == 401
    assert row_counts(slack_services.ledger) == counts
    assert slack_api.calls == []


@pytest.mark.parametrize("field,value", [("team", "T0OTHER"), ("app", "A0OTHER")])
def test_a_request_from_another_workspace_or_app_is_refused_and_audited(web, slack_services, slack_api,
                                                                         field, value):
    body = command_body("/quote", "list", response_url=slack_api.response_url, **{field: value})
    status, answer = post(f"{web}/slack/events", body, sign(body))
    assert status == 200
    reply = json.loads(answer)
    assert reply["response_type"] == "ephemeral" and "not" in reply["text"].lower()
    events = slack_services.ledger.read(lambda s: [
        (e.kind, e.actor, e.data["action"]) for e in s.scalars(__import__("sqlalchemy").select(
            __import__("flows.timeline", fromlist=["Event"]).Event))])
    assert events == [("access.denied", "U0REP", f"slack.{field}")]
