"""Charging through Stripe (localstripe on loopback, behind a proxy that can drop the
answer after the charge committed): success once with one receipt, soft declines
retried on the schedule until exhausted, hard declines not retried, the unknown
outcome resolved by the reconciler without a second charge, and the payments webhook
(signed, de-duplicated, order-tolerant, stale refused)."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from closeloop.bootstrap import build
from closeloop.money import money_tick
from flows.billing import Charge, ChargeStatus, Payment
from flows.charges import ChargeCheck, ChargePlan, GatewayAccount, PlanStatus, register_card
from flows.collections import open_payment_link
from flows.deals import Stage
from flows.errors import InvalidInput
from flows.inbox import InboundEvent
from flows.invoices import Invoice, InvoiceStatus
from flows.outbox import OutboxMessage
from flows.timeline import Event
from tests.factories import deal_at, seed
from tests.stripe_peer import API_KEY, WEBHOOK_SECRET, card, post_webhook, signed_event, stripe_client


@pytest.fixture
def shop(settings, clock, stripe_proxy):
    """closeloop with CLOSELOOP_GATEWAY=stripe against the proxied localstripe."""
    built = build(settings.model_copy(update={
        "gateway": "stripe", "stripe_api_key": API_KEY, "stripe_api_base": stripe_proxy.url,
        "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_timeout_seconds": 5.0}), clock)
    yield built
    built.close()


@pytest.fixture
def webhook_url(shop):
    from waitress.server import create_server

    from closeloop.web import web_app
    server = create_server(web_app(shop), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


def _billed(shop, proxy, kind="ok"):
    ledger = shop.ledger
    customer = seed(ledger)
    deal = deal_at(ledger, customer, Stage.BILLING_ACTIVE)
    register_card(ledger, shop.money.gateway, customer, card(proxy.url, kind))
    invoice = ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.deal_id == deal)))
    return customer, invoice


def _rows(ledger, model, *where):
    return ledger.read(lambda s: list(s.scalars(select(model).where(*where).order_by(model.id))))


def _invoice(ledger, invoice_id):
    return ledger.read(lambda s: s.get(Invoice, invoice_id))


def _plan(ledger, invoice_id):
    return ledger.read(lambda s: s.scalar(select(ChargePlan).where(ChargePlan.invoice_id == invoice_id)))


def _emails(ledger, template):
    return [m for m in _rows(ledger, OutboxMessage, OutboxMessage.kind == "email.send")
            if m.payload["template"] == template]


def _intents(proxy, customer_ref):
    return stripe_client(proxy.url).v1.payment_intents.list({"customer": customer_ref}).data


def test_a_card_on_file_pays_the_invoice_once_with_one_receipt(shop, stripe_proxy):
    ledger = shop.ledger
    _, invoice = _billed(shop, stripe_proxy)
    assert money_tick(shop.money)["attempted"] == 1
    shop.relay.drain()

    [charge] = _rows(ledger, Charge)
    assert (charge.attempt, charge.status, charge.idempotency_key) == (1, ChargeStatus.SUCCEEDED,
                                                                       f"charge:{invoice.id}:1")
    assert charge.gateway_ref.startswith("pi_") and charge.amount == invoice.gross == 228000
    [payment] = _rows(ledger, Payment)
    assert (payment.charge_id, payment.amount, payment.reference, payment.method) == (
        charge.id, 228000, charge.gateway_ref, "card")
    assert _invoice(ledger, invoice.id).status is InvoiceStatus.PAID
    [receipt] = _emails(ledger, "receipt")
    assert receipt.payload["to"] == ["billing@acme.example"]
    assert receipt.payload["context"]["invoices"] == [
        {"invoice": invoice.number, "amount": 228000, "balance": 0, "status": "paid"}]

    assert money_tick(shop.money)["attempted"] == 0  # the beat again: nothing new
    shop.relay.drain()
    assert len(_rows(ledger, Charge)) == 1 and len(_rows(ledger, Payment)) == 1 and len(_emails(ledger, "receipt")) == 1


def test_soft_declines_are_retried_on_days_1_3_5_7_then_exhausted(shop, stripe_proxy, clock):
    ledger = shop.ledger
    _, invoice = _billed(shop, stripe_proxy, "soft")
    start = clock.now()
    money_tick(shop.money)
    shop.relay.drain()
    plan = _plan(ledger, invoice.id)
    assert (plan.status, plan.next_attempt_at) == (PlanStatus.SCHEDULED, start + timedelta(days=1))

    clock.advance(timedelta(hours=20))  # not yet the retry day
    assert money_tick(shop.money)["attempted"] == 0
    for day in (1, 3, 5, 7):
        clock.set(start + timedelta(days=day, minutes=1))
        assert money_tick(shop.money)["attempted"] == 1, day
        shop.relay.drain()

    charges = _rows(ledger, Charge)
    assert [(c.attempt, c.status, c.failure_code) for c in charges] == [
        (n, ChargeStatus.FAILED, "card_declined") for n in range(1, 6)]
    assert [c.created_at - start for c in charges] == [timedelta(0)] + [
        timedelta(days=d, minutes=1) for d in (1, 3, 5, 7)]
    plan = _plan(ledger, invoice.id)
    assert (plan.status, plan.attempts, plan.next_attempt_at) == (PlanStatus.EXHAUSTED, 5, None)
    assert _rows(ledger, Event, Event.kind == "charge.retries_exhausted")
    clock.advance(timedelta(days=30))
    assert money_tick(shop.money)["attempted"] == 0
    assert _invoice(ledger, invoice.id).status is InvoiceStatus.ISSUED and not _rows(ledger, Payment)


def test_a_hard_decline_is_not_retried_until_the_customer_gives_another_card(shop, stripe_proxy, clock):
    ledger = shop.ledger
    customer, invoice = _billed(shop, stripe_proxy, "auth")  # needs 3-D Secure: impossible off-session
    money_tick(shop.money)
    shop.relay.drain()
    [charge] = _rows(ledger, Charge)
    assert (charge.status, charge.failure_code) == (ChargeStatus.FAILED, "authentication_required")
    assert _plan(ledger, invoice.id).status is PlanStatus.HARD_DECLINED
    clock.advance(timedelta(days=10))
    assert money_tick(shop.money)["attempted"] == 0

    with pytest.raises(InvalidInput, match="refused"):  # a card that cannot even be attached
        register_card(ledger, shop.money.gateway, customer, card(stripe_proxy.url, "refused"))
    register_card(ledger, shop.money.gateway, customer, card(stripe_proxy.url, "ok"))
    assert money_tick(shop.money)["attempted"] == 1
    shop.relay.drain()
    assert [(c.attempt, c.status) for c in _rows(ledger, Charge)] == [
        (1, ChargeStatus.FAILED), (2, ChargeStatus.SUCCEEDED)]
    assert _invoice(ledger, invoice.id).status is InvoiceStatus.PAID


def test_an_answer_lost_after_the_gateway_committed_is_reconciled_never_charged_again(shop, stripe_proxy, clock):
    ledger = shop.ledger
    _, invoice = _billed(shop, stripe_proxy)
    stripe_proxy.drop_after_forward(1)
    money_tick(shop.money)
    shop.relay.drain()
    [charge] = _rows(ledger, Charge)
    assert charge.status is ChargeStatus.UNKNOWN
    [check] = _rows(ledger, ChargeCheck)
    assert check.next_check_at == clock.now() + timedelta(minutes=5)
    assert _invoice(ledger, invoice.id).status is InvoiceStatus.ISSUED

    clock.advance(timedelta(minutes=2))
    assert money_tick(shop.money).get("checked") == 0  # not due yet
    clock.advance(timedelta(minutes=3))
    assert money_tick(shop.money)["resolved"] == 1
    shop.relay.drain()

    [charge] = _rows(ledger, Charge)
    assert charge.status is ChargeStatus.SUCCEEDED and charge.gateway_ref.startswith("pi_")
    assert len(_rows(ledger, Payment)) == 1 and _invoice(ledger, invoice.id).status is InvoiceStatus.PAID
    assert _rows(ledger, ChargeCheck)[0].resolution == "succeeded"
    customer_ref = shop.money.gateway.client.v1.payment_intents.retrieve(charge.gateway_ref).customer
    assert [i.id for i in _intents(stripe_proxy, customer_ref)] == [charge.gateway_ref]  # one charge at Stripe
    assert stripe_proxy.requests.count(("POST", "/v1/payment_intents")) == 1
    clock.advance(timedelta(days=2))
    money_tick(shop.money)
    assert len(_rows(ledger, Charge)) == 1


def test_the_payments_webhook_is_signed_deduplicated_and_order_tolerant(shop, stripe_proxy, webhook_url, clock):
    ledger = shop.ledger
    _, invoice = _billed(shop, stripe_proxy)
    stripe_proxy.drop_after_forward(1)  # our own answer is lost: the webhook tells first
    money_tick(shop.money)
    shop.relay.drain()
    [charge] = _rows(ledger, Charge)
    assert charge.status is ChargeStatus.UNKNOWN
    customer_ref = ledger.read(lambda s: s.scalar(select(GatewayAccount.customer_ref)))
    [intent] = _intents(stripe_proxy, customer_ref)  # committed at Stripe, unknown to us

    body, signature = signed_event("payment_intent.succeeded", {"id": intent.id, "object": "payment_intent",
                                                                "status": "succeeded"}, event_id="evt_1")
    assert post_webhook(webhook_url, body, signature) == (200, {"ok": True, "duplicate": False})
    assert post_webhook(webhook_url, body, signature) == (200, {"ok": True, "duplicate": True})
    assert len(_rows(ledger, OutboxMessage, OutboxMessage.kind == "payment.event")) == 1
    shop.relay.drain()
    [charge] = _rows(ledger, Charge)
    assert charge.status is ChargeStatus.SUCCEEDED and len(_rows(ledger, Payment)) == 1

    # An older "failed" event arriving late: the API says succeeded, so nothing changes.
    late, late_sig = signed_event("payment_intent.payment_failed", {"id": intent.id, "object": "payment_intent",
                                                                    "status": "requires_payment_method"},
                                  event_id="evt_0")
    assert post_webhook(webhook_url, late, late_sig)[0] == 200
    shop.relay.drain()
    assert _rows(ledger, Charge)[0].status is ChargeStatus.SUCCEEDED
    assert len(_rows(ledger, Payment)) == 1 and len(_emails(ledger, "receipt")) == 1

    stale, stale_sig = signed_event("payment_intent.succeeded", {"id": intent.id, "object": "payment_intent"},
                                    event_id="evt_2", timestamp=int(__import__("time").time()) - 400)
    status, answer = post_webhook(webhook_url, stale, stale_sig)
    assert status == 400 and "signature" in answer["error"]
    forged, _ = signed_event("payment_intent.succeeded", {"id": intent.id, "object": "payment_intent"},
                             event_id="evt_3", secret="whsec_wrong")
    assert post_webhook(webhook_url, forged, signature)[0] == 400
    assert {e.external_id for e in _rows(ledger, InboundEvent)} == {"evt_0", "evt_1"}

    clock.advance(timedelta(minutes=10))  # the reconciler finds the check already resolved
    assert money_tick(shop.money).get("checked") == 0


def test_one_checkout_link_pays_all_open_invoices_with_one_receipt(shop, stripe_proxy, webhook_url):
    ledger = shop.ledger
    customer = seed(ledger)
    deals = [deal_at(ledger, customer, Stage.BILLING_ACTIVE) for _ in range(2)]
    invoices = [ledger.read(lambda s, d=d: s.scalar(select(Invoice).where(Invoice.deal_id == d))) for d in deals]
    link = open_payment_link(ledger, shop.money.gateway, customer, "EUR")
    assert link.amount == 2 * 228000 and link.gateway_ref.startswith("cs_") and link.url
    assert open_payment_link(ledger, shop.money.gateway, customer, "EUR").id == link.id  # same debt, same link
    [email] = _emails(ledger, "payment_link")
    assert email.payload["context"]["url"] == link.url

    session = stripe_proxy.complete(link.gateway_ref)
    body, signature = signed_event("checkout.session.completed", session)
    assert post_webhook(webhook_url, body, signature)[0] == 200
    again, again_sig = signed_event("checkout.session.completed", session)  # a second event, same session
    assert post_webhook(webhook_url, again, again_sig)[0] == 200
    shop.relay.drain()

    assert {_invoice(ledger, i.id).status for i in invoices} == {InvoiceStatus.PAID}
    payments = _rows(ledger, Payment)
    assert sorted(p.amount for p in payments) == [228000, 228000]
    [receipt] = _emails(ledger, "receipt")
    assert receipt.payload["context"]["amount"] == 456000
    assert [line["invoice"] for line in receipt.payload["context"]["invoices"]] == [i.number for i in invoices]


def test_the_idempotency_key_makes_a_repeated_request_one_charge_at_stripe(shop, stripe_proxy):
    """Key semantics need the replay proxy (localstripe ignores Idempotency-Key)."""
    from flows.charges import charge_request
    ledger = shop.ledger
    _, invoice = _billed(shop, stripe_proxy)
    money_tick(shop.money)
    [charge] = _rows(ledger, Charge)
    request, _ = ledger.run(charge_request, charge.id)
    first, second = shop.money.gateway.charge(request), shop.money.gateway.charge(request)
    assert first.gateway_ref == second.gateway_ref and first.outcome.value == "succeeded"
    account = _rows(ledger, GatewayAccount)[0]
    assert len(_intents(stripe_proxy, account.customer_ref)) == 1
    assert request.operation_id == f"charge:{invoice.id}:1"


def test_a_redelivered_charge_looks_up_before_asking_again(shop, stripe_proxy):
    """The relay died after the gateway charged (its lease expires, the message comes
    back as attempt 2): the route finds the charge by our operation id instead."""
    from flows.charges import CollectCharge, charge_request
    from flows.outbox import Delivery
    ledger = shop.ledger
    _billed(shop, stripe_proxy)
    money_tick(shop.money)
    [charge] = _rows(ledger, Charge)
    request, _ = ledger.run(charge_request, charge.id)
    shop.money.gateway.charge(request)  # the first delivery asked, then died before recording
    stripe_proxy.replayed.clear()       # and the key's replay window is gone: only the lookup can help
    CollectCharge(ledger, shop.money.gateway, shop.money.charges)(Delivery(
        0, "payment.collect", {"charge_id": charge.id}, f"payment.collect:{charge.idempotency_key}", 2, None))
    [charge] = _rows(ledger, Charge)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(_intents(stripe_proxy, _rows(ledger, GatewayAccount)[0].customer_ref)) == 1


def test_a_key_reused_with_another_amount_is_refused_charges_nothing_more_and_is_not_retried(shop, stripe_proxy):
    """RELIABILITY 5: a provider-style 400 (idempotency_error) raises in our client, the
    delivery is dead-lettered at once instead of retried, and Stripe holds one charge."""
    from dataclasses import replace

    from flows.charges import charge_request
    from flows.outbox import PermanentFailure
    ledger = shop.ledger
    _billed(shop, stripe_proxy)
    money_tick(shop.money)
    [charge] = _rows(ledger, Charge)
    request, _ = ledger.run(charge_request, charge.id)
    shop.money.gateway.charge(request)
    with pytest.raises(PermanentFailure, match="used with other parameters"):
        shop.money.gateway.charge(replace(request, amount=request.amount + 100))  # the bug: same key, new amount
    account = _rows(ledger, GatewayAccount)[0]
    assert len(_intents(stripe_proxy, account.customer_ref)) == 1
    assert stripe_proxy.requests.count(("POST", "/v1/payment_intents")) == 2  # asked twice, charged once
