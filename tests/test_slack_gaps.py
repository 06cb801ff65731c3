"""/gaps in Slack with signed requests: mine and all, by rule and customer, the buttons
that act on a gap (once per press of one button), the snooze modal, refusals."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from adapters.gap_blocks import GAP_SNOOZE_MODAL
from flows.access import Role, grant_role
from flows.deals import Stage
from flows.gap_models import GapState
from flows.outbox import OutboxMessage
from flows.timeline import Event
from tests.slack_peer import APP, TEAM, interaction_body
from tests import test_slack_lookup as lookup
from tests.factories import deal_at
from tests.test_slack_lookup import FINANCE, NOBODY, REP, Slack, buttons, invoiced, text_of, valid_blocks, valid_view

roles, slack, either = lookup.roles, lookup.slack, lookup.either  # the same fixtures as the lookup tests


def overdue_world(ledger, clock):
    customer, deal_id = invoiced(ledger)           # INV-2026-000001, due 2026-04-09, owned by U_REP
    deal_at(ledger, customer, Stage.SENT)          # a quote waiting for a signature
    clock.advance(timedelta(days=45))
    return customer, deal_id


def submit_snooze(slack: Slack, view: dict, *, user: str, reason: str, until: str) -> dict:
    payload = {"type": "view_submission", "team": {"id": TEAM, "domain": "closeloop"}, "api_app_id": APP,
               "user": {"id": user, "username": user.lower(), "team_id": TEAM}, "trigger_id": "4.5.6",
               "view": {"id": "V0MODAL", "type": "modal", "team_id": TEAM, "callback_id": view["callback_id"],
                        "private_metadata": view["private_metadata"], "hash": "1",
                        "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}},
                                             "until": {"until": {"type": "datepicker", "selected_date": until}}}}}}
    status, body = slack.send(interaction_body(payload))
    assert status == 200, body
    return json.loads(body) if body.strip() else {}


def test_gaps_lists_mine_all_by_rule_and_by_customer_with_buttons(either, slack_services, clock):
    overdue_world(slack_services.ledger, clock)
    either.command("/gaps", "mine", user=FINANCE)
    mine = either.next()
    shown = text_of(mine)
    valid_blocks(mine["blocks"])
    assert "*Your gaps*" in shown and "*Invoice overdue* · `INV-2026-000001` · Acme GmbH · 2,280.00 EUR" in shown
    assert "15 days overdue (1-30)" in shown and "Quote unsigned" not in shown  # that one is the rep's
    assert [b["text"]["text"] for b in buttons(mine)][:2] == ["Send reminder", "Snooze…"]

    either.command("/gaps", "all rule quote-unsigned", user=FINANCE)
    shown = text_of(either.next())
    assert "Quote unsigned" in shown and "Invoice overdue" not in shown and "owner <@U_REP>" in shown

    either.command("/gaps", "all customer acme gmbh", user=REP)
    assert "*All gaps of Acme GmbH*" in text_of(either.next())

    either.command("/gaps", "rule invoice-overdu", user=REP)
    shown = text_of(either.next())
    assert "no gap rule `invoice-overdu`" in shown and "Did you mean `invoice-overdue`?" in shown


def test_reminder_button_resends_once_per_press_and_refuses_without_the_role(slack, slack_services, clock):
    ledger = slack_services.ledger
    overdue_world(ledger, clock)
    slack.command("/gaps", "all rule invoice-overdue", user=FINANCE)
    remind = buttons(slack.next(), "gap_act_remind")[0]
    slack.click(remind, user=FINANCE, action_ts="1700000001.1")
    assert "invoice INV-2026-000001 sent again as a reminder" in slack.next()["text"]
    slack.click(remind, user=FINANCE, action_ts="1700000001.2")  # a double click on the same message
    assert "Already done" in slack.next()["text"]
    resent = ledger.read(lambda s: list(s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "invoice.deliver", OutboxMessage.payload["resend"].as_boolean().is_(True)))))
    assert len(resent) == 1
    slack.click(remind, user=NOBODY)
    assert "Not allowed: sending a reminder about a gap" in slack.next()["text"]


def test_snooze_opens_a_modal_checks_the_answer_and_hides_the_gap(slack, slack_services, clock, slack_api):
    ledger = slack_services.ledger
    overdue_world(ledger, clock)
    slack.command("/gaps", "all rule invoice-overdue", user=FINANCE)
    slack.click(buttons(slack.next(), "gap_snooze")[0], user=FINANCE)
    view = slack.next("views.open")["view"]
    valid_view(view)
    assert view["callback_id"] == GAP_SNOOZE_MODAL and view["blocks"][2]["element"]["initial_date"] == "2026-05-01"
    refused = submit_snooze(slack, view, user=FINANCE, reason="", until="2026-04-20")
    assert refused["response_action"] == "errors" and set(refused["errors"]) == {"reason", "until"}
    assert submit_snooze(slack, view, user=FINANCE, reason="customer pays on the 1st", until="2026-05-02") == {}
    assert "snoozed until 2026-05-02: customer pays on the 1st" in slack.next()["text"]
    gap = ledger.read(lambda s: s.scalar(select(GapState).where(GapState.rule == "invoice-overdue")))
    assert gap.snoozed_by == FINANCE and gap.snooze_reason == "customer pays on the 1st"
    assert ledger.read(lambda s: s.scalar(select(Event.actor).where(Event.kind == "gap.snoozed"))) == FINANCE
    slack.command("/gaps", "all rule invoice-overdue", user=FINANCE)
    assert "— 0 open" in text_of(slack.next())


def test_the_home_tab_lists_the_persons_gaps(slack, slack_services, clock):
    overdue_world(slack_services.ledger, clock)
    slack.command("/gaps", "all", user=FINANCE)  # the first check
    slack.next()
    slack_services.ledger.run(grant_role, principal="U_REP", role=Role.REP, granted_by="test")
    slack.open_home("U_REP")
    shown = text_of(valid_view(slack.next("views.publish")["view"]))
    assert "Your completeness gaps" in shown and "Quote unsigned" in shown and "Invoice overdue" not in shown
