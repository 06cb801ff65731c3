"""The Slack bridge: a customer's email lands in the deal's thread; the rep's reply
in that thread goes back by email with the "Send to customer" message shortcut —
through signed requests to the real Bolt app, the real relay, a loopback Slack and a
real SMTP server."""
from __future__ import annotations

import time
from email import message_from_bytes, policy

import pytest
from slack_bolt.request import BoltRequest
from sqlalchemy import select

from bot.app import build_app
from closeloop.bootstrap import build
from closeloop.demo.mail_servers import SmtpServer
from flows.access import Role, grant_role
from flows.deals import Deal, Stage
from flows.mail import InboundMail, OutboundMail, store_messages
from handlers.mail_read import ReadConfig, read_message
from parsers.mail_token import reply_address
from tests.factories import deal_at, seed
from tests.mail_samples import AUTHSERV, SECRET, reply
from tests.slack_peer import APP, TEAM, interaction_body, sign

REP, STRANGER = "U0REP", "U0NOBODY"


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def bridge(slack_settings, clock, smtp):
    built = build(slack_settings.model_copy(update={
        "mail_secret": SECRET, "mail_authserv_id": AUTHSERV, "mail_from": "sales@ourco.example",
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_starttls": False}), clock)
    built.ledger.run(grant_role, principal=REP, role=Role.REP, granted_by="test")
    yield built
    built.close()


def shortcut(app, *, user: str, channel: str, thread_ts: str, ts: str, text: str, response_url: str):
    payload = {"type": "message_action", "callback_id": "send_to_customer", "team": {"id": TEAM},
               "api_app_id": APP, "user": {"id": user, "team_id": TEAM}, "channel": {"id": channel},
               "message": {"type": "message", "user": user, "ts": ts, "thread_ts": thread_ts, "text": text},
               "response_url": response_url, "trigger_id": "1.2.3", "action_ts": "1700000100.1"}
    body = interaction_body(payload)
    headers = {k.lower(): [v] for k, v in sign(body).items()}
    headers["content-type"] = ["application/x-www-form-urlencoded"]
    return app.dispatch(BoltRequest(body=body.decode(), headers=headers))


def wait_for(find, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not within the time limit")


def test_customer_mail_reaches_the_thread_and_the_reps_answer_goes_back_in_the_email_thread(bridge, slack_api,
                                                                                            smtp):
    ledger = bridge.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    bridge.relay.drain()  # the deal's thread exists
    channel, _, root = ledger.read(lambda s: s.get(Deal, deal).slack_thread).partition(":")
    question = reply(to=reply_address("sales@ourco.example", deal, SECRET), subject="Quote question",
                     body="Can we pay in two parts?", message_id="<q1@acme.example>")
    facts = [read_message(1, question, ReadConfig(secret=SECRET, authserv_id=AUTHSERV))]
    ledger.run(store_messages, mailbox="sales:t", role="sales", uidvalidity=1, last_uid=1, messages=facts)
    bridge.relay.drain()
    posted = [c for c in slack_api.of("chat.postMessage") if "Can we pay in two parts?" in c.args.get("text", "")]
    assert posted and posted[0].args["thread_ts"] == root

    app = build_app(bridge)
    for _ in range(2):  # pressed twice: one email
        response = shortcut(app, user=REP, channel=channel, thread_ts=root, ts="1700000200.000001",
                            text="Yes, two instalments are fine.", response_url=slack_api.response_url)
        assert response.status == 200
    wait_for(lambda: ledger.read(lambda s: s.scalar(select(OutboundMail.id))))
    time.sleep(0.3)
    bridge.relay.drain()
    [got] = smtp.received
    message = message_from_bytes(got.data, policy=policy.default)
    assert got.rcpt_tos == ["ada@acme.example"]
    assert message["In-Reply-To"] == "<q1@acme.example>" and "<q1@acme.example>" in message["References"]
    assert message["Subject"] == "Re: Quote question"
    assert "Yes, two instalments are fine." in message.get_body(("plain",)).get_content()
    assert ledger.read(lambda s: len(list(s.scalars(select(OutboundMail))))) == 1
    assert ledger.read(lambda s: s.scalar(select(InboundMail.deal_id))) == deal


def test_someone_without_a_sales_role_cannot_email_the_customer(bridge, slack_api, smtp):
    ledger = bridge.ledger
    deal = deal_at(ledger, seed(ledger), Stage.SENT)
    bridge.relay.drain()
    channel, _, root = ledger.read(lambda s: s.get(Deal, deal).slack_thread).partition(":")
    app = build_app(bridge)
    shortcut(app, user=STRANGER, channel=channel, thread_ts=root, ts="1700000300.000001", text="hi",
             response_url=slack_api.response_url)
    wait_for(lambda: [c for c in slack_api.calls if c.method == "respond" or "Not allowed" in str(c.args)])
    assert ledger.read(lambda s: s.scalar(select(OutboundMail.id))) is None
