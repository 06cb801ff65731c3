"""Charging invoices through a gateway: one plan per invoice, one `charges` row per
attempt (unique (invoice, attempt): the final guard against charging twice), the
soft-decline retry schedule, and the reconciler for outcomes that stayed unknown.

The life of a card-paid invoice, in `charge_plans.status`:
  scheduled --(tick: attempt n, a charges row + a payment.collect outbox row)--> in_flight
  in_flight --succeeded--> succeeded            (payment recorded, receipt emailed)
  in_flight --soft decline--> scheduled (next retry day) … or exhausted (no retries left)
  in_flight --hard decline--> hard_declined     (needs the customer: a new card)
  in_flight --answer lost--> in_flight, the charge `unknown`, a charge_checks row;
            the reconciler asks the gateway after 5 min, 1 h, then daily, never re-charges
  any --invoice paid otherwise or voided--> closed
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from flows.base import Base, Id, enum_column
from flows.billing import Charge, ChargeStatus, Payment
from flows.deals import Deal
from flows.errors import InvalidInput
from flows.gateway import ChargeRequest, ChargeResult, Outcome, PaymentGateway, PaymentMethodOnFile, charge_key
from flows.invoices import Invoice, InvoiceStatus
from flows.ledger import Ledger, Tx
from flows.money import Money
from flows.outbox import Delivery
from flows.steps import Done, announce

log = logging.getLogger("closeloop.charges")


class PlanStatus(enum.Enum):
    SCHEDULED = "scheduled"          # the next attempt is due at next_attempt_at
    IN_FLIGHT = "in_flight"          # an attempt is with the gateway (pending or unknown)
    SUCCEEDED = "succeeded"
    EXHAUSTED = "exhausted"          # soft declines used every retry: a person must act (gap)
    HARD_DECLINED = "hard_declined"  # not retried: the customer must give another card (gap)
    CLOSED = "closed"                # the invoice was paid another way or voided


class GatewayAccount(Base):
    """The customer at the gateway and the payment method on file."""

    __tablename__ = "gateway_customers"
    __table_args__ = (UniqueConstraint("customer_id", "gateway"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    customer_ref: Mapped[str] = mapped_column(String(120))         # cus_…
    method_ref: Mapped[str | None] = mapped_column(String(120))    # pm_…; None: nothing to charge
    method_label: Mapped[str] = mapped_column(String(64), default="")  # "visa •••• 4242"
    updated_at: Mapped[datetime]


class ChargePlan(Base):
    __tablename__ = "charge_plans"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    status: Mapped[PlanStatus] = mapped_column(enum_column(PlanStatus), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)       # attempts made so far
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    first_declined_at: Mapped[datetime | None]                       # the retry days count from here
    last_code: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class ChargeCheck(Base):
    """A charge whose outcome is unknown, and when the reconciler asks the gateway next."""

    __tablename__ = "charge_checks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"), unique=True)
    opened_at: Mapped[datetime]
    checks: Mapped[int] = mapped_column(Integer, default=0)          # lookups made
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)  # None once resolved
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(32))       # the outcome the lookup found
    last_error: Mapped[str | None] = mapped_column(String(500))
    amount_seen: Mapped[int | None] = mapped_column(BigInteger)


@dataclass(frozen=True)
class ChargePolicy:
    gateway: str = "manual"
    retry_days: tuple[int, ...] = (1, 3, 5, 7)  # soft declines: retried this many days after the first
    # Unknown outcomes: looked up this long after the attempt, then every day.
    check_after: tuple[timedelta, ...] = (timedelta(minutes=5), timedelta(hours=1))
    # A lookup that finds nothing this long after the attempt means the gateway never got it.
    not_found_after: timedelta = timedelta(hours=1)


def check_due(opened: datetime, checks_done: int, policy: ChargePolicy) -> datetime:
    """When the next lookup of an unknown charge is due: +5 min, +1 h, then daily."""
    if checks_done < len(policy.check_after):
        return opened + policy.check_after[checks_done]
    return opened + policy.check_after[-1] + timedelta(days=checks_done - len(policy.check_after) + 1)


# --- the payment method on file ------------------------------------------------------------

def save_payment_method(tx: Tx, customer_id: int, *, gateway: str, method: PaymentMethodOnFile) -> Done:
    account = tx.session.scalar(select(GatewayAccount).where(GatewayAccount.customer_id == customer_id,
                                                             GatewayAccount.gateway == gateway))
    label = f"{method.brand} •••• {method.last4}".strip() if method.last4 else method.method_ref
    if account is not None and account.method_ref == method.method_ref:
        return Done.ALREADY
    if account is None:
        account = GatewayAccount(customer_id=customer_id, gateway=gateway, customer_ref=method.customer_ref)
        tx.session.add(account)
    account.customer_ref, account.method_ref, account.method_label = method.customer_ref, method.method_ref, label
    account.updated_at = tx.now
    # A new card gives a hard-declined or exhausted invoice a fresh chance.
    for plan in tx.session.scalars(select(ChargePlan).where(
            ChargePlan.customer_id == customer_id,
            ChargePlan.status.in_([PlanStatus.HARD_DECLINED, PlanStatus.EXHAUSTED]))):
        plan.status, plan.next_attempt_at, plan.first_declined_at, plan.updated_at = (
            PlanStatus.SCHEDULED, tx.now, None, tx.now)
    tx.record("payment_method.saved", deal_id=None, customer_id=customer_id, gateway=gateway, method=label)
    return Done.ACTED


def register_card(ledger: Ledger, gateway: PaymentGateway, customer_id: int, method_token: str) -> str:
    """Create the customer at the gateway, attach the card, remember it; returns the label."""
    from flows.gateway import GatewayCustomer
    from flows.parties import ContactRole, Customer

    def facts(session):  # type: ignore[no-untyped-def]
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise InvalidInput(f"customer {customer_id} does not exist")
        account = session.scalar(select(GatewayAccount).where(GatewayAccount.customer_id == customer_id,
                                                              GatewayAccount.gateway == gateway.name))
        contact = customer.contact(ContactRole.BILLING) or customer.contact(ContactRole.SIGNER)
        return GatewayCustomer(customer.id, customer.name, contact.email if contact else None,
                               account.customer_ref if account else None)

    customer_ref = gateway.ensure_customer(ledger.read(facts))
    method = gateway.attach_method(customer_ref, method_token)
    ledger.run(save_payment_method, customer_id, gateway=gateway.name, method=method)
    return f"{method.brand} •••• {method.last4}"


# --- the tick: open plans, start due attempts ----------------------------------------------

def charges_tick(tx: Tx, policy: ChargePolicy) -> dict[str, int]:
    """Give every open invoice of a customer with a card on file a plan, and start each
    attempt that is due. Run by the beat (and `closeloop collect run`); a re-run finds
    nothing new to do."""
    counts = {"planned": 0, "attempted": 0, "closed": 0}
    if policy.gateway == "manual":
        return counts
    with_card = select(GatewayAccount.customer_id).where(GatewayAccount.gateway == policy.gateway,
                                                         GatewayAccount.method_ref.is_not(None))
    planned = select(ChargePlan.invoice_id)
    for invoice in tx.session.scalars(select(Invoice).where(
            Invoice.status == InvoiceStatus.ISSUED, Invoice.customer_id.in_(with_card),
            Invoice.id.not_in(planned)).order_by(Invoice.id)):
        if invoice.balance > 0 and _ensure_plan(tx, invoice, policy):
            counts["planned"] += 1
    due = tx.session.scalars(select(ChargePlan).where(
        ChargePlan.status == PlanStatus.SCHEDULED, ChargePlan.next_attempt_at <= tx.now,
        ChargePlan.gateway == policy.gateway).order_by(ChargePlan.id).with_for_update(skip_locked=True)).all()
    for plan in due:
        invoice = tx.get(Invoice, plan.invoice_id)
        counts["attempted" if _attempt(tx, plan, invoice, policy) else "closed"] += 1
    return counts


def _attempt(tx: Tx, plan: ChargePlan, invoice: Invoice, policy: ChargePolicy) -> bool:
    """Start attempt n of a plan: a charges row (the unique (invoice, attempt) refuses a
    twin) and the payment.collect row that asks the gateway. False: nothing left to charge."""
    if invoice.status is not InvoiceStatus.ISSUED or invoice.balance <= 0:
        plan.status, plan.next_attempt_at, plan.updated_at = PlanStatus.CLOSED, None, tx.now
        return False
    attempt = plan.attempts + 1
    key = charge_key(invoice.id, attempt)
    charge = Charge(invoice_id=invoice.id, attempt=attempt, idempotency_key=key, amount=invoice.balance,
                    currency=invoice.currency, status=ChargeStatus.PENDING, gateway=policy.gateway,
                    created_at=tx.now)
    tx.session.add(charge)
    tx.session.flush()
    plan.attempts, plan.status, plan.next_attempt_at, plan.updated_at = (attempt, PlanStatus.IN_FLIGHT, None, tx.now)
    tx.enqueue("payment.collect", {"charge_id": charge.id, "invoice": invoice.number, "attempt": attempt},
               key=f"payment.collect:{key}", deal_id=invoice.deal_id)
    tx.record("charge.attempted", deal_id=invoice.deal_id, customer_id=invoice.customer_id,
              invoice=invoice.number, attempt=attempt, amount=charge.amount, currency=charge.currency)
    return True


def charge_issued_invoice(tx: Tx, invoice_number: str, policy: ChargePolicy) -> Done:
    """The `payment.collect` row issue_invoice writes: charge a new invoice at once when
    its customer has a card on file (else it waits for a transfer, or for the beat)."""
    invoice = tx.session.scalar(select(Invoice).where(Invoice.number == invoice_number).with_for_update())
    if invoice is None or policy.gateway == "manual":
        return Done.ALREADY
    if tx.session.scalar(select(ChargePlan.id).where(ChargePlan.invoice_id == invoice.id)) is not None:
        return Done.ALREADY
    account = tx.session.scalar(select(GatewayAccount).where(GatewayAccount.customer_id == invoice.customer_id,
                                                             GatewayAccount.gateway == policy.gateway))
    if account is None or account.method_ref is None or invoice.status is not InvoiceStatus.ISSUED \
            or invoice.balance <= 0:
        return Done.ALREADY
    if not _ensure_plan(tx, invoice, policy):
        return Done.ALREADY  # a concurrent tick planned it
    plan = tx.session.scalars(select(ChargePlan).where(ChargePlan.invoice_id == invoice.id).with_for_update()).one()
    _attempt(tx, plan, invoice, policy)
    return Done.ACTED


def _ensure_plan(tx: Tx, invoice: Invoice, policy: ChargePolicy) -> bool:
    """Insert the invoice's plan unless one exists (a concurrent tick or route may race
    here: ON CONFLICT DO NOTHING, so the loser neither fails nor plans twice)."""
    if tx.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    tx.session.flush()
    inserted = tx.session.execute(insert(ChargePlan).values(
        invoice_id=invoice.id, customer_id=invoice.customer_id, gateway=policy.gateway, status=PlanStatus.SCHEDULED,
        attempts=0, next_attempt_at=tx.now, updated_at=tx.now).on_conflict_do_nothing().returning(ChargePlan.id)).first()
    return inserted is not None


# --- one attempt: ask, record --------------------------------------------------------------

def charge_request(tx: Tx, charge_id: int) -> tuple[ChargeRequest, ChargeStatus]:
    charge = tx.get(Charge, charge_id, lock=False)
    invoice = tx.get(Invoice, charge.invoice_id, lock=False)
    account = tx.session.scalar(select(GatewayAccount).where(GatewayAccount.customer_id == invoice.customer_id,
                                                             GatewayAccount.gateway == charge.gateway))
    if account is None or account.method_ref is None:
        raise InvalidInput(f"{invoice.number}: the customer has no payment method on file at {charge.gateway}")
    request = ChargeRequest(charge.id, invoice.id, invoice.number or "", charge.attempt, charge.amount,
                            charge.currency, account.customer_ref, account.method_ref)
    return request, charge.status


def record_charge_result(tx: Tx, charge_id: int, result: ChargeResult, policy: ChargePolicy, *,
                         via: str) -> Done:
    """What the gateway said about one attempt (its answer, a webhook, or a lookup).
    A settled charge stays settled: late or repeated news changes nothing."""
    charge = tx.get(Charge, charge_id)
    if charge.status in (ChargeStatus.SUCCEEDED, ChargeStatus.FAILED):
        return Done.ALREADY
    invoice = tx.get(Invoice, charge.invoice_id)
    plan = tx.session.scalar(select(ChargePlan).where(ChargePlan.invoice_id == invoice.id).with_for_update())
    check = tx.session.scalar(select(ChargeCheck).where(ChargeCheck.charge_id == charge.id).with_for_update())
    outcome = result.outcome
    if outcome is Outcome.UNKNOWN:
        if charge.status is ChargeStatus.UNKNOWN:
            return Done.ALREADY
        charge.status = ChargeStatus.UNKNOWN
        charge.gateway_ref = result.gateway_ref or charge.gateway_ref
        tx.session.add(ChargeCheck(charge_id=charge.id, opened_at=tx.now, checks=0,
                                   next_check_at=check_due(tx.now, 0, policy), last_error=result.message[:500]))
        tx.record("charge.unknown", deal_id=invoice.deal_id, customer_id=invoice.customer_id, invoice=invoice.number,
                  attempt=charge.attempt, reason=result.message[:300], via=via)
        return Done.ACTED
    if outcome is Outcome.NOT_FOUND:
        raise InvalidInput("a lookup that found nothing is resolved by resolve_unknown, not recorded")
    if check is not None:
        check.resolved_at, check.next_check_at, check.resolution = tx.now, None, outcome.value
    charge.gateway_ref = result.gateway_ref or charge.gateway_ref
    charge.settled_at = tx.now
    if outcome is Outcome.SUCCEEDED:
        charge.status = ChargeStatus.SUCCEEDED
        _settle_paid_charge(tx, charge, invoice, plan, via=via)
        return Done.ACTED
    charge.status, charge.failure_code = ChargeStatus.FAILED, (result.code or outcome.value)[:64]
    _declined(tx, charge, invoice, plan, outcome, result, policy)
    return Done.ACTED


def _settle_paid_charge(tx: Tx, charge: Charge, invoice: Invoice, plan: ChargePlan | None, *, via: str) -> None:
    from flows.collections import payment_settled  # collections reads charges' tables too

    tx.session.add(Payment(invoice_id=invoice.id, charge_id=charge.id, amount=charge.amount, currency=charge.currency,
                           method="card", reference=charge.gateway_ref or charge.idempotency_key,
                           received_at=tx.now, recorded_by=f"{charge.gateway} ({via})"))
    invoice.amount_paid += charge.amount
    if invoice.balance <= 0 and invoice.status is InvoiceStatus.ISSUED:
        invoice.status = InvoiceStatus.PAID
    if plan is not None:
        plan.status, plan.next_attempt_at, plan.updated_at = PlanStatus.SUCCEEDED, None, tx.now
    _tell(tx, invoice, "charge.succeeded",
          f":white_check_mark: {Money(charge.amount, charge.currency)} charged on {invoice.number} "
          f"(attempt {charge.attempt})" + ("" if invoice.balance >= 0 else
                                          f" — overpaid by {Money(-invoice.balance, invoice.currency)}, refund due"),
          invoice=invoice.number, attempt=charge.attempt, amount=charge.amount, gateway_ref=charge.gateway_ref, via=via)
    payment_settled(tx, [(invoice, charge.amount)], currency=charge.currency,
                    reference=charge.gateway_ref or charge.idempotency_key, method="card")


def _declined(tx: Tx, charge: Charge, invoice: Invoice, plan: ChargePlan | None, outcome: Outcome,
              result: ChargeResult, policy: ChargePolicy) -> None:
    code = charge.failure_code
    if plan is None:
        return
    plan.last_code, plan.updated_at = code, tx.now
    if outcome is Outcome.HARD_DECLINE:
        plan.status, plan.next_attempt_at = PlanStatus.HARD_DECLINED, None
        _tell(tx, invoice, "charge.hard_declined",
              f":no_entry: Card charge on {invoice.number} declined ({code}): not retried — the customer must "
              "give another payment method", invoice=invoice.number, attempt=charge.attempt, code=code)
        return
    plan.first_declined_at = plan.first_declined_at or tx.now
    retries_made = plan.attempts - 1 if plan.attempts >= 1 else 0
    if retries_made < len(policy.retry_days):
        plan.status = PlanStatus.SCHEDULED
        plan.next_attempt_at = plan.first_declined_at + timedelta(days=policy.retry_days[retries_made])
        _tell(tx, invoice, "charge.soft_declined",
              f":warning: Card charge on {invoice.number} declined ({code}); retry {retries_made + 1} of "
              f"{len(policy.retry_days)} on {plan.next_attempt_at:%Y-%m-%d}",
              invoice=invoice.number, attempt=charge.attempt, code=code,
              next_attempt_at=plan.next_attempt_at.isoformat())
    else:
        plan.status, plan.next_attempt_at = PlanStatus.EXHAUSTED, None
        _tell(tx, invoice, "charge.retries_exhausted",
              f":x: Card charge on {invoice.number} declined {plan.attempts} times ({code}); no retries left — "
              "finance to follow up", invoice=invoice.number, attempts=plan.attempts, code=code)


# --- the unknown-outcome reconciler --------------------------------------------------------

def due_checks(tx: Tx) -> list[int]:
    return list(tx.session.scalars(select(ChargeCheck.charge_id).where(
        ChargeCheck.next_check_at.is_not(None), ChargeCheck.next_check_at <= tx.now).order_by(ChargeCheck.id)))


def resolve_unknown(tx: Tx, charge_id: int, result: ChargeResult, policy: ChargePolicy) -> Done:
    """The reconciler's lookup came back: found → record it; not found long enough after
    the attempt → the gateway never got it, so the plan may make a NEW attempt (a new
    key); a lookup that failed → ask again on the schedule."""
    check = tx.session.scalar(select(ChargeCheck).where(ChargeCheck.charge_id == charge_id).with_for_update())
    charge = tx.get(Charge, charge_id)
    if check is None or check.resolved_at is not None or charge.status is not ChargeStatus.UNKNOWN:
        return Done.ALREADY
    check.checks += 1
    if result.outcome in (Outcome.SUCCEEDED, Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE):
        return record_charge_result(tx, charge_id, result, policy, via="reconciler")
    if result.outcome is Outcome.NOT_FOUND and tx.now - charge.created_at >= policy.not_found_after:
        invoice = tx.get(Invoice, charge.invoice_id)
        charge.status, charge.failure_code, charge.settled_at = ChargeStatus.FAILED, "never_reached_gateway", tx.now
        check.resolved_at, check.next_check_at, check.resolution = tx.now, None, "not_found"
        plan = tx.session.scalar(select(ChargePlan).where(ChargePlan.invoice_id == invoice.id).with_for_update())
        if plan is not None and plan.status is PlanStatus.IN_FLIGHT:
            plan.status, plan.next_attempt_at, plan.updated_at = PlanStatus.SCHEDULED, tx.now, tx.now
        tx.record("charge.not_found", deal_id=invoice.deal_id, customer_id=invoice.customer_id,
                  invoice=invoice.number, attempt=charge.attempt)
        return Done.ACTED
    check.next_check_at = check_due(check.opened_at, check.checks, policy)
    check.last_error = (result.message or result.outcome.value)[:500]
    return Done.ACTED


def reconcile_unknown(ledger: Ledger, gateway: PaymentGateway, policy: ChargePolicy) -> dict[str, int]:
    """Look up every unknown charge whose check is due; never charges."""
    counts = {"checked": 0, "resolved": 0}
    for charge_id in ledger.run(due_checks):
        request, _ = ledger.run(charge_request, charge_id)
        try:
            result = gateway.lookup(request)
        except Exception as error:  # noqa: BLE001 — the gateway is down: ask again on the schedule
            result = ChargeResult(Outcome.UNKNOWN, message=f"lookup failed: {type(error).__name__}: {error}")
        ledger.run(resolve_unknown, charge_id, result, policy)
        counts["checked"] += 1
        if result.outcome is not Outcome.UNKNOWN:
            counts["resolved"] += ledger.read(lambda s, cid=charge_id: int(
                s.get(Charge, cid).status is not ChargeStatus.UNKNOWN))
    return counts


class CollectCharge:
    """The route of `payment.collect`: one attempt, asked of the gateway exactly once
    per delivery; a redelivery (the relay may have died after asking) looks first."""

    def __init__(self, ledger: Ledger, gateway: PaymentGateway, policy: ChargePolicy) -> None:
        self.ledger, self.gateway, self.policy = ledger, gateway, policy

    def __call__(self, delivery: Delivery) -> None:
        if "charge_id" not in delivery.payload:  # an invoice was just issued
            self.ledger.run(charge_issued_invoice, str(delivery.payload["invoice"]), self.policy)
            return
        charge_id = int(delivery.payload["charge_id"])
        request, status = self.ledger.run(charge_request, charge_id)
        if status is not ChargeStatus.PENDING:
            return  # settled, or unknown and owned by the reconciler
        if delivery.attempt > 1:
            found = self.gateway.lookup(request)
            if found.outcome is not Outcome.NOT_FOUND:
                self.ledger.run(record_charge_result, charge_id, found, self.policy, via="lookup")
                return
        result = self.gateway.charge(request)
        self.ledger.run(record_charge_result, charge_id, result, self.policy, via="charge")


def _tell(tx: Tx, about: Invoice, kind: str, text: str, /, **data: object) -> None:
    """On the deal's timeline and thread when the invoice has a deal; else the customer's."""
    if about.deal_id is not None:
        announce(tx, tx.get(Deal, about.deal_id, lock=False), kind, text, **data)
    else:
        tx.record(kind, deal_id=None, customer_id=about.customer_id, **data)


# --- webhooks --------------------------------------------------------------------------------

PAYMENT_EVENT_TYPES = ("payment_intent.", "checkout.session.")


def accept_payment_event(tx: Tx, *, event_id: str, event_type: str, object_type: str, object_id: str) -> bool:
    """A verified gateway event: claimed once by its id; the work is queued (the
    `payment.event` route reads the object's CURRENT state from the API, so duplicates,
    reordering and stale events change nothing). False for a duplicate delivery."""
    from flows.inbox import claim

    if not claim(tx.session, "payments", event_id, tx.now):
        return False
    if event_type.startswith(PAYMENT_EVENT_TYPES) and object_id:
        tx.enqueue("payment.event", {"event_id": event_id, "type": event_type, "object": object_type,
                                     "id": object_id}, key=f"payment.event:{event_id}", deal_id=None,
                   stream=f"payment:{object_id}")
    return True


def charge_for_operation(tx: Tx, operation_id: str) -> int | None:
    return tx.session.scalar(select(Charge.id).where(Charge.idempotency_key == operation_id))
