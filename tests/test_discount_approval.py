"""Discounts above the policy wait for a manager: the quote is drafted, the approval is
asked for in the deal's thread, and it cannot go out for signature until approved.
A rejection blocks it until the rep revises the quote."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from closeloop.bootstrap import build
from closeloop.config import Settings
from flows.deals import Stage
from flows.errors import InvalidInput
from flows.outbox import OutboxMessage
from flows.quotes import Approval, Quote, QuoteVersion
from flows.steps import Done, LineRequest, approve_discount, reject_discount, revise_quote, send_quote
from flows.timeline import Event
from tests.factories import quoted_deal, row_counts, seed, stage_of

MANAGER = "U_MANAGER"


def _approval(ledger, deal_id, version=None):
    """(approval, decided by) of a version of the deal's quote (the current one by default)."""
    def read(session):
        quote = session.scalar(select(Quote).where(Quote.deal_id == deal_id))
        number = quote.current_version if version is None else version
        row = session.scalar(select(QuoteVersion).where(QuoteVersion.quote_id == quote.id,
                                                        QuoteVersion.version == number))
        return row.approval, row.approval_by
    return ledger.read(read)


def _events(ledger, deal_id, kind):
    return ledger.read(lambda s: list(s.scalars(
        select(Event).where(Event.deal_id == deal_id, Event.kind == kind).order_by(Event.id))))


def _thread_posts(ledger, deal_id, kind):
    """The deal-thread outbox rows announcing `kind`."""
    return ledger.read(lambda s: [m for m in s.scalars(
        select(OutboxMessage).where(OutboxMessage.deal_id == deal_id, OutboxMessage.kind == "slack.deal_thread")
        .order_by(OutboxMessage.id)) if m.payload["kind"] == kind])


def _quote_number(ledger, deal_id):
    return ledger.read(lambda s: s.scalar(select(Quote.number).where(Quote.deal_id == deal_id)))


def _send(ledger, deal_id):
    return ledger.run(send_quote, deal_id, provider="email", actor="U_REP")


def _revise(ledger, deal_id, *, discount_bp, key="revision-1"):
    return ledger.run(revise_quote, deal_id, key=key, actor="U_REP", discount_bp=discount_bp,
                      lines=[LineRequest("SEAT", Decimal(10)), LineRequest("SETUP", Decimal(1))])


def test_a_discount_above_the_policy_is_drafted_waiting_for_a_manager(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    number = _quote_number(ledger, deal)

    assert _approval(ledger, deal) == (Approval.PENDING, None)
    assert stage_of(ledger, deal) is Stage.QUOTED
    [requested] = _events(ledger, deal, "discount.approval_requested")
    assert requested.data == {"quote": number, "version": 1, "discount_bp": 2000}
    [post] = _thread_posts(ledger, deal, "discount.approval_requested")
    assert post.payload["data"]["version"] == 1
    assert "20 % discount" in post.payload["text"] and "15 % policy" in post.payload["text"]


def test_sending_a_quote_whose_discount_waits_for_approval_is_refused_and_changes_nothing(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    number = _quote_number(ledger, deal)
    before = row_counts(ledger)

    with pytest.raises(InvalidInput) as refusal:
        _send(ledger, deal)

    message = str(refusal.value)
    assert f"{number} v1" in message and "20 % discount" in message
    assert "not approved" in message and "before approval" in message
    assert row_counts(ledger) == before
    assert stage_of(ledger, deal) is Stage.QUOTED


def test_a_discount_exactly_at_the_policy_needs_no_approval(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=1500)

    assert _approval(ledger, deal) == (Approval.NOT_NEEDED, None)
    assert _events(ledger, deal, "discount.approval_requested") == []
    assert _thread_posts(ledger, deal, "discount.approval_requested") == []
    assert _send(ledger, deal) is Done.ACTED
    assert stage_of(ledger, deal) is Stage.SENT


def test_one_basis_point_above_the_policy_needs_approval(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=1501)
    assert _approval(ledger, deal) == (Approval.PENDING, None)


def test_an_approved_discount_can_be_sent(services, clock):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)

    assert ledger.run(approve_discount, deal, version=1, approver=MANAGER) is Done.ACTED

    assert _approval(ledger, deal) == (Approval.APPROVED, MANAGER)
    [approved] = _events(ledger, deal, "discount.approved")
    assert approved.actor == MANAGER and approved.data["discount_bp"] == 2000
    assert approved.occurred_at == clock.now()
    [post] = _thread_posts(ledger, deal, "discount.approved")
    assert f"approved by {MANAGER}" in post.payload["text"]
    assert _send(ledger, deal) is Done.ACTED
    assert stage_of(ledger, deal) is Stage.SENT


def test_approving_twice_changes_nothing_the_second_time(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    ledger.run(approve_discount, deal, version=1, approver=MANAGER)
    after_first = row_counts(ledger)

    assert ledger.run(approve_discount, deal, version=1, approver="U_OTHER_MANAGER") is Done.ALREADY

    assert row_counts(ledger) == after_first
    assert _approval(ledger, deal) == (Approval.APPROVED, MANAGER)


def test_a_rejection_needs_a_reason_and_a_blank_one_changes_nothing(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    before = row_counts(ledger)

    with pytest.raises(InvalidInput, match="say why the discount is rejected"):
        ledger.run(reject_discount, deal, version=1, approver=MANAGER, reason="   ")

    assert row_counts(ledger) == before
    assert _approval(ledger, deal) == (Approval.PENDING, None)


def test_a_rejected_discount_blocks_sending_and_names_who_rejected_it(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    number = _quote_number(ledger, deal)

    assert ledger.run(reject_discount, deal, version=1, approver=MANAGER,
                      reason="20 % is above what we give a first-year customer") is Done.ACTED

    assert _approval(ledger, deal) == (Approval.REJECTED, MANAGER)
    [rejected] = _events(ledger, deal, "discount.rejected")
    assert rejected.data["reason"] == "20 % is above what we give a first-year customer"
    before = row_counts(ledger)
    with pytest.raises(InvalidInput) as refusal:
        _send(ledger, deal)
    assert f"{number} v1 was rejected by {MANAGER}" in str(refusal.value)
    assert "revise the quote" in str(refusal.value)
    assert row_counts(ledger) == before
    assert stage_of(ledger, deal) is Stage.QUOTED


def test_a_rejected_discount_cannot_then_be_approved(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    ledger.run(reject_discount, deal, version=1, approver=MANAGER, reason="too deep")
    before = row_counts(ledger)

    with pytest.raises(InvalidInput, match="the discount is rejected; nothing to decide"):
        ledger.run(approve_discount, deal, version=1, approver=MANAGER)

    assert row_counts(ledger) == before
    assert ledger.run(reject_discount, deal, version=1, approver=MANAGER, reason="too deep") is Done.ALREADY
    assert row_counts(ledger) == before


def test_a_revision_within_the_policy_needs_no_approval_and_can_be_sent(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2000)
    ledger.run(reject_discount, deal, version=1, approver=MANAGER, reason="keep it at 10 %")

    assert _revise(ledger, deal, discount_bp=1000) is Done.ACTED

    assert _approval(ledger, deal) == (Approval.NOT_NEEDED, None)
    assert _approval(ledger, deal, version=1) == (Approval.REJECTED, MANAGER)
    assert len(_events(ledger, deal, "discount.approval_requested")) == 1  # only version 1 asked
    assert _send(ledger, deal) is Done.ACTED
    assert stage_of(ledger, deal) is Stage.SENT


def test_a_revision_still_above_the_policy_asks_again_for_its_own_version(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2500)
    _revise(ledger, deal, discount_bp=1800)

    requests = _events(ledger, deal, "discount.approval_requested")
    assert [(e.data["version"], e.data["discount_bp"]) for e in requests] == [(1, 2500), (2, 1800)]
    with pytest.raises(InvalidInput, match="v2 has a 18 % discount"):
        _send(ledger, deal)


@pytest.mark.parametrize("decide", [
    lambda ledger, deal: ledger.run(approve_discount, deal, version=1, approver=MANAGER),
    lambda ledger, deal: ledger.run(reject_discount, deal, version=1, approver=MANAGER, reason="too deep"),
], ids=["approve", "reject"])
def test_deciding_on_a_replaced_version_is_refused_and_changes_nothing(services, decide):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2500)
    number = _quote_number(ledger, deal)
    _revise(ledger, deal, discount_bp=2000)
    before = row_counts(ledger)

    with pytest.raises(InvalidInput) as refusal:
        decide(ledger, deal)

    assert str(refusal.value) == f"{number} v1 was replaced by version 2"
    assert row_counts(ledger) == before
    assert _approval(ledger, deal, version=1) == (Approval.PENDING, None)
    assert _approval(ledger, deal, version=2) == (Approval.PENDING, None)


def test_deciding_on_a_version_that_does_not_exist_is_refused(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=2500)
    number = _quote_number(ledger, deal)

    with pytest.raises(InvalidInput, match=f"{number} has no version 7"):
        ledger.run(approve_discount, deal, version=7, approver=MANAGER)


def test_there_is_nothing_to_decide_on_a_discount_within_the_policy(services):
    ledger = services.ledger
    deal = quoted_deal(ledger, seed(ledger), discount_bp=500)
    before = row_counts(ledger)

    with pytest.raises(InvalidInput, match="the discount is not needed; nothing to decide"):
        ledger.run(approve_discount, deal, version=1, approver=MANAGER)

    assert row_counts(ledger) == before


@pytest.fixture
def build_with(database_url, tmp_path, clock, monkeypatch):
    """Services built by closeloop.bootstrap.build from the environment, as a process starts."""
    built = []

    def make(**environment):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        built.append(build(Settings(database_url=database_url, outbox_dir=tmp_path / "outbox", data_dir=tmp_path / "data"), clock))
        return built[-1]

    yield make
    for services in built:
        services.close()


def test_the_threshold_comes_from_the_settings(build_with):
    services = build_with(CLOSELOOP_DISCOUNT_APPROVAL_PERCENT="10")
    ledger = services.ledger
    assert services.settings.discount_approval_percent == 10
    customer = seed(ledger)

    at_threshold = quoted_deal(ledger, customer, discount_bp=1000)
    above = quoted_deal(ledger, customer, discount_bp=1200)

    assert _approval(ledger, at_threshold) == (Approval.NOT_NEEDED, None)
    assert _approval(ledger, above) == (Approval.PENDING, None)
    [post] = _thread_posts(ledger, above, "discount.approval_requested")
    assert "12 % discount" in post.payload["text"] and "10 % policy" in post.payload["text"]


def test_a_zero_threshold_sends_every_discount_to_a_manager(build_with):
    ledger = build_with(CLOSELOOP_DISCOUNT_APPROVAL_PERCENT="0").ledger
    customer = seed(ledger)
    assert _approval(ledger, quoted_deal(ledger, customer, discount_bp=0)) == (Approval.NOT_NEEDED, None)
    assert _approval(ledger, quoted_deal(ledger, customer, discount_bp=1)) == (Approval.PENDING, None)


@pytest.mark.parametrize("percent", ["-1", "101"])
def test_a_threshold_outside_0_to_100_percent_is_refused_at_start(monkeypatch, percent):
    monkeypatch.setenv("CLOSELOOP_DISCOUNT_APPROVAL_PERCENT", percent)
    with pytest.raises(ValueError, match="CLOSELOOP_DISCOUNT_APPROVAL_PERCENT"):
        Settings()

