"""Looking things up in Slack, and what finance does from the cards: /deal, /invoice,
/license, /collect, /gaps, their buttons and modal, and the App Home per role.

Requests are signed the way Slack signs them and go either through `closeloop web`'s
real HTTP endpoint or through Bolt's `app.dispatch`; answers come back through the
loopback Slack (response_url posts are recorded as "respond"). Listeners run after the
ack in Bolt's thread pool, so the tests wait for the recorded call, with a timeout."""
from __future__ import annotations

import io
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk.models.blocks import Block
from slack_sdk.models.blocks.block_elements import BlockElement
from slack_sdk.models.views import View
from sqlalchemy import select

from bot.app import build_app
from closeloop.logs import JsonLines
from flows.access import Role, grant_role
from flows.billing import Payment
from flows.deals import Stage
from flows.finance import resend_invoice
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License, LicenseStatus
from flows.outbox import OutboxMessage
from flows.parties import ContactRole
from flows.steps import ContactRequest, LineRequest, add_customer, draft_quote
from flows.timeline import Event
from tests.factories import deal_at, row_counts, seed
from tests.slack_peer import APP, TEAM, block_action, command_body, interaction_body, sign

REP, MANAGER, FINANCE, NOBODY = "U0REP", "U0MGR", "U0FIN", "U0NEW"
INVOICE = "INV-2026-000001"


# --- Slack's side of the conversation --------------------------------------------------

def wait_for(what: str, probe, timeout: float = 15.0):
    """Poll until `probe()` is truthy, or fail after `timeout` seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Slack:
    """Signed requests in (over HTTP or app.dispatch), recorded Web API calls out."""

    def __init__(self, services, api, via: str, web: str | None = None) -> None:
        self.services, self.api, self.via, self.web = services, api, via, web
        self.app = build_app(services) if via == "dispatch" else None
        self.seen: dict[str, int] = {}

    def send(self, body: bytes, content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
        headers = sign(body)
        if self.via == "http":
            request = urllib.request.Request(f"{self.web}/slack/events", data=body, method="POST",
                                             headers={"Content-Type": content_type, **headers})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
        request = BoltRequest(body=body.decode(), headers={"content-type": [content_type],
                                                           **{k.lower(): [v] for k, v in headers.items()}})
        response = self.app.dispatch(request)
        return response.status, response.body

    def command(self, command: str, text: str, *, user: str, trigger: str | None = None) -> dict[str, Any]:
        """The slash command; returns the ack's JSON ({} for an empty ack)."""
        status, body = self.send(command_body(command, text, user=user, response_url=self.api.response_url,
                                              trigger=trigger or uuid.uuid4().hex))
        assert status == 200, body
        return json.loads(body) if body.strip() else {}

    def click(self, button: dict[str, Any], *, user: str, action_ts: str = "1700000001.000100") -> None:
        payload = block_action(button["action_id"], button["value"], user=user, response_url=self.api.response_url,
                               action_ts=action_ts)
        status, body = self.send(interaction_body(payload))
        assert status == 200, body

    def submit(self, view: dict[str, Any], *, user: str, reason: str) -> dict[str, Any]:
        payload = {"type": "view_submission", "team": {"id": TEAM, "domain": "closeloop"}, "api_app_id": APP,
                   "user": {"id": user, "username": user.lower(), "team_id": TEAM}, "trigger_id": "4.5.6",
                   "view": {"id": "V0MODAL", "type": "modal", "team_id": TEAM, "callback_id": view["callback_id"],
                            "private_metadata": view["private_metadata"], "hash": "1",
                            "state": {"values": {"reason": {"reason": {"type": "plain_text_input",
                                                                       "value": reason}}}}}}
        status, body = self.send(interaction_body(payload))
        assert status == 200, body
        return json.loads(body) if body.strip() else {}

    def open_home(self, user: str) -> None:
        event = {"token": "legacy", "team_id": TEAM, "api_app_id": APP, "type": "event_callback",
                 "event_id": f"Ev{uuid.uuid4().hex[:10]}", "event_time": 1700000000,
                 "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home",
                           "event_ts": "1700000000.000100"}}
        status, body = self.send(json.dumps(event).encode(), "application/json")
        assert status == 200, body

    def next(self, method: str = "respond") -> dict[str, Any]:
        """The next call of `method` the bot makes, waited for."""
        index = self.seen.get(method, 0)
        calls = wait_for(f"{method} call #{index + 1}", lambda: len(self.api.of(method)) > index and self.api.of(method))
        self.seen[method] = index + 1
        return calls[index].args

    def quiet(self, method: str = "respond") -> None:
        """Nothing more of `method` was sent (checked after the listener had time to answer)."""
        assert len(self.api.of(method)) == self.seen.get(method, 0)


@pytest.fixture
def roles(slack_services):
    for user, role in ((REP, Role.REP), (MANAGER, Role.MANAGER), (FINANCE, Role.FINANCE)):
        slack_services.ledger.run(grant_role, principal=user, role=role, granted_by="test")


@pytest.fixture
def slack(slack_services, slack_api, roles) -> Slack:
    """Bolt's own dispatch, as its test suite does."""
    return Slack(slack_services, slack_api, "dispatch")


@pytest.fixture(params=["http", "dispatch"])
def either(request, slack_services, slack_api, roles) -> Slack:
    """The same conversation over `closeloop web`'s HTTP endpoint and over app.dispatch."""
    if request.param == "http":
        return Slack(slack_services, slack_api, "http", request.getfixturevalue("web"))
    return Slack(slack_services, slack_api, "dispatch")


# --- Block Kit stays valid and inside Slack's limits -----------------------------------

def valid_blocks(blocks: list[dict[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    assert 0 < len(blocks) <= limit
    for block in blocks:
        Block.parse(block).validate_json()
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            BlockElement.parse(element).validate_json()
        if "accessory" in block:
            BlockElement.parse(block["accessory"]).validate_json()
        assert len(block.get("text", {}).get("text", "")) <= 3000
    return blocks


def valid_view(view: dict[str, Any]) -> dict[str, Any]:
    View(**view).validate_json()
    valid_blocks(view["blocks"], limit=100)
    return view


def text_of(answer: dict[str, Any]) -> str:
    """Everything a person reads in a message: fallback text, sections, fields, contexts, buttons."""
    parts = [answer.get("text", "")]
    for block in answer.get("blocks", []):
        parts.append(block.get("text", {}).get("text", ""))
        parts.extend(f["text"] for f in block.get("fields", []))
        parts.extend(e.get("text", "") if isinstance(e.get("text"), str) else e.get("text", {}).get("text", "")
                     for e in block.get("elements", []))
        if "accessory" in block:
            parts.append(block["accessory"]["text"]["text"])
    return "\n".join(parts)


def buttons(answer: dict[str, Any], action_id: str | None = None) -> list[dict[str, Any]]:
    found = [e for b in answer.get("blocks", []) for e in b.get("elements", []) if e.get("type") == "button"]
    found += [b["accessory"] for b in answer.get("blocks", []) if b.get("accessory", {}).get("type") == "button"]
    return [b for b in found if action_id is None or b["action_id"] == action_id]


# --- arranging the ledger --------------------------------------------------------------

def invoiced(ledger, stage: Stage = Stage.INVOICED) -> tuple[int, int]:
    """Acme GmbH with a deal invoiced on 2026-03-10 (INV-2026-000001, due 2026-04-09)."""
    customer = seed(ledger)
    return customer, deal_at(ledger, customer, stage)


def another_customer(ledger, name: str, country: str = "US", currency: str = "USD") -> int:
    return ledger.run(add_customer, name=name, country=country, currency=currency, contacts=(
        ContactRequest("Sam Signer", f"sam@{name.split()[0].lower()}.example", ContactRole.SIGNER),
        ContactRequest("Bea Billing", f"billing@{name.split()[0].lower()}.example", ContactRole.BILLING)))


def reps_deal(ledger, customer_id: int, owner: str = REP, seats: int = 10) -> int:
    return ledger.run(draft_quote, key=f"test:{uuid.uuid4().hex}", customer_id=customer_id, owner=owner,
                      currency="EUR", lines=[LineRequest("SEAT", Decimal(seats))])


def payments(ledger) -> list[Payment]:
    return ledger.read(lambda s: list(s.scalars(select(Payment).order_by(Payment.id))))


def events(ledger, kind: str) -> list[Event]:
    return ledger.read(lambda s: list(s.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))))


def outbox(ledger, kind: str) -> list[OutboxMessage]:
    return ledger.read(lambda s: list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind))))


def invoice_row(ledger, number: str = INVOICE) -> Invoice:
    return ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.number == number)))


# --- help and bad input ----------------------------------------------------------------

@pytest.mark.parametrize("command", ["/deal", "/invoice", "/license", "/collect", "/gaps"])
def test_each_command_answers_help_in_the_ack_itself(either, slack_services, command):
    before = row_counts(slack_services.ledger)
    for text in ("help", ""):
        ack = either.command(command, text, user=NOBODY)
        assert ack["response_type"] == "ephemeral"
        assert command in text_of(ack) and "e.g." in text_of(ack)
        valid_blocks(ack["blocks"])
    assert row_counts(slack_services.ledger) == before
    either.quiet()


@pytest.mark.parametrize("command,text,suggestion", [
    ("/invoice", "resnd INV-2026-000001", "/invoice resend INV-2026-000001"),
    ("/license", "suspnd 1 customer asked", "/license suspend 1 customer asked"),
    ("/gaps", "al", "/gaps all"),
    ("/license", "suspend 1", None),
    ("/collect", "statement", None),
    ("/invoice", "paid", None),
])
def test_a_malformed_command_gets_usage_and_the_closest_valid_form_and_changes_nothing(
        either, slack_services, command, text, suggestion):
    invoiced(slack_services.ledger, Stage.LICENSED)
    before = row_counts(slack_services.ledger)
    ack = either.command(command, text, user=FINANCE)
    shown = text_of(ack)
    assert ack["response_type"] == "ephemeral" and "Nothing was changed" in shown
    assert "e.g." in shown  # the command's usage comes with it
    if suggestion:
        assert f"Closest valid form: `{suggestion}`" in shown
    valid_blocks(ack["blocks"])
    assert row_counts(slack_services.ledger) == before
    either.quiet()


# --- /deal -----------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["Acme GmbH", "acme", "Q-2026-0001", "D-1", "1", INVOICE.lower()])
def test_a_deal_is_found_by_customer_quote_invoice_or_deal_number(either, slack_services, query):
    invoiced(slack_services.ledger)
    assert either.command("/deal", query, user=REP) == {}
    card = either.next()
    shown = text_of(card)
    assert card["response_type"] == "ephemeral"
    assert "D-1 · Acme GmbH" in shown and "invoiced" in shown
    assert "2,280.00 EUR" in shown and "net 1,900.00 EUR + tax 380.00 EUR" in shown
    assert "*Owner*\nU_REP" in shown and "`Q-2026-0001` v1" in shown and f"`{INVOICE}` issued" in shown
    assert f"Invoice {INVOICE} issued (2,280.00 EUR), due 2026-04-09" in shown  # the timeline
    valid_blocks(card["blocks"])


def test_an_ambiguous_customer_gets_a_pick_list_that_completes_the_lookup(slack, slack_services):
    ledger = slack_services.ledger
    invoiced(ledger)
    inc = another_customer(ledger, "Acme Inc")
    reps_deal(ledger, inc, seats=3)
    slack.command("/deal", "acm", user=REP)
    picks = slack.next()
    assert "Which one did you mean?" in text_of(picks)
    valid_blocks(picks["blocks"])
    choices = {b["text"]["text"]: b for b in buttons(picks)}
    assert set(choices) == {"Acme GmbH (DE)", "Acme Inc (US)"}
    slack.click(choices["Acme Inc (US)"], user=REP)
    card = slack.next()
    assert card["replace_original"] is True
    assert "D-2 · Acme Inc" in text_of(card) and "quoted" in text_of(card)
    valid_blocks(card["blocks"])


def test_nothing_matching_says_so_and_someone_without_a_role_is_refused_and_audited(slack, slack_services):
    invoiced(slack_services.ledger)
    slack.command("/deal", "Globex", user=REP)
    assert "Nothing matches `Globex`" in slack.next()["text"]

    before = row_counts(slack_services.ledger)
    slack.command("/deal", "Acme", user=NOBODY)
    refusal = slack.next()
    assert refusal["response_type"] == "ephemeral" and refusal["text"].startswith(":no_entry: Not allowed")
    denied = events(slack_services.ledger, "access.denied")
    assert [(e.actor, e.data["action"]) for e in denied] == [(NOBODY, "deal.view")]
    after = row_counts(slack_services.ledger)
    assert after == {**before, "events": before["events"] + 1}


def test_a_customer_with_many_deals_is_paged_and_a_long_timeline_offers_earlier_events(slack, slack_services):
    ledger = slack_services.ledger
    customer = seed(ledger)
    for seats in range(1, 13):
        reps_deal(ledger, customer, seats=seats)
    slack.command("/deal", "Acme GmbH", user=REP)
    first = slack.next()
    assert "Deals 1–10 of 12 · and 2 more" in text_of(first)
    valid_blocks(first["blocks"])
    slack.click(buttons(first, "deal_page_next")[0], user=REP)
    second = slack.next()
    assert "Deals 11–12 of 12" in text_of(second) and second["replace_original"] is True
    assert [b["action_id"] for b in buttons(second) if "page" in b["action_id"]] == ["deal_page_prev"]
    valid_blocks(second["blocks"])

    deal = deal_at(ledger, customer, Stage.BILLING_ACTIVE)  # 7 events on its timeline, and 5 resends:
    for n in range(5):
        ledger.run(resend_invoice, invoice_number=INVOICE, actor=FINANCE, request_key=f"resend-{n}")
    slack.command("/deal", f"D-{deal}", user=REP)
    card = slack.next()
    assert "Timeline: 10 of 12 events" in text_of(card)
    slack.click(buttons(card, "deal_timeline_earlier")[0], user=REP)
    earlier = slack.next()
    assert f"Earlier events of D-{deal}" in text_of(earlier) and "Quote Q-2026-0013 drafted" in text_of(earlier)
    valid_blocks(earlier["blocks"])


# --- /invoice --------------------------------------------------------------------------

def test_the_invoice_card_shows_status_balance_due_date_and_days_overdue(either, slack_services, clock):
    invoiced(slack_services.ledger)
    clock.advance(timedelta(days=45))  # due 2026-04-09; today 2026-04-24
    either.command("/invoice", INVOICE, user=FINANCE)
    card = either.next()
    shown = text_of(card)
    assert "issued · 15 days overdue" in shown and "2026-04-09" in shown and "*Balance*\n2,280.00 EUR" in shown
    assert [b["action_id"] for b in buttons(card)] == ["invoice_resend", "invoice_mark_paid"]
    valid_blocks(card["blocks"])

    either.command("/invoice", "Acme", user=REP)  # a rep sees the card, without finance's buttons
    rep_card = either.next()
    assert "15 days overdue" in text_of(rep_card) and buttons(rep_card) == []


def test_a_rep_pressing_mark_paid_is_refused_audited_and_nothing_changes(either, slack_services):
    ledger = slack_services.ledger
    _, deal = invoiced(ledger)
    either.command("/invoice", INVOICE, user=FINANCE)
    mark_paid = buttons(either.next(), "invoice_mark_paid")[0]
    before = row_counts(ledger)
    either.click(mark_paid, user=REP)
    refusal = either.next()
    assert "Not allowed: marking an invoice paid needs the admin or finance role" in refusal["text"]
    assert refusal["response_type"] == "ephemeral"
    denied = events(ledger, "access.denied")
    assert [(e.actor, e.deal_id, e.data["action"]) for e in denied] == [(REP, deal, "invoice.mark_paid")]
    assert row_counts(ledger) == {**before, "events": before["events"] + 1}
    assert invoice_row(ledger).status is InvoiceStatus.ISSUED and payments(ledger) == []


def test_finance_marks_an_invoice_paid_from_the_card(either, slack_services):
    ledger = slack_services.ledger
    _, deal = invoiced(ledger)
    either.command("/invoice", INVOICE, user=FINANCE)
    either.click(buttons(either.next(), "invoice_mark_paid")[0], user=FINANCE)
    answer = either.next()
    assert "Payment of 2,280.00 EUR on `INV-2026-000001` recorded" in answer["text"] and "paid in full" in answer["text"]
    invoice = invoice_row(ledger)
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PAID, 0)
    [payment] = payments(ledger)
    assert (payment.amount, payment.method, payment.recorded_by) == (228000, "bank_transfer", FINANCE)
    [event] = events(ledger, "payment.recorded")
    assert (event.deal_id, event.actor, event.data["invoice"]) == (deal, FINANCE, INVOICE)


def test_a_double_click_on_mark_paid_records_one_payment_and_the_second_hears_already_done(slack, slack_services):
    ledger = slack_services.ledger
    invoiced(ledger)
    slack.command("/invoice", INVOICE, user=FINANCE)
    mark_paid = buttons(slack.next(), "invoice_mark_paid")[0]
    slack.click(mark_paid, user=FINANCE, action_ts="1700000001.000100")  # two clicks 50 ms apart:
    slack.click(mark_paid, user=FINANCE, action_ts="1700000001.050100")  # each its own action_ts
    answers = sorted(slack.next()["text"] for _ in range(2))
    assert answers[0].startswith(":information_source: Already done")
    assert answers[1].startswith(":white_check_mark: Payment of 2,280.00 EUR")
    assert len(payments(ledger)) == 1 and len(events(ledger, "payment.recorded")) == 1
    assert invoice_row(ledger).status is InvoiceStatus.PAID


def test_a_partial_payment_typed_with_the_banks_reference_is_recorded_once(slack, slack_services):
    ledger = slack_services.ledger
    invoiced(ledger)
    slack.command("/invoice", f"paid {INVOICE} 1000 ref BANK-7781", user=FINANCE)
    first = slack.next()["text"]
    slack.command("/invoice", f"paid {INVOICE} 1000 ref BANK-7781", user=FINANCE)  # typed again by mistake
    second = slack.next()["text"]
    assert "Payment of 1,000.00 EUR" in first and "1,280.00 EUR still open" in first
    assert second.startswith(":information_source: Already done") and "BANK-7781" in second
    assert [(p.amount, p.reference) for p in payments(ledger)] == [(100000, "BANK-7781")]


def test_resend_pressed_twice_on_the_same_card_queues_one_delivery(either, slack_services):
    ledger = slack_services.ledger
    invoiced(ledger)
    either.command("/invoice", INVOICE, user=FINANCE)
    resend = buttons(either.next(), "invoice_resend")[0]
    either.click(resend, user=FINANCE)
    assert "will be sent again" in either.next()["text"]
    either.click(resend, user=FINANCE)
    assert either.next()["text"].startswith(":information_source: Already done")
    resent = [m for m in outbox(ledger, "invoice.deliver") if m.payload.get("resend")]
    assert len(resent) == 1 and len(events(ledger, "invoice.resent")) == 1


def test_an_unknown_invoice_number_is_a_plain_answer_that_changes_nothing(slack, slack_services):
    invoiced(slack_services.ledger)
    before = row_counts(slack_services.ledger)
    slack.command("/invoice", "resend INV-2026-000099", user=FINANCE)
    assert slack.next()["text"] == ":warning: invoice INV-2026-000099 does not exist"
    assert row_counts(slack_services.ledger) == before


# --- /license --------------------------------------------------------------------------

def test_finance_suspends_and_reinstates_a_license_giving_the_reason_in_a_modal(either, slack_services):
    ledger = slack_services.ledger
    _, deal = invoiced(ledger, Stage.LICENSED)
    license_id = ledger.read(lambda s: s.scalar(select(License.id).where(License.deal_id == deal)))
    either.command("/license", "Acme", user=FINANCE)
    card = either.next()
    assert f"#{license_id} · SEAT × 10" in text_of(card) and "active" in text_of(card)
    valid_blocks(card["blocks"])

    either.click(buttons(card, "license_suspend")[0], user=FINANCE)
    modal = either.next("views.open")["view"]
    valid_view(modal)
    assert modal["title"]["text"] == "Suspend license"
    before = row_counts(ledger)
    refused = either.submit(modal, user=FINANCE, reason="   ")  # no reason: the modal says so, nothing changes
    assert refused == {"response_action": "errors", "errors": {"reason": "Say why: it goes on the customer's timeline."}}
    assert row_counts(ledger) == before

    assert either.submit(modal, user=FINANCE, reason="60 days overdue") == {}
    assert "is now suspended" in either.next()["text"]
    assert ledger.read(lambda s: s.get(License, license_id).status) is LicenseStatus.SUSPENDED
    [event] = events(ledger, "license.suspended")
    assert (event.actor, event.data["reason"]) == (FINANCE, "60 days overdue")

    either.command("/license", "Acme", user=FINANCE)
    reinstate = buttons(either.next(), "license_reinstate")[0]
    either.click(reinstate, user=FINANCE)
    modal = either.next("views.open")["view"]
    assert modal["title"]["text"] == "Reinstate license"
    either.submit(modal, user=FINANCE, reason="paid in full")
    assert "is now active" in either.next()["text"]
    either.submit(modal, user=FINANCE, reason="paid in full")  # the same modal sent twice
    assert either.next()["text"].startswith(":information_source: Already done")
    assert ledger.read(lambda s: s.get(License, license_id).status) is LicenseStatus.ACTIVE
    assert len(events(ledger, "license.reinstated")) == 1


def test_a_listener_that_fails_apologises_and_its_log_line_names_the_deal(either, slack_services, slack_api):
    """Slack refuses to open the modal: nothing changes, the user hears that it failed on our
    side, and the error handler's JSON line carries the deal of the license pressed."""
    ledger = slack_services.ledger
    _, deal = invoiced(ledger, Stage.LICENSED)
    either.command("/license", "Acme", user=FINANCE)
    card = either.next()
    slack_api.script["views.open"] = [(200, {}, {"ok": False, "error": "internal_error"})]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    logging.getLogger("closeloop.bot").addHandler(handler)
    before = row_counts(ledger)
    try:
        either.click(buttons(card, "license_suspend")[0], user=FINANCE)
        assert "Something went wrong on our side. Nothing was changed" in either.next()["text"]
    finally:
        logging.getLogger("closeloop.bot").removeHandler(handler)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["msg"], line["level"], line["deal"]) == ("slack listener failed", "error", deal)
    assert "internal_error" in line["error"]
    assert row_counts(ledger) == before
    assert ledger.read(lambda s: s.scalar(select(License.status).where(License.deal_id == deal))) \
        is LicenseStatus.ACTIVE


def test_a_rep_cannot_suspend_a_license_by_button_or_command(slack, slack_services):
    ledger = slack_services.ledger
    invoiced(ledger, Stage.LICENSED)
    slack.command("/license", "Acme", user=REP)
    card = slack.next()
    assert buttons(card) == []  # no finance buttons on a rep's card
    before = row_counts(ledger)
    slack.click({"action_id": "license_suspend", "value": json.dumps({"l": 1})}, user=REP)
    assert "Not allowed: suspending or reinstating a license" in slack.next()["text"]
    slack.command("/license", "suspend 1 unpaid", user=REP)
    assert "Not allowed" in slack.next()["text"]
    assert slack.api.of("views.open") == []
    assert row_counts(ledger) == {**before, "events": before["events"] + 2}
    assert ledger.read(lambda s: s.get(License, 1).status) is LicenseStatus.ACTIVE


# --- /collect --------------------------------------------------------------------------

def test_collect_shows_a_customers_open_invoices_by_aging_bucket(either, slack_services, clock):
    ledger = slack_services.ledger
    customer, _ = invoiced(ledger)               # INV-…01 due 2026-04-09
    clock.advance(timedelta(days=40))
    deal_at(ledger, customer, Stage.INVOICED)    # INV-…02 issued 2026-04-19, due 2026-05-19
    clock.advance(timedelta(days=35))            # today 2026-05-24: …01 is 45 days overdue, …02 5 days
    deal_at(ledger, customer, Stage.INVOICED)    # INV-…03 not yet due
    either.command("/collect", "Acme", user=FINANCE)
    card = either.next()
    shown = text_of(card)
    assert "*Not yet due*\n1 · 2,280.00 EUR" in shown
    assert "*0-30 days past due*\n1 · 2,280.00 EUR" in shown
    assert "*31-60 days past due*\n1 · 2,280.00 EUR" in shown
    assert "*61-90 days past due*\n0 · —" in shown and "*90+ days past due*\n0 · —" in shown
    assert "`INV-2026-000001` Acme GmbH · 2,280.00 EUR open · due 2026-04-09 · *45 days overdue*" in shown
    assert [b["action_id"] for b in buttons(card)] == ["collect_statement"]
    valid_blocks(card["blocks"])


def test_a_statement_is_sent_once_per_request(slack, slack_services):
    ledger = slack_services.ledger
    invoiced(ledger)
    slack.command("/collect", "statement Acme GmbH", user=FINANCE, trigger="trigger-1")
    assert "statement of account for Acme GmbH" in slack.next()["text"]
    slack.command("/collect", "statement Acme GmbH", user=FINANCE, trigger="trigger-1")  # Slack delivered it twice
    assert slack.next()["text"].startswith(":information_source: Already done")
    slack.command("/collect", "Acme", user=FINANCE)
    statement = buttons(slack.next(), "collect_statement")[0]
    slack.click(statement, user=FINANCE)
    slack.click(statement, user=FINANCE)
    answers = sorted(slack.next()["text"] for _ in range(2))
    assert answers[0].startswith(":email: A statement of account for Acme GmbH")
    assert answers[1].startswith(":information_source: Already done")
    assert len(outbox(ledger, "collect.statement")) == 2  # one per request: the command, the card
    slack.command("/collect", "statement Acme", user=REP)
    assert "Not allowed: sending a statement" in slack.next()["text"]
    assert len(outbox(ledger, "collect.statement")) == 2


# --- /gaps -----------------------------------------------------------------------------

def test_gaps_needs_a_role(either):
    either.command("/gaps", "", user=NOBODY)  # help needs no role
    either.command("/gaps", "mine", user=NOBODY)
    assert "Not allowed: seeing completeness gaps" in either.next()["text"]


# --- App Home --------------------------------------------------------------------------

def test_the_app_home_shows_each_role_its_own_section(either, slack_services, clock):
    ledger = slack_services.ledger
    customer, _ = invoiced(ledger)                                    # invoiced, owned by U_REP
    reps_deal(ledger, customer, seats=5)                              # quoted, owned by U0REP
    ledger.run(draft_quote, key="big-discount", customer_id=customer, owner=REP, currency="EUR",
               discount_bp=2500, lines=[LineRequest("SEAT", Decimal(20))])  # over the 15 % policy
    clock.advance(timedelta(days=45))

    either.open_home(REP)
    home = either.next("views.publish")
    assert home["user_id"] == REP
    shown = text_of(valid_view(home["view"]))
    assert "Your open quotes and deals" in shown and "*D-2* Acme GmbH · quoted · 240.00 EUR · 45 days old" in shown
    assert "Pipeline" not in shown and "Collections" not in shown

    either.open_home(MANAGER)
    shown = text_of(valid_view(either.next("views.publish")["view"]))
    assert "*quoted*\n2 · 960.00 EUR" in shown and "*invoiced*\n1 · 2,280.00 EUR" in shown
    assert "Discounts waiting for approval" in shown and "`Q-2026-0003` v1" in shown and "25 % off" in shown
    assert "Your open quotes" not in shown

    either.open_home(FINANCE)
    shown = text_of(valid_view(either.next("views.publish")["view"]))
    assert "*0-30 days past due*\n1 · 2,280.00 EUR" in shown and "*15 days overdue*" in shown
    assert "Your completeness gaps" in shown and "*Invoice overdue* · `INV-2026-000001`" in shown

    either.open_home(NOBODY)
    shown = text_of(valid_view(either.next("views.publish")["view"]))
    assert "You have no closeloop role yet" in shown and "closeloop roles grant" in shown


def test_a_busy_home_stays_within_one_hundred_blocks(slack, slack_services):
    ledger = slack_services.ledger
    customer = seed(ledger)
    for seats in range(1, 41):
        reps_deal(ledger, customer, seats=seats)
    ledger.run(grant_role, principal=REP, role=Role.ADMIN, granted_by="test")  # every section at once
    slack.open_home(REP)
    view = valid_view(slack.next("views.publish")["view"])
    shown = text_of(view)
    assert len(view["blocks"]) <= 100
    assert "…and 25 more" in shown and "*quoted*\n40 · " in shown
