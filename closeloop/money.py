"""Wiring for money: the gateway chosen by CLOSELOOP_GATEWAY, the charge and collections
policies from configuration, the outbox routes (`payment.collect`, `payment.event`) and
the daily tick that the beat (or `closeloop collect run`) drives."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from adapters.manual_gateway import ManualGateway
from closeloop.config import Settings, parse_days, parse_thresholds
from closeloop.relay import Route
from flows.charges import (ChargePolicy, CollectCharge, charge_for_operation, charges_tick, reconcile_unknown,
                           record_charge_result)
from flows.collections import CollectionsPolicy, checkout_paid, collections_tick
from flows.gateway import Outcome, PaymentGateway
from flows.ledger import Ledger
from flows.outbox import Delivery, RetryPolicy


@dataclass
class MoneyServices:
    ledger: Ledger
    gateway: PaymentGateway
    charges: ChargePolicy
    collections: CollectionsPolicy
    webhook_secret: str | None


def build_money(settings: Settings, ledger: Ledger, gateway: PaymentGateway | None = None) -> MoneyServices:
    if gateway is None:
        if settings.gateway == "stripe":
            from adapters.stripe_gateway import StripeGateway
            gateway = StripeGateway(settings.stripe_api_key or "", api_base=settings.stripe_api_base,
                                    timeout=settings.stripe_timeout_seconds, return_url=settings.stripe_return_url)
        else:
            gateway = ManualGateway(settings.bank_details)
    charges = ChargePolicy(gateway=gateway.name, retry_days=parse_days(settings.charge_retry_days))
    return MoneyServices(ledger, gateway, charges, collections_policy(settings), settings.stripe_webhook_secret)


def collections_policy(settings: Settings) -> CollectionsPolicy:
    """The one parse of the collections settings: collections and the gap rules read it."""
    return CollectionsPolicy(
        reminder_days_before=settings.reminder_days_before, ladder=parse_days(settings.overdue_ladder),
        suspend_over=parse_thresholds(settings.suspend_over), suspend_after_days=settings.suspend_after_days,
        late_fee_percent=Decimal(settings.late_fee_percent) if settings.late_fee_percent else None,
        bank_details=settings.bank_details)


def money_routes(money: MoneyServices, retry: RetryPolicy) -> dict[str, Route]:
    def collect(delivery: Delivery) -> None:  # reads money's gateway at delivery: the demo swaps it
        CollectCharge(money.ledger, money.gateway, money.charges)(delivery)

    return {"payment.collect": Route(collect, retry), "payment.event": Route(PaymentEvent(money), retry)}


class PaymentEvent:
    """A webhook's work, after the 2xx: the object's state is fetched from the API, so
    what we record is the gateway's truth now, not what the (maybe stale) event said."""

    def __init__(self, money: MoneyServices) -> None:
        self.money = money

    def __call__(self, delivery: Delivery) -> None:
        payload, ledger, gateway = delivery.payload, self.money.ledger, self.money.gateway
        if payload["object"] == "checkout.session":
            checkout_paid(ledger, gateway.checkout_state(payload["id"]))
            return
        if payload["object"] != "payment_intent":
            return
        result, metadata = gateway.charge_state(payload["id"])
        operation = metadata.get("closeloop_operation")
        charge_id = ledger.run(charge_for_operation, operation) if operation else None
        if charge_id is None or result.outcome is Outcome.UNKNOWN:
            return  # not one of our charges (a checkout's intent), or still processing
        ledger.run(record_charge_result, charge_id, result, self.money.charges, via="webhook")


def money_tick(money: MoneyServices, as_of: date | None = None) -> dict[str, Any]:
    """One beat of the money clock: start due charges, reconcile unknown ones, run the
    day's collections. Idempotent: running it twice in a day does nothing new."""
    ledger = money.ledger
    charged = ledger.run(charges_tick, money.charges)
    reconciled = reconcile_unknown(ledger, money.gateway, money.charges) if money.gateway.charges_cards else {}
    collected = ledger.run(collections_tick, money.collections, as_of)
    return {**charged, **reconciled, **collected}
