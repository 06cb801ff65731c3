"""/quote as a rep uses it, the quote modal, and the buttons under a preview and in a
deal's thread — through signed requests, both over HTTP to `closeloop web` and through
the Bolt app's dispatch, against the loopback Slack and a real ledger."""
from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from datetime import timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import select

from adapters.slack import APPROVE_DISCOUNT, REJECT_DISCOUNT
from bot.app import build_app
from flows.access import Role, grant_role
from flows.deals import Deal, Stage
from flows.quotes import Approval, Quote, QuoteVersion
from flows.parties import ContactRole
from flows.steps import ContactRequest, LineRequest, add_customer, draft_quote
from flows.timeline import Event
from tests.factories import row_counts, seed, stage_of
from tests.slack_peer import APP, TEAM, block_action, command_body, interaction_body, sign

REP, MANAGER, FINANCE, STRANGER = "U0REP", "U0MGR", "U0FIN", "U0NOBODY"
_triggers = itertools.count(1)


# --- the Block Kit every payload must pass --------------------------------------------------

def valid_blocks(blocks: list[dict[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    assert 0 < len(blocks) <= limit, f"{len(blocks)} blocks"
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
        parsed.to_dict()  # validates the nested elements and text objects too
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    return blocks


def valid_view(view: dict[str, Any]) -> dict[str, Any]:
    parsed = View(**view)
    parsed.validate_json()
    parsed.to_dict()
    valid_blocks(view["blocks"], limit=100)
    return view


@pytest.fixture(autouse=True)
def every_block_kit_payload_validates(slack_api):
    """Whatever the bot sent to Slack in a test — messages, responses, modals — is valid."""
    yield
    for call in slack_api.calls:
        if call.args.get("blocks"):
            valid_blocks(call.args["blocks"])
        if call.args.get("view"):
            valid_view(call.args["view"])


# --- reaching the bot the way Slack does --------------------------------------------------------

class Slack:
    """Signed requests to the bot as Slack sends them; `send` is the transport."""

    def __init__(self, send: Callable[[bytes, str], tuple[int, str]], api) -> None:
        self.send, self.api = send, api

    def _answer(self, body: bytes, content_type: str = "application/x-www-form-urlencoded") -> dict[str, Any]:
        status, text = self.send(body, content_type)
        assert status == 200, (status, text)
        answer = json.loads(text) if text else {}
        if answer.get("blocks"):
            valid_blocks(answer["blocks"])
        return answer

    def command(self, text: str, *, user: str = REP, trigger: str | None = None) -> dict[str, Any]:
        trigger = trigger or f"{next(_triggers)}.{time.time_ns()}.quote"
        return self._answer(command_body("/quote", text, user=user, response_url=self.api.response_url,
                                         trigger=trigger))

    def click(self, action_id: str, value: str, *, user: str = REP) -> dict[str, Any]:
        payload = block_action(action_id, value, user=user, response_url=self.api.response_url)
        payload["trigger_id"] = f"{next(_triggers)}.button"
        return self._answer(interaction_body(payload))

    def submit(self, view: dict[str, Any], values: dict[str, Any], *, user: str = REP) -> dict[str, Any]:
        payload = {"type": "view_submission", "team": {"id": TEAM, "domain": "closeloop"}, "api_app_id": APP,
                   "user": {"id": user, "username": user.lower(), "team_id": TEAM},
                   "trigger_id": f"{next(_triggers)}.submit",
                   "view": {**view, "id": "V0MODAL", "team_id": TEAM, "app_id": APP, "state": {"values": values}}}
        return self._answer(interaction_body(payload))

    def search(self, action_id: str, value: str, *, user: str = REP) -> dict[str, Any]:
        payload = {"type": "block_suggestion", "team": {"id": TEAM, "domain": "closeloop"}, "api_app_id": APP,
                   "user": {"id": user, "team_id": TEAM}, "action_id": action_id, "block_id": "customer",
                   "value": value, "view": {"id": "V0MODAL", "type": "modal"}}
        return self._answer(interaction_body(payload))


def _dispatch(app):
    def send(body: bytes, content_type: str) -> tuple[int, str]:
        headers = {name.lower(): [value] for name, value in sign(body).items()}
        headers["content-type"] = [content_type]
        response = app.dispatch(BoltRequest(body=body.decode(), headers=headers))
        return response.status, response.body
    return send


def _http(base: str):
    def send(body: bytes, content_type: str) -> tuple[int, str]:
        request = urllib.request.Request(f"{base}/slack/events", data=body, method="POST",
                                         headers={"Content-Type": content_type, **sign(body)})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
    return send


@pytest.fixture
def roles(slack_services):
    for principal, role in ((REP, Role.REP), (MANAGER, Role.MANAGER), (FINANCE, Role.FINANCE)):
        slack_services.ledger.run(grant_role, principal=principal, role=role, granted_by="test")


@pytest.fixture
def dispatched(slack_services, slack_api, roles) -> Slack:
    """The Bolt app itself, reached through app.dispatch."""
    return Slack(_dispatch(build_app(slack_services)), slack_api)


@pytest.fixture
def over_http(web, slack_api, roles) -> Slack:
    """`closeloop web` over HTTP, as Slack reaches it."""
    return Slack(_http(web), slack_api)


@pytest.fixture(params=["dispatch", "http"])
def slack(request) -> Slack:
    return request.getfixturevalue({"dispatch": "dispatched", "http": "over_http"}[request.param])


@pytest.fixture
def acme(slack_services) -> int:
    return seed(slack_services.ledger)


# --- waiting for what listeners do after their ack ----------------------------------------------

def wait_for(find: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def said(api, *needles: str, method: str = "respond") -> Callable[[], list[dict[str, Any]]]:
    """Finder: the answers (by response URL unless told) whose JSON holds every needle."""
    def find() -> list[dict[str, Any]]:
        return [call.args for call in api.of(method)
                if all(needle in json.dumps(call.args, ensure_ascii=False) for needle in needles)]
    return find


def answer(api, *needles: str, method: str = "respond", count: int = 1) -> dict[str, Any]:
    """The latest answer holding every needle, once there are `count` of them."""
    find = said(api, *needles, method=method)
    return wait_for(lambda: len(find()) >= count and find(), f"{count} {method} with {needles}")[-1]


def button(message: dict[str, Any], action_id: str) -> str:
    for block in message.get("blocks", []):
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return element["value"]
    raise AssertionError(f"no {action_id} button in {message}")


def events(ledger, kind: str) -> list[Event]:
    return ledger.read(lambda s: list(s.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))))


def the_quote(ledger, number: str) -> tuple[Stage, int, Approval]:
    def read(session):
        quote = session.scalar(select(Quote).where(Quote.number == number))
        version = session.scalar(select(QuoteVersion).where(QuoteVersion.quote_id == quote.id,
                                                            QuoteVersion.version == quote.current_version))
        return quote.deal.stage, quote.current_version, version.approval
    return ledger.read(read)


def drafted_for(ledger, customer_id: int, owner: str, count: int) -> list[int]:
    return [ledger.run(draft_quote, key=f"list:{owner}:{n}", customer_id=customer_id, owner=owner, currency="EUR",
                       lines=[LineRequest("SEAT", Decimal(n + 1))]) for n in range(count)]


# --- help and malformed input ---------------------------------------------------------------------

def test_help_lists_every_quote_subcommand_without_touching_the_ledger(slack, slack_services, slack_api, acme):
    counts = row_counts(slack_services.ledger)
    reply = slack.command("help")
    assert reply["response_type"] == "ephemeral"
    shown = json.dumps(reply["blocks"])
    for sub in ("new", "add", "discount", "show", "send", "void", "list"):
        assert f"/quote {sub}" in shown
    assert row_counts(slack_services.ledger) == counts
    assert slack_api.of("respond") == []


def test_a_mistyped_command_gets_usage_with_the_closest_valid_form_and_changes_nothing(slack, slack_services,
                                                                                     slack_api, acme):
    counts = row_counts(slack_services.ledger)
    reply = slack.command("nwe Acme GmbH 10 SEAT")
    assert reply["response_type"] == "ephemeral"
    shown = json.dumps(reply["blocks"])
    assert "nwe" in shown and "/quote new Acme GmbH 10 SEAT" in shown and "Closest valid form" in shown
    assert "/quote discount" in shown  # the usage comes with it
    reply = slack.command("new Acme GmbH 10 SEAT discount 10")
    assert "/quote new Acme GmbH 10 SEAT discount 10%" in json.dumps(reply["blocks"])
    assert row_counts(slack_services.ledger) == counts
    assert slack_api.of("respond") == [] and slack_api.of("views.open") == []


# --- drafting from the command line -------------------------------------------------------------

def test_a_rep_drafts_a_quote_end_to_end_and_a_slack_retry_drafts_nothing_more(slack, slack_services, slack_api,
                                                                                acme):
    ledger = slack_services.ledger
    reply = slack.command("new Acme GmbH 10 SEAT, 1 SETUP discount 10%", trigger="777.888.first")
    assert reply["response_type"] == "ephemeral" and "Working on it" in reply["text"]
    preview = answer(slack_api, "Q-2026-0001")
    shown = json.dumps(preview["blocks"], ensure_ascii=False)
    assert preview["response_type"] == "ephemeral"
    assert "Drafted Q-2026-0001" in shown and "Acme GmbH" in shown
    # 10 × 40.00 and 1 × 1,500.00, each less 10 %: net 1,710.00, 20 % tax 342.00
    assert "360.00 EUR" in shown and "1,350.00 EUR" in shown and "Total 2,052.00 EUR" in shown
    deal_id, version = button(preview, "quote_send").split(":")
    assert version == "1" and button(preview, "quote_void") == f"{deal_id}:Q-2026-0001"
    deal = ledger.read(lambda s: s.get(Deal, int(deal_id)))
    assert (deal.owner, deal.origin_key, deal.stage) == (REP, "slack:777.888.first", Stage.QUOTED)

    counts = row_counts(ledger)
    slack.command("new Acme GmbH 10 SEAT, 1 SETUP discount 10%", trigger="777.888.first")  # Slack retries
    answer(slack_api, "Already done", "Q-2026-0001")
    assert row_counts(ledger) == counts


def test_adding_a_line_and_changing_the_discount_make_new_versions(dispatched, slack_services, slack_api, acme):
    dispatched.command("new Acme GmbH 10 SEAT @ 38/mo")
    answer(slack_api, "Drafted Q-2026-0001")
    dispatched.command("add Q-2026-0001 1 x SETUP")
    added = answer(slack_api, "Q-2026-0001 is now version 2")
    assert "380.00 EUR" in json.dumps(added["blocks"])  # the first line kept its agreed price
    dispatched.command("discount Q-2026-0001 5%")
    answer(slack_api, "Q-2026-0001 is now version 3")
    assert the_quote(slack_services.ledger, "Q-2026-0001") == (Stage.QUOTED, 3, Approval.NOT_NEEDED)


def test_a_price_per_year_for_a_monthly_seat_is_refused_and_changes_nothing(dispatched, slack_services, slack_api,
                                                                           acme):
    counts = row_counts(slack_services.ledger)
    dispatched.command("new Acme GmbH 10 SEAT @ 400/yr")
    refusal = answer(slack_api, "billed per month, not per year")
    assert refusal["response_type"] == "ephemeral" and refusal["text"].startswith(":warning:")
    dispatched.command("new Acme GmbH 10 PRO-SEAT")
    answer(slack_api, "no SKU 'PRO-SEAT'", "did you mean SEAT")
    assert row_counts(slack_services.ledger) == counts


def test_an_ambiguous_customer_gets_a_pick_list_whose_choice_finishes_the_command(slack, slack_services,
                                                                                 slack_api, acme):
    ledger = slack_services.ledger
    inc = ledger.run(add_customer, name="Acme Inc", country="US", currency="USD", contacts=(
        ContactRequest("Ann Signer", "ann@acme-inc.example", ContactRole.SIGNER),))
    counts = row_counts(ledger)
    slack.command("new Acme 10 SEAT", trigger="555.666.pick")
    pick = answer(slack_api, "Which customer did you mean")
    assert row_counts(ledger) == counts
    values = [block["accessory"]["value"] for block in pick["blocks"] if block.get("accessory")]
    assert len(values) == 2
    chosen = next(v for v in values if json.loads(v)["c"] == inc)
    slack.click("quote_pick_customer", chosen)
    slack.click("quote_pick_customer", chosen)  # a double click: both land before either is done
    preview = answer(slack_api, "Drafted Q-2026-0001", "Acme Inc")
    assert preview["replace_original"] is True  # the pick-list becomes the preview
    assert "450.00 USD" in json.dumps(preview["blocks"])  # priced in the customer's currency
    answer(slack_api, "Already done", "Q-2026-0001")
    assert ledger.read(lambda s: s.scalars(select(Deal.origin_key)).all()) == ["slack:555.666.pick"]


def test_an_unknown_customer_is_told_so(dispatched, slack_services, slack_api, acme):
    counts = row_counts(slack_services.ledger)
    dispatched.command("new Globex Corporation 10 SEAT")
    answer(slack_api, "No customer in the ledger matches", "Globex Corporation")
    assert row_counts(slack_services.ledger) == counts


def test_someone_without_a_sales_role_is_refused_and_the_refusal_is_audited(dispatched, slack_services, slack_api,
                                                                           acme):
    ledger = slack_services.ledger
    dispatched.command("new Acme GmbH 10 SEAT", user=FINANCE)
    refusal = answer(slack_api, "Not allowed", "drafting a quote")
    assert refusal["response_type"] == "ephemeral"
    assert [(e.actor, e.data["action"]) for e in events(ledger, "access.denied")] == [(FINANCE, "quote.create")]
    assert ledger.read(lambda s: s.scalars(select(Deal)).all()) == []


# --- the quote modal ------------------------------------------------------------------------------

def modal_values(customer: str | None = None, lines: list[tuple[str | None, str, str]] = (),
                 discount: str = "") -> dict[str, Any]:
    values: dict[str, Any] = {"customer": {"quote_customer": {
        "type": "external_select", "selected_option": {"text": {"type": "plain_text", "text": "x"},
                                                       "value": customer} if customer else None}}}
    rows = list(lines) + [(None, "", "")] * (3 - len(lines))
    for index, (sku, quantity, price) in enumerate(rows, start=1):
        values[f"line{index}_sku"] = {"sku": {"type": "static_select", "selected_option": {
            "text": {"type": "plain_text", "text": sku}, "value": sku} if sku else None}}
        values[f"line{index}_qty"] = {"qty": {"type": "plain_text_input", "value": quantity or None}}
        values[f"line{index}_price"] = {"price": {"type": "plain_text_input", "value": price or None}}
    values["discount"] = {"discount": {"type": "plain_text_input", "value": discount or None}}
    return values


def test_quote_new_alone_opens_the_modal_with_the_catalog(slack, slack_services, slack_api, acme):
    reply = slack.command("new", trigger="321.654.modal")
    assert reply == {}  # a bare ack: the modal is the answer
    opened = wait_for(lambda: slack_api.of("views.open"), "views.open")[0].args
    assert opened["trigger_id"] == "321.654.modal"
    view = opened["view"]
    assert view["callback_id"] == "quote_new"
    skus = [o["value"] for o in next(b for b in view["blocks"] if b.get("block_id") == "line1_sku")
            ["element"]["options"]]
    assert skus == ["ANNUAL", "SEAT", "SETUP"]
    found = slack.search("quote_customer", "acm")
    assert [(o["text"]["text"], o["value"]) for o in found["options"]] == [("Acme GmbH (DE, EUR)", f"c:{acme}")]


def test_the_modal_shows_each_mistake_beside_its_field_and_drafts_nothing(dispatched, slack_services, slack_api,
                                                                         acme):
    ledger = slack_services.ledger
    dispatched.command("new")
    view = wait_for(lambda: slack_api.of("views.open"), "views.open")[0].args["view"]
    counts = row_counts(ledger)

    nothing = dispatched.submit(view, modal_values(discount="150"))
    assert nothing["response_action"] == "errors"
    assert set(nothing["errors"]) == {"customer", "line1_sku", "discount"}
    assert "at least one line" in nothing["errors"]["line1_sku"]

    wrong = dispatched.submit(view, modal_values(customer=f"c:{acme}", lines=[
        ("SEAT", "ten", ""), ("SETUP", "1", "12.345"), (None, "4", "")], discount="12,5"))
    assert wrong["response_action"] == "errors"
    assert set(wrong["errors"]) == {"line1_qty", "line2_price", "line3_sku"}
    assert "not a quantity" in wrong["errors"]["line1_qty"]
    assert "decimal place" in wrong["errors"]["line2_price"]

    stranger = dispatched.submit(view, modal_values(customer="q:Globex", lines=[("SEAT", "2.5", "")]))
    assert set(stranger["errors"]) == {"customer", "line1_qty"}  # unknown customer; seats are whole
    assert row_counts(ledger) == counts and slack_api.of("chat.postMessage") == []


def test_a_valid_modal_clears_and_posts_the_preview_to_the_reps_dm(dispatched, slack_services, slack_api, acme):
    dispatched.command("new Acme GmbH", trigger="444.555.form")
    view = wait_for(lambda: slack_api.of("views.open"), "views.open")[0].args["view"]
    customer = next(b for b in view["blocks"] if b.get("block_id") == "customer")["element"]["initial_option"]
    assert customer["value"] == "q:Acme GmbH"  # what was typed comes prefilled

    done = dispatched.submit(view, modal_values(customer=customer["value"], lines=[
        ("SEAT", "25", ""), ("SETUP", "", "1200")], discount="10"))
    assert done == {"response_action": "clear"}
    posted = answer(slack_api, "Drafted Q-2026-0001", method="chat.postMessage")
    assert posted["channel"] == REP
    assert "1,080.00 EUR" in json.dumps(posted["blocks"])  # the overridden onboarding price, less 10 %
    assert slack_services.ledger.read(lambda s: s.scalar(select(Deal.origin_key))) == "slack:444.555.form"


def test_the_modal_tells_someone_without_the_role_and_audits_it(dispatched, slack_services, slack_api, acme):
    dispatched.command("new", user=STRANGER)
    answer(slack_api, "Not allowed", "drafting a quote")
    notice = wait_for(lambda: slack_api.of("views.update"), "views.update")[0].args["view"]
    assert "Not allowed" in json.dumps(notice)
    assert [e.actor for e in events(slack_services.ledger, "access.denied")] == [STRANGER]


# --- sending, and the discount gate -----------------------------------------------------------------

def test_send_for_signature_by_command_and_by_button_pressed_twice(dispatched, slack_services, slack_api, acme):
    ledger = slack_services.ledger
    dispatched.command("new Acme GmbH 10 SEAT")
    preview = answer(slack_api, "Drafted Q-2026-0001")
    dispatched.command("new Acme GmbH 5 SEAT")
    answer(slack_api, "Drafted Q-2026-0002")

    dispatched.command("send Q-2026-0002 via email")
    answer(slack_api, "Sent Q-2026-0002 v1 for signature (email)")

    value = button(preview, "quote_send")
    dispatched.click("quote_send", value)
    dispatched.click("quote_send", value)  # a double click: the same payload twice
    answer(slack_api, "Sent Q-2026-0001 v1 for signature")
    answer(slack_api, "Already done", "Q-2026-0001 v1 was already sent")
    assert the_quote(ledger, "Q-2026-0001")[0] is Stage.SENT
    assert [e.data["quote"] for e in events(ledger, "quote.sent")] == ["Q-2026-0002", "Q-2026-0001"]


def test_a_discount_over_policy_waits_for_a_manager_who_approves_it_in_the_deal_thread(
        dispatched, slack_services, slack_api, acme):
    ledger = slack_services.ledger
    dispatched.command("new Acme GmbH 10 SEAT discount 20%")
    preview = answer(slack_api, "Drafted Q-2026-0001")
    assert "a manager must approve" in json.dumps(preview["blocks"])

    counts = row_counts(ledger)
    dispatched.command("send Q-2026-0001")
    assert "cannot be sent before approval" in answer(slack_api, ":warning:")["text"]
    assert row_counts(ledger) == counts and stage_of(ledger, 1) is Stage.QUOTED

    assert slack_services.relay.drain()  # the deal's thread gets the approval request, with buttons
    request = answer(slack_api, "discount_approve", method="chat.postMessage")
    approve = button(request, APPROVE_DISCOUNT)
    assert approve == "1:1"

    dispatched.click(APPROVE_DISCOUNT, approve, user=REP)  # a rep may not approve their own discount
    refusal = answer(slack_api, "Not allowed", "approving or rejecting a discount")
    assert refusal["response_type"] == "ephemeral"
    assert [(e.actor, e.data["action"], e.deal_id) for e in events(ledger, "access.denied")] == [
        (REP, "discount.decide", 1)]
    assert the_quote(ledger, "Q-2026-0001")[2] is Approval.PENDING

    dispatched.click(APPROVE_DISCOUNT, approve, user=MANAGER)
    dispatched.click(APPROVE_DISCOUNT, approve, user=MANAGER)  # pressed twice
    answer(slack_api, "You approved the 20 % discount on Q-2026-0001 v1")
    answer(slack_api, "Already done", "already approved")
    assert len(events(ledger, "discount.approved")) == 1

    dispatched.click("quote_send", button(preview, "quote_send"))
    answer(slack_api, "Sent Q-2026-0001 v1 for signature")
    assert the_quote(ledger, "Q-2026-0001") == (Stage.SENT, 1, Approval.APPROVED)


def test_a_manager_rejects_a_discount_with_a_reason_asked_in_a_modal(dispatched, slack_services, slack_api, acme):
    ledger = slack_services.ledger
    dispatched.command("new Acme GmbH 10 SEAT discount 30%")
    answer(slack_api, "Drafted Q-2026-0001")

    dispatched.click(REJECT_DISCOUNT, "1:1", user=REP)
    answer(slack_api, "Not allowed")
    assert slack_api.of("views.open") == []

    dispatched.click(REJECT_DISCOUNT, "1:1", user=MANAGER)
    view = wait_for(lambda: slack_api.of("views.open"), "the reason modal")[0].args["view"]
    empty = dispatched.submit(view, {"reason": {"reason": {"type": "plain_text_input", "value": "  "}}},
                              user=MANAGER)
    assert empty["response_action"] == "errors" and "reason" in empty["errors"]
    why = {"reason": {"reason": {"type": "plain_text_input", "value": "30 % needs a 3-year term"}}}
    assert dispatched.submit(view, why, user=MANAGER) == {"response_action": "clear"}
    answer(slack_api, "You rejected the 30 % discount on Q-2026-0001 v1")
    dispatched.submit(view, why, user=MANAGER)
    answer(slack_api, "Already done", "already rejected")
    assert the_quote(ledger, "Q-2026-0001")[2] is Approval.REJECTED
    assert [e.data["reason"] for e in events(ledger, "discount.rejected")] == ["30 % needs a 3-year term"]


# --- voiding and listing -------------------------------------------------------------------------

def test_void_asks_for_a_reason_in_a_modal_and_voids_once(dispatched, slack_services, slack_api, acme):
    ledger = slack_services.ledger
    dispatched.command("new Acme GmbH 10 SEAT")
    preview = answer(slack_api, "Drafted Q-2026-0001")
    dispatched.click("quote_void", button(preview, "quote_void"))
    view = wait_for(lambda: slack_api.of("views.open"), "the void modal")[0].args["view"]
    assert view["callback_id"] == "quote_void_reason" and "Q-2026-0001" in json.dumps(view)

    empty = dispatched.submit(view, {"reason": {"reason": {"type": "plain_text_input", "value": None}}})
    assert empty["response_action"] == "errors"
    assert stage_of(ledger, 1) is Stage.QUOTED

    why = {"reason": {"reason": {"type": "plain_text_input", "value": "customer went with a competitor"}}}
    assert dispatched.submit(view, why) == {"response_action": "clear"}
    voided = answer(slack_api, "Voided Q-2026-0001", "customer went with a competitor")
    assert voided["replace_original"] is True
    dispatched.submit(view, why)
    answer(slack_api, "Already done", "Q-2026-0001 is already void")
    dispatched.command("void Q-2026-0001 again")
    answer(slack_api, "Already done", "Q-2026-0001 is already void", count=2)
    assert stage_of(ledger, 1) is Stage.VOID and len(events(ledger, "quote.voided")) == 1


def test_list_shows_my_open_quotes_a_page_at_a_time(slack, slack_services, slack_api, acme, clock):
    ledger = slack_services.ledger
    mine = drafted_for(ledger, acme, REP, 12)
    drafted_for(ledger, acme, "U0OTHER", 2)
    clock.advance(timedelta(days=3))
    slack.command("void Q-2026-0001 duplicate")
    answer(slack_api, "Voided Q-2026-0001")

    slack.command("list")
    first = answer(slack_api, "Your open quotes: 1–10 of 11")
    shown = json.dumps(first["blocks"], ensure_ascii=False)
    assert "Q-2026-0012" in shown and "Q-2026-0003" in shown and "Q-2026-0002" not in shown
    assert "Q-2026-0013" not in shown  # someone else's
    assert "quoted for 3 days" in shown and "opened 3 days ago" in shown
    slack.click("quote_list_page", button(first, "quote_list_page"))
    second = answer(slack_api, "Your open quotes: 11–11 of 11")
    assert second["replace_original"] is True and "Q-2026-0002" in json.dumps(second["blocks"])
    slack.click("quote_show", str(mine[1]))
    answer(slack_api, "Q-2026-0002 · v1 · Acme GmbH")


def test_a_quote_with_hundreds_of_lines_still_fits_one_message(dispatched, slack_services, slack_api, acme):
    slack_services.ledger.run(draft_quote, key="big", customer_id=acme, owner=REP, currency="EUR",
                              lines=[LineRequest("SEAT", Decimal(n), description=f"Seats for team {n} " + "x" * 230)
                                     for n in range(1, 601)])
    dispatched.command("show Q-2026-0001")
    preview = answer(slack_api, "Q-2026-0001 · v1")
    assert len(preview["blocks"]) <= 50  # and every section within 3,000 characters (checked for all payloads)
    shown = json.dumps(preview["blocks"], ensure_ascii=False)
    assert "Seats for team 1 " in shown and "600 in all" in shown and "Total" in shown
    assert button(preview, "quote_send") == "1:1"


# --- a signature received outside closeloop -------------------------------------------------------

def test_a_manager_records_a_paper_signature_and_the_deal_is_won_without_leaving_slack(
        slack, slack_services, slack_api, acme):
    ledger = slack_services.ledger
    slack.command("new Acme GmbH 10 SEAT, 1 SETUP")
    number = "Q-2026-0001"
    answer(slack_api, number)
    slack.command(f"send {number}")
    answer(slack_api, "Sent", number)
    slack.command(f"signed {number} signed on paper at the customer's office, scan in the CRM", user=MANAGER)
    answer(slack_api, "Signature recorded")
    stage, version, _ = the_quote(ledger, number)
    assert stage is Stage.BILLING_ACTIVE and version == 1
    signed = events(ledger, "quote.signed")
    assert len(signed) == 1 and signed[0].actor == MANAGER
    assert signed[0].data["evidence"] == {"method": "recorded in Slack", "by": MANAGER,
                                          "note": "signed on paper at the customer's office, scan in the CRM"}
    assert [e.kind for e in events(ledger, "deal.won")] == ["deal.won"]


def test_a_rep_cannot_record_a_signature_and_the_attempt_is_audited(slack, slack_services, slack_api, acme):
    ledger = slack_services.ledger
    slack.command("new Acme GmbH 10 SEAT")
    answer(slack_api, "Q-2026-0001")
    slack.command("send Q-2026-0001")
    answer(slack_api, "Sent", "Q-2026-0001")
    counts = row_counts(ledger)
    slack.command("signed Q-2026-0001 trust me", user=REP)
    answer(slack_api, "Not allowed", "recording a signature")
    assert the_quote(ledger, "Q-2026-0001")[0] is Stage.SENT
    denied = events(ledger, "access.denied")
    assert denied and denied[-1].actor == REP and denied[-1].data["action"] == "quote.mark_signed"
    after = row_counts(ledger)
    assert {table: n for table, n in after.items() if n != counts[table]} == {"events": counts["events"] + 1}
