"""Each deal's timeline lands in its own thread of the deals channel, posted by the
real outbox relay to a loopback Slack Web API: one root message per deal, buttons
where a manager must act, Slack's rate limits obeyed to the second, failures that
retrying cannot fix dead-lettered at once, and the file sink when Slack is off."""
from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, SectionBlock
from sqlalchemy import select

from adapters.slack import APPROVE_DISCOUNT, REJECT_DISCOUNT
from flows.deals import Deal
from flows.outbox import OutboxMessage, OutboxStatus
from flows.quotes import Quote
from flows.steps import send_quote, void_quote
from tests.factories import quoted_deal, seed

RATE_LIMITED = (429, {"Retry-After": "30"}, {"ok": False, "error": "ratelimited"})
SLACK_IS_DOWN = (500, {}, {"ok": False, "error": "internal_error"})
BAD_TOKEN = (200, {}, {"ok": False, "error": "invalid_auth"})


def _posts(slack_api):
    return slack_api.of("chat.postMessage")


def _roots(slack_api):
    return [c for c in _posts(slack_api) if not c.args.get("thread_ts")]


def _replies(slack_api):
    return [c for c in _posts(slack_api) if c.args.get("thread_ts")]


def _thread_of(ledger, deal_id):
    return ledger.read(lambda s: s.get(Deal, deal_id).slack_thread)


def _quote_number(ledger, deal_id):
    return ledger.read(lambda s: s.scalar(select(Quote.number).where(Quote.deal_id == deal_id)))


def _thread_messages(ledger, deal_id):
    return ledger.read(lambda s: list(s.scalars(
        select(OutboxMessage).where(OutboxMessage.deal_id == deal_id, OutboxMessage.kind == "slack.deal_thread")
        .order_by(OutboxMessage.id))))


def _the_quote_sent_post(ledger, deal_id):
    [message] = [m for m in _thread_messages(ledger, deal_id) if m.payload["kind"] == "quote.sent"]
    return message


def _send(ledger, deal_id):
    ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")  # its envelope waits in the file sink


@pytest.fixture
def ledger(slack_services):
    return slack_services.ledger


@pytest.fixture
def relay(slack_services):
    return slack_services.relay


@pytest.fixture
def deal_with_thread(ledger, relay, slack_api):
    """A drafted deal whose thread already exists (its first post went out)."""
    deal = quoted_deal(ledger, seed(ledger))
    relay.drain()
    assert len(_posts(slack_api)) == 2
    return deal


def test_the_first_post_of_a_deal_opens_its_thread_in_the_deals_channel(ledger, relay, slack_api):
    deal = quoted_deal(ledger, seed(ledger))
    number = _quote_number(ledger, deal)

    assert relay.drain() == 1

    root, reply = _posts(slack_api)
    assert root.args["channel"] == "C0DEALS" and not root.args.get("thread_ts")
    assert root.args["text"] == f"D-{deal} · Acme GmbH · quote {number} (owner <@U_REP>)"
    assert _thread_of(ledger, deal) == "C0DEALS:1700000000.000001"
    assert (reply.args["channel"], reply.args["thread_ts"]) == ("C0DEALS", "1700000000.000001")
    assert reply.args["text"] == f"Quote {number} drafted for Acme GmbH"
    [message] = _thread_messages(ledger, deal)
    assert reply.args["metadata"]["event_payload"] == {"key": message.idempotency_key}
    assert (message.status, message.attempts) == (OutboxStatus.DONE, 1)


def test_later_posts_of_a_deal_go_to_the_same_thread(ledger, relay, slack_api, deal_with_thread):
    thread = _thread_of(ledger, deal_with_thread)
    _send(ledger, deal_with_thread)

    relay.drain()

    assert len(_roots(slack_api)) == 1
    replies = _replies(slack_api)
    assert [r.args["thread_ts"] for r in replies] == [thread.partition(":")[2]] * 2
    assert "sent to ada@acme.example for signature" in replies[1].args["text"]
    assert _thread_of(ledger, deal_with_thread) == thread
    assert all(m.status is OutboxStatus.DONE for m in _thread_messages(ledger, deal_with_thread))


def test_every_deal_has_its_own_thread(ledger, relay, slack_api):
    customer = seed(ledger)
    first, second = quoted_deal(ledger, customer), quoted_deal(ledger, customer)
    relay.drain()
    _send(ledger, first)
    _send(ledger, second)
    relay.drain()

    assert len(_roots(slack_api)) == 2
    threads = {deal: _thread_of(ledger, deal).partition(":")[2] for deal in (first, second)}
    assert threads[first] != threads[second]
    for deal in (first, second):
        number = _quote_number(ledger, deal)
        mine = [r for r in _replies(slack_api) if number in r.args["text"]]
        assert len(mine) == 2 and {r.args["thread_ts"] for r in mine} == {threads[deal]}


def test_an_approval_request_carries_approve_and_reject_buttons_slack_accepts(ledger, relay, slack_api):
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)

    relay.drain()

    drafted, requested = _replies(slack_api)
    assert [b["type"] for b in drafted.args["blocks"]] == ["section"]
    assert "a manager must approve it" in requested.args["text"]
    blocks = [Block.parse(b) for b in requested.args["blocks"]]
    for block in blocks:
        block.validate_json()  # raises SlackObjectFormationError on anything Slack would refuse
    section, actions = blocks
    assert isinstance(section, SectionBlock) and section.text.text == requested.args["text"]
    assert isinstance(actions, ActionsBlock)
    buttons = actions.to_dict()["elements"]
    assert [(b["action_id"], b["style"], b["value"]) for b in buttons] == [
        (APPROVE_DISCOUNT, "primary", f"{deal}:1"), (REJECT_DISCOUNT, "danger", f"{deal}:1")]


@pytest.mark.parametrize("seconds", [30, 7])
def test_a_rate_limited_post_waits_exactly_as_long_as_slack_asked(ledger, relay, slack_api, clock,
                                                                  deal_with_thread, seconds):
    _send(ledger, deal_with_thread)
    slack_api.script["chat.postMessage"] = [(429, {"Retry-After": str(seconds)}, RATE_LIMITED[2])]
    asked_at = clock.now()

    relay.drain()

    message = _the_quote_sent_post(ledger, deal_with_thread)
    assert (message.status, message.attempts) == (OutboxStatus.PENDING, 1)
    assert message.available_at == asked_at + timedelta(seconds=seconds)
    assert "Slack rate limit" in message.last_error
    calls = len(slack_api.calls)

    assert relay.drain() == 0  # not due yet: no hot loop
    clock.advance(timedelta(seconds=seconds - 1))
    assert relay.drain() == 0
    assert len(slack_api.calls) == calls

    clock.advance(timedelta(seconds=1))
    assert relay.drain() == 1

    assert len(slack_api.calls) == calls + 1
    sent = [r for r in _replies(slack_api) if "for signature" in r.args["text"]]
    assert len(sent) == 2  # the refused attempt and the one that went through
    message = _the_quote_sent_post(ledger, deal_with_thread)
    assert (message.status, message.attempts) == (OutboxStatus.DONE, 2)
    assert relay.drain() == 0


def test_a_rate_limit_on_the_very_first_post_creates_one_thread_later(ledger, relay, slack_api, clock):
    deal = quoted_deal(ledger, seed(ledger))
    slack_api.script["chat.postMessage"] = [RATE_LIMITED]
    asked_at = clock.now()

    relay.drain()

    assert _thread_of(ledger, deal) is None
    [message] = _thread_messages(ledger, deal)
    assert (message.status, message.available_at) == (OutboxStatus.PENDING, asked_at + timedelta(seconds=30))

    clock.advance(timedelta(seconds=30))
    relay.drain()

    assert len(_roots(slack_api)) == 2  # the refused root and the one that went through
    assert len(_replies(slack_api)) == 1
    assert _thread_of(ledger, deal) is not None


def test_when_the_reply_is_rate_limited_the_retry_reuses_the_thread_already_opened(ledger, relay, slack_api, clock):
    deal = quoted_deal(ledger, seed(ledger))
    root_ok = (200, {}, {"ok": True, "channel": "C0DEALS", "ts": "1700000000.000777"})
    slack_api.script["chat.postMessage"] = [root_ok, RATE_LIMITED]

    relay.drain()

    assert _thread_of(ledger, deal) == "C0DEALS:1700000000.000777"
    clock.advance(timedelta(seconds=30))
    relay.drain()

    assert len(_roots(slack_api)) == 1
    assert [r.args["thread_ts"] for r in _replies(slack_api)] == ["1700000000.000777"] * 2
    [message] = _thread_messages(ledger, deal)
    assert (message.status, message.attempts) == (OutboxStatus.DONE, 2)


def test_a_slack_server_error_is_retried_with_backoff(ledger, relay, slack_api, clock, deal_with_thread):
    _send(ledger, deal_with_thread)
    slack_api.script["chat.postMessage"] = [SLACK_IS_DOWN]
    failed_at = clock.now()

    relay.drain()

    message = _the_quote_sent_post(ledger, deal_with_thread)
    assert (message.status, message.attempts) == (OutboxStatus.PENDING, 1)
    assert message.last_error == "ConnectionError: Slack answered 500"
    # The first retry waits between half and all of the 5 s base delay (equal jitter).
    assert failed_at + timedelta(seconds=2.5) <= message.available_at <= failed_at + timedelta(seconds=5)
    calls = len(slack_api.calls)
    assert relay.drain() == 0
    assert len(slack_api.calls) == calls

    clock.advance(timedelta(seconds=5))
    assert relay.drain() == 1

    message = _the_quote_sent_post(ledger, deal_with_thread)
    assert (message.status, message.attempts, message.last_error) == (OutboxStatus.DONE, 2, None)
    assert len(slack_api.calls) == calls + 1


def test_slack_down_again_on_the_retry_waits_longer(ledger, relay, slack_api, clock, deal_with_thread):
    _send(ledger, deal_with_thread)
    slack_api.script["chat.postMessage"] = [SLACK_IS_DOWN, SLACK_IS_DOWN]
    relay.drain()
    clock.advance(timedelta(seconds=5))
    retried_at = clock.now()

    relay.drain()

    message = _the_quote_sent_post(ledger, deal_with_thread)
    assert (message.status, message.attempts) == (OutboxStatus.PENDING, 2)
    assert retried_at + timedelta(seconds=5) <= message.available_at <= retried_at + timedelta(seconds=10)


def test_a_revoked_token_dead_letters_the_post_at_once(ledger, relay, slack_api, clock, deal_with_thread):
    _send(ledger, deal_with_thread)
    slack_api.script["chat.postMessage"] = [BAD_TOKEN]

    relay.drain()

    message = _the_quote_sent_post(ledger, deal_with_thread)
    assert (message.status, message.attempts) == (OutboxStatus.DEAD, 1)
    assert message.last_error == "permanent failure: Slack refused: invalid_auth"
    calls = len(slack_api.calls)
    clock.advance(timedelta(hours=2))
    assert relay.drain() == 0
    assert len(slack_api.calls) == calls


def test_a_dead_post_does_not_hold_back_the_deals_later_posts(ledger, relay, slack_api, deal_with_thread):
    _send(ledger, deal_with_thread)
    slack_api.script["chat.postMessage"] = [BAD_TOKEN]
    relay.drain()

    ledger.run(void_quote, deal_with_thread, reason="customer went quiet", actor="U_REP")
    relay.drain()

    voided = _replies(slack_api)[-1]
    assert "voided: customer went quiet" in voided.args["text"]
    assert voided.args["thread_ts"] == _thread_of(ledger, deal_with_thread).partition(":")[2]


def test_without_slack_the_posts_go_to_the_file_sink(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)

    services.relay.drain()

    written = services.sink.read("slack.deal_thread")
    assert [(w["deal_id"], w["payload"]["kind"]) for w in written] == [
        (deal, "quote.drafted"), (deal, "discount.approval_requested")]
    assert all("Slack is not configured" in w["note"] for w in written)
    assert [w["key"] for w in written] == [m.idempotency_key for m in _thread_messages(ledger, deal)]
    assert all(m.status is OutboxStatus.DONE for m in _thread_messages(ledger, deal))
    assert _thread_of(ledger, deal) is None
