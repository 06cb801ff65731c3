"""The demo's money: the first period charged on the card on file, a later charge
declined and retried the next day, then a card that expired — no retry — so the
invoice goes through collections day by day: the reminder, the overdue ladder with the
aging report and invoice copies attached, the suspension, the bank transfer, the
reinstatement.

The card processor here is a loopback stand-in behind the same gateway port Stripe's
adapter implements (the demo must run with nothing but `pip install -e .`); set
CLOSELOOP_GATEWAY=stripe for the real one."""
from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from flows.billing import Charge
from flows.charges import ChargePlan, ChargePolicy, register_card
from flows.collections import CollectionsPolicy, DunningNotice, collections_tick
from flows.deals import Deal
from flows.finance import record_payment
from flows.gateway import (ChargeRequest, ChargeResult, Checkout, CheckoutRequest, CheckoutState, GatewayCustomer,
                           Outcome, PaymentMethodOnFile)
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License
from flows.money import Money
from flows.outbox import OutboxMessage
from flows.steps import LineRequest, draft_quote, record_signature, send_quote


class DemoCardGateway:
    """Answers like a card processor: succeeds unless told to decline the next charge."""

    name = "demo-card"
    charges_cards = True

    def __init__(self) -> None:
        self.declines: list[ChargeResult] = []
        self.charged: dict[str, ChargeResult] = {}

    def ensure_customer(self, customer: GatewayCustomer) -> str:
        return customer.gateway_ref or f"cus_demo_{customer.customer_id}"

    def attach_method(self, customer_ref: str, method_token: str) -> PaymentMethodOnFile:
        return PaymentMethodOnFile(customer_ref, f"pm_demo_{method_token}", "visa", method_token[-4:])

    def charge(self, request: ChargeRequest) -> ChargeResult:
        result = self.charged.get(request.operation_id)  # same key, same answer (as Stripe)
        if result is None:
            result = self.declines.pop(0) if self.declines else ChargeResult(
                Outcome.SUCCEEDED, gateway_ref=f"pi_demo_{len(self.charged) + 1}", amount=request.amount)
            self.charged[request.operation_id] = result
        return result

    def lookup(self, request: ChargeRequest) -> ChargeResult:
        return self.charged.get(request.operation_id, ChargeResult(Outcome.NOT_FOUND))

    def checkout(self, request: CheckoutRequest) -> Checkout:
        return Checkout(f"cs_demo_{request.link_id}", f"https://pay.example/{request.reference}")

    def checkout_state(self, gateway_ref: str) -> CheckoutState:
        return CheckoutState(False, 0, gateway_ref, None)

    def charge_state(self, gateway_ref: str) -> tuple[ChargeResult, dict[str, str]]:
        return ChargeResult(Outcome.UNKNOWN), {}


def money_scene(log: Any, services: Any, clock: Any, customer_id: int, deal_id: int) -> None:
    ledger, money = services.ledger, services.money
    gateway = DemoCardGateway()
    money.gateway = gateway
    money.charges = ChargePolicy(gateway=gateway.name, retry_days=money.charges.retry_days)
    money.collections = CollectionsPolicy(
        reminder_days_before=money.collections.reminder_days_before, ladder=money.collections.ladder,
        suspend_over={"EUR": 50000}, suspend_after_days=14, bank_details="IBAN PL61 1090 1014 0000 0712 1981 2874")

    log.say("5. Charging the card on file (gateway port; a loopback card processor stands in for Stripe)")
    label = log.step("the customer's card is put on file (`closeloop pay card`)",
                     lambda: register_card(ledger, gateway, customer_id, "4242"))
    log.say(f"    {label}")
    _tick(log, services, "the beat: first period charged")
    _charges(log, ledger, deal_id)
    _emails(log, ledger, "receipt", since=0)

    clock.advance(timedelta(days=31))
    log.say(f"    … {clock.now():%Y-%m-%d}: the customer adds 5 seats; the card is declined (insufficient funds)")
    gateway.declines.append(ChargeResult(Outcome.SOFT_DECLINE, code="insufficient_funds"))
    mark = _last_outbox(ledger)
    second = _signed_deal(log, services, customer_id, "demo:addon:1", [LineRequest("PRO-SEAT", Decimal(5))])
    _settle(services)
    _charges(log, ledger, second)
    clock.advance(timedelta(days=1, minutes=1))
    _tick(log, services, f"{clock.now():%Y-%m-%d}: the beat retries on retry day 1")
    _charges(log, ledger, second)
    _emails(log, ledger, "receipt", since=mark)

    clock.advance(timedelta(days=20))
    log.say()
    log.say(f"6. Collections — {clock.now():%Y-%m-%d}: 20 more seats; the card has expired: a hard decline, "
            "not retried")
    gateway.declines.append(ChargeResult(Outcome.HARD_DECLINE, code="expired_card"))
    mark = _last_outbox(ledger)
    third = _signed_deal(log, services, customer_id, "demo:addon:2", [LineRequest("PRO-SEAT", Decimal(20))])
    _settle(services)
    _charges(log, ledger, third)
    invoice = _invoice(ledger, third)
    log.say(f"    {invoice.number}: {Money(invoice.gross, invoice.currency)} due {invoice.due_on}; "
            "the beat runs every day from now on (policy: suspend from 500.00 EUR overdue 14 days)")
    day = clock.now().date()
    while day < invoice.due_on + timedelta(days=15):
        clock.advance(timedelta(days=1))
        day = clock.now().date()
        counts = ledger.run(collections_tick, money.collections)
        if any(counts.values()):
            late = (day - invoice.due_on).days
            when = f"{late} days overdue" if late > 0 else f"due in {-late} days"
            log.say(f"  ✓ {day} ({when}): " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    _settle(services)
    for notice in ledger.read(lambda s: list(s.scalars(select(DunningNotice).where(
            DunningNotice.invoice_id == invoice.id).order_by(DunningNotice.id)))):
        log.say(f"    {notice.as_of}  {notice.rung}")
    _emails(log, ledger, None, since=mark)
    _licenses(log, ledger, customer_id)

    log.say(f"    … {clock.now():%Y-%m-%d}: the transfer arrives; finance records it with the button")
    mark = _last_outbox(ledger)
    log.step(f"payment of {Money(invoice.gross, invoice.currency)} on {invoice.number} recorded",
             lambda: ledger.run(record_payment, invoice_number=invoice.number, amount=invoice.gross,
                                method="bank_transfer", reference="PKO-2026-0815", actor="U0FINANCE"))
    _settle(services)
    _licenses(log, ledger, customer_id)
    _emails(log, ledger, "receipt", since=mark)


def _signed_deal(log: Any, services: Any, customer_id: int, key: str, lines: list[LineRequest]) -> int:
    ledger = services.ledger
    deal = ledger.run(draft_quote, key=key, customer_id=customer_id, owner="U0REP", currency="EUR", lines=lines)
    ledger.run(send_quote, deal, provider="email", actor="U0REP")
    log.step(f"deal D-{deal} signed: invoiced, licensed, billing — and charged at once (issue_invoice's "
             "payment.collect)", lambda: ledger.run(record_signature, deal, version=1, signer="anna.kowalska",
                                                    evidence={"method": "demo"}))
    return deal


def _tick(log: Any, services: Any, title: str) -> None:
    from closeloop.money import money_tick
    counts = log.step(title, lambda: money_tick(services.money))
    _settle(services)
    log.say("    " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))


def _settle(services: Any) -> None:
    """Let the relay deliver what is due now (the background relay may be at it too)."""
    for _ in range(50):
        if not services.relay.drain():
            pending = services.ledger.read(lambda s: s.scalar(select(OutboxMessage.id).where(
                OutboxMessage.status.in_(["pending", "leased"]), OutboxMessage.available_at <= services.ledger.clock.now())))
            if pending is None:
                return
        time.sleep(0.02)


def _invoice(ledger: Any, deal_id: int) -> Invoice:
    return ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.deal_id == deal_id)))


def _charges(log: Any, ledger: Any, deal_id: int) -> None:
    def read(session: Any) -> list[str]:
        invoice = session.scalar(select(Invoice).where(Invoice.deal_id == deal_id))
        plan = session.scalar(select(ChargePlan).where(ChargePlan.invoice_id == invoice.id))
        rows = [f"    {invoice.number} attempt {c.attempt} ({c.idempotency_key}): {c.status.value}"
                + (f" [{c.failure_code}]" if c.failure_code else "") + f" — {Money(c.amount, c.currency)}"
                for c in session.scalars(select(Charge).where(Charge.invoice_id == invoice.id).order_by(Charge.attempt))]
        state = "paid" if invoice.status is InvoiceStatus.PAID else f"open, {Money(invoice.balance, invoice.currency)}"
        nxt = f", next attempt {plan.next_attempt_at:%Y-%m-%d}" if plan and plan.next_attempt_at else ""
        return rows + [f"    → invoice {state}; plan {plan.status.value if plan else 'none'}{nxt}"]
    for line in ledger.read(read):
        log.say(line)


def _last_outbox(ledger: Any) -> int:
    return ledger.read(lambda s: s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1))) or 0


def _emails(log: Any, ledger: Any, template: str | None, *, since: int) -> None:
    rows = ledger.read(lambda s: list(s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "email.send", OutboxMessage.id > since).order_by(OutboxMessage.id))))
    for row in rows:
        if template and row.payload["template"] != template:
            continue
        files = ", ".join(a["filename"] for a in row.payload.get("attachments") or [])
        log.say(f"  ✓ email {row.payload['template']} to {', '.join(row.payload['to'])} "
                f"({row.payload['locale']}): \"{row.payload['subject']}\"" + (f" + {files}" if files else ""))


def _licenses(log: Any, ledger: Any, customer_id: int) -> None:
    rows = ledger.read(lambda s: list(s.scalars(select(License).where(License.customer_id == customer_id)
                                                .order_by(License.id))))
    deals = ledger.read(lambda s: {d.id: d.reference for d in s.scalars(select(Deal))})
    log.say("    licenses: " + ", ".join(f"{deals.get(l.deal_id)} {l.product}×{l.seats} {l.status.value}"
                                         for l in rows))
