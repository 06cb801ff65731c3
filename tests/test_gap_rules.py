"""Every gap rule, from one table of cases: the world just below the rule's threshold
(no gap), at it, past it when the threshold itself does not fire (a tolerance), and
after the missing step happens (the gap resolves itself). Then the lifecycle: snooze
and its end, a gap that comes back, a bounded number of statements per evaluation,
and the same findings on SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select, update

from flows.billing import Charge, ChargeStatus, Subscription
from flows.billing_run import run_billing
from flows.catalog import Interval, Sku, SkuKind, SkuPrice
from flows.charges import ChargePlan, PlanStatus
from flows.collections import CollectionsPolicy
from flows.deals import Deal, EnvelopeStatus, SignatureEnvelope, Stage
from flows.errors import InvalidInput
from flows.finance import record_payment, reinstate_license, suspend_license
from flows.gap_actions import act_on_gap
from flows.gap_models import GapState, VendorUsage
from flows.gap_states import evaluate_gaps, list_gaps, snooze_gap
from flows.gaps import RULES, GapPolicy
from flows.external_invoices import ExternalInvoice, ExternalInvoiceRecord, ExternalInvoiceStatus, link_external_invoice
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus
from flows.licenses import License
from flows.mail import InboundMail, MailStatus, flag_contact, mark_failed, mark_sent, queue_email
from flows.outbox import OutboxMessage, OutboxStatus
from flows.parties import Contact
from flows.steps import (LineRequest, issue_invoice, issue_license, record_signature, start_billing, void_quote,
                         win_deal)
from flows.timeline import Event
from flows.usage import UsageLine, record_vendor_usage
from tests.factories import deal_at, quoted_deal, seed

# The suspension policy the collections run applies (CLOSELOOP_SUSPEND_OVER=EUR=2280.00, _AFTER_DAYS=30)
POLICY = GapPolicy(collections=CollectionsPolicy(suspend_over={"EUR": 228000}, suspend_after_days=30))
SECOND = timedelta(seconds=1)


class World:
    def __init__(self, services: Any, clock: Any) -> None:
        self.ledger, self.clock = services.ledger, clock
        self.customer = seed(self.ledger)
        self.t0 = clock.now()
        self.ref: dict[str, Any] = {}

    def write(self, fn: Callable[[Any], Any]) -> Any:
        return self.ledger.run(lambda tx: fn(tx.session))

    def read(self, fn: Callable[[Any], Any]) -> Any:
        return self.ledger.read(fn)

    def at(self, instant: datetime) -> None:
        self.clock.set(instant)

    def day(self, day: date) -> datetime:
        return datetime.combine(day, time(), timezone.utc)

    def invoice(self, deal_id: int) -> Invoice:
        return self.read(lambda s: s.scalar(select(Invoice).where(Invoice.deal_id == deal_id)))

    def license(self, deal_id: int) -> License:
        return self.read(lambda s: s.scalar(select(License).where(License.deal_id == deal_id)))

    def pay(self, deal_id: int) -> None:
        invoice = self.invoice(deal_id)
        self.ledger.run(record_payment, invoice_number=invoice.number, amount=invoice.balance, method="bank_transfer",
                        reference=f"BANK-{invoice.id}", actor="U0FIN")

    def evaluate(self):
        return self.ledger.run(evaluate_gaps, POLICY)

    def state(self, rule: str, entity_id: int) -> GapState | None:
        return self.read(lambda s: s.scalar(select(GapState).where(GapState.rule == rule, GapState.entity_id == entity_id)
                                            .order_by(GapState.id.desc()).limit(1)))


@dataclass
class Case:
    rule: str
    arrange: Callable[[World], int]         # -> the entity the gap is about; the world below the threshold
    at_threshold: Callable[[World], None]
    resolve: Callable[[World, int], None]
    fires_at_threshold: bool = True
    past: Callable[[World], None] | None = None
    amount: int | None = None               # at stake, when the case knows it


H, D = timedelta(hours=1), timedelta(days=1)


def _later(delta: timedelta) -> tuple[Callable[[World], None], Callable[[World], None]]:
    """Below: one second short of t0 + delta; at: t0 + delta."""
    return (lambda w: w.at(w.t0 + delta - SECOND)), (lambda w: w.at(w.t0 + delta))


def at_stage(stage: Stage, below: Callable[[World], None] | None = None) -> Callable[[World], int]:
    def arrange(w: World) -> int:
        deal_id = deal_at(w.ledger, w.customer, stage)
        w.t0 = w.clock.now()
        if below:
            below(w)
        return deal_id
    return arrange


def timed(stage: Stage, delta: timedelta, resolve: Callable[[World, int], None], rule: str, **kw: Any) -> Case:
    below, at = _later(delta)
    return Case(rule, at_stage(stage, below), at, resolve, **kw)


# --- arrangements that need rows other issues will write --------------------------------------

def _license_id(w: World, deal_id: int) -> int:
    return w.license(deal_id).id


def overdue_license(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.BILLING_ACTIVE)
    due = w.invoice(deal_id).due_on
    w.ref["fires"] = w.day(due + timedelta(days=30))
    w.at(w.ref["fires"] - SECOND)
    return _license_id(w, deal_id)


def suspended_paid(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.BILLING_ACTIVE)
    w.pay(deal_id)
    license_id = _license_id(w, deal_id)
    w.ledger.run(suspend_license, license_id, reason="test", actor="U0FIN")
    w.t0 = w.clock.now()
    w.at(w.t0 + timedelta(hours=1) - SECOND)
    return license_id


def charges(w: World, attempts: range, status: ChargeStatus) -> None:
    invoice = w.ref["invoice"]
    w.write(lambda s: s.add_all([Charge(invoice_id=invoice.id, attempt=n, idempotency_key=f"charge:{invoice.id}:{n}",
                                        amount=invoice.gross, currency=invoice.currency, status=status, gateway="test",
                                        created_at=w.clock.now()) for n in attempts]))


def plan(status: PlanStatus) -> Callable[..., None]:
    """The charge plan of w.ref["invoice"] (flows/charges.py), in `status` as of now."""
    def set_status(w: World, *_: Any) -> None:
        invoice = w.ref["invoice"]

        def write(session: Any) -> None:
            row = session.scalar(select(ChargePlan).where(ChargePlan.invoice_id == invoice.id))
            if row is None:
                row = ChargePlan(invoice_id=invoice.id, customer_id=invoice.customer_id, gateway="stripe",
                                 attempts=0, status=status, updated_at=w.clock.now())
                session.add(row)
            row.status, row.updated_at, row.last_code = status, w.clock.now(), "insufficient_funds"
        w.write(write)
    return set_status


def card_plan_in_flight(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.INVOICED)
    w.ref.update(invoice=w.invoice(deal_id), deal=deal_id)
    charges(w, range(1, 4), ChargeStatus.FAILED)
    plan(PlanStatus.IN_FLIGHT)(w)
    return w.ref["invoice"].id


def unknown_charge(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.INVOICED)
    w.ref["invoice"] = w.invoice(deal_id)
    charges(w, range(1, 2), ChargeStatus.UNKNOWN)
    w.t0 = w.clock.now()
    w.at(w.t0 + timedelta(minutes=60) - SECOND)
    return w.read(lambda s: s.scalar(select(Charge.id)))


def unperiodic(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.BILLING_ACTIVE)
    sub = w.read(lambda s: s.scalar(select(Subscription).where(Subscription.deal_id == deal_id)))
    w.ref.update(fires=w.day(sub.next_start + timedelta(days=1)), sub=sub, deal=deal_id)
    w.at(w.ref["fires"] - SECOND)
    return sub.id


def bill_the_period(w: World, sub_id: int) -> None:
    assert run_billing(w.ledger).invoices == 1


def overdue_invoice(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.INVOICED)
    invoice = w.invoice(deal_id)
    w.ref.update(fires=w.day(invoice.due_on + timedelta(days=1)), deal=deal_id)
    w.at(w.ref["fires"] - SECOND)
    return invoice.id


def expiring_quote(w: World) -> int:
    deal_id = quoted_deal(w.ledger, w.customer)
    valid = w.read(lambda s: s.get(Deal, deal_id).quote.current.valid_until)
    w.ref["fires"] = w.day(valid - timedelta(days=3))
    w.at(w.ref["fires"] - SECOND)
    return deal_id


def usage_sku(w: World) -> None:
    def add(session: Any) -> None:
        sku = Sku(code="STORAGE", name="Storage", kind=SkuKind.USAGE, unit="GB", interval=Interval.MONTH, licensable=False, features=[],
                  tax_category="standard", tax_rate_bp=2000, active=True)
        sku.prices = [SkuPrice(currency="EUR", unit_amount=12)]
        session.add(sku)
    w.write(add)


def vendor_bill(w: World, quantity: str) -> None:
    w.ledger.run(record_vendor_usage, vendor="Blob Storage Inc", sku_code="STORAGE", source="test", actor="test",
                 lines=[UsageLine(date(2026, 3, 1), date(2026, 4, 1), Decimal(quantity), 12_000, "EUR")])


def usage_billed_in_full(w: World) -> int:
    usage_sku(w)
    deal_at(w.ledger, w.customer, Stage.INVOICED, lines=[LineRequest("STORAGE", Decimal(1000))])
    vendor_bill(w, "1000")
    return w.read(lambda s: s.scalar(select(VendorUsage.id)))


def charge_the_rest(w: World, _: int) -> None:
    sku_id = w.read(lambda s: s.scalar(select(Sku.id).where(Sku.code == "STORAGE")))

    def add(session: Any) -> None:
        invoice = Invoice(customer_id=w.customer, purpose_key="usage:extra", status=InvoiceStatus.ISSUED,
                          currency="EUR", net=252, tax=50, amount_paid=0, payment_terms_days=30,
                          created_at=w.clock.now(), number="INV-X-1", issued_at=w.clock.now(), due_on=date(2026, 5, 1))
        invoice.lines.append(InvoiceLine(position=1, sku_id=sku_id, description="extra", quantity=Decimal(21),
                                         unit_amount=12, tax_rate_bp=2000, net=252, period_start=date(2026, 3, 15),
                                         period_end=date(2026, 4, 15)))
        session.add(invoice)
    w.write(add)


def dead_message(w: World) -> int:
    w.ledger.run(lambda tx: tx.enqueue("email.send", {"to": "x"}, key="test:dead", deal_id=None))
    return w.read(lambda s: s.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == "test:dead")))


def due_message(w: World) -> int:
    """A message due now and not delivered (nothing drains the outbox in these tests)."""
    w.t0 = w.clock.now()
    return dead_message(w)


def set_outbox(status: OutboxStatus) -> Callable[..., None]:
    return lambda w, *_: w.write(lambda s: s.execute(update(OutboxMessage).where(
        OutboxMessage.idempotency_key == "test:dead").values(status=status)))


def queued_mail(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.SENT)
    w.ref["deal"] = deal_id
    w.ref["message"] = w.ledger.run(queue_email, key="test:welcome", deal_id=deal_id, to=["ada@acme.example"],
                                    template="message", locale="en", subject="Welcome", context={})
    return w.read(lambda s: _outbound_id(s, "test:welcome"))


def _outbound_id(session: Any, key: str) -> int:
    from flows.mail import OutboundMail
    return session.scalar(select(OutboundMail.id).where(OutboundMail.key == key))


def refuse_mail(w: World) -> None:
    w.ledger.run(mark_failed, w.ref["message"], error="550 5.1.1 no such user", refused={"ada@acme.example": "550"})


def send_again(w: World, _: int) -> None:
    again = w.ledger.run(queue_email, key="test:welcome-2", deal_id=w.ref["deal"], to=["ada.l@acme.example"],
                         template="message", locale="en", subject="Welcome", context={})
    w.ledger.run(mark_sent, again, relay="primary")


def triaged_mail(w: World) -> int:
    def add(session: Any) -> int:
        mail = InboundMail(mailbox="INBOX", role="finance", uidvalidity=1, uid=7, message_id="<m1@acme.example>",
                           content_hash="0" * 64, raw=b"", from_address="someone@elsewhere.example",
                           subject="Invoice question", kind="reply", text="which invoice?",
                           status=MailStatus.TRIAGE, reason="no deal matched", received_at=w.clock.now())
        session.add(mail)
        session.flush()
        return mail.id
    mail_id = w.write(add)
    w.t0 = w.clock.now()
    w.at(w.t0 + timedelta(hours=1) - SECOND)
    return mail_id


def route_mail(w: World, mail_id: int) -> None:
    w.write(lambda s: s.execute(update(InboundMail).where(InboundMail.id == mail_id).values(status=MailStatus.ROUTED)))


def unmatched_invoice_pdf(w: World) -> int:
    link = w.ledger.run(link_external_invoice, ExternalInvoice(source="<x1@acct.example>/INV-77.pdf", number="AC-77",
                                                               customer_name="Nobody We Know", gross=12300,
                                                               currency="EUR"))
    assert link.deal_id is None
    w.t0 = w.clock.now()
    w.at(w.t0 + timedelta(hours=1) - SECOND)
    return link.record_id


def match_invoice_pdf(w: World, record_id: int) -> None:
    w.write(lambda s: s.execute(update(ExternalInvoiceRecord).where(ExternalInvoiceRecord.id == record_id)
                                .values(status=ExternalInvoiceStatus.MATCHED)))


def ended_envelope(w: World) -> int:
    deal_id = deal_at(w.ledger, w.customer, Stage.SENT)
    w.ref["deal"] = deal_id
    envelope_id = w.read(lambda s: s.scalar(select(SignatureEnvelope.id).where(SignatureEnvelope.deal_id == deal_id)))
    w.write(lambda s: s.execute(update(SignatureEnvelope).where(SignatureEnvelope.id == envelope_id)
                                .values(status=EnvelopeStatus.EXPIRED, status_changed_at=w.clock.now())))
    w.t0 = w.clock.now()
    w.at(w.t0 + H - SECOND)
    return envelope_id


def billing_contact(w: World) -> int:
    return w.read(lambda s: s.scalar(select(Contact.id).where(Contact.email == "billing@acme.example")))


def bounces(w: World, *_: Any) -> None:
    w.ledger.run(flag_contact, "billing@acme.example", "bouncing", "5.1.1 user unknown", None)


def bounce(when: Callable[[World], datetime | None]) -> Callable[..., None]:
    return lambda w, *_: w.write(lambda s: s.execute(update(Contact).where(Contact.email == "billing@acme.example")
                                                     .values(bounced_at=when(w))))


def quiet_customer(w: World) -> int:
    deal_at(w.ledger, w.customer, Stage.BILLING_ACTIVE)
    w.t0 = w.clock.now()
    w.at(w.t0 + timedelta(days=90) - SECOND)
    return w.customer


def remind(w: World, entity_id: int) -> None:
    gap_id = w.state("customer-not-contacted", entity_id).id
    w.ledger.run(act_on_gap, gap_id, action="remind", actor="U_REP", request_key="click-1")


def on_day(w: World) -> None:
    w.at(w.ref["fires"])


CASES = [
    timed(Stage.SENT, 7 * D, lambda w, d: w.ledger.run_alone(record_signature, d, version=1, signer="ada@acme.example",
                                                             evidence={}), "quote-unsigned", amount=228000),
    Case("quote-expiring", expiring_quote, on_day,
         lambda w, d: w.ledger.run_alone(void_quote, d, reason="customer went quiet", actor="U_REP")),
    Case("signature-failed", ended_envelope, lambda w: w.at(w.t0 + H),
         lambda w, _: w.ledger.run_alone(void_quote, w.ref["deal"], reason="customer went quiet", actor="U_REP"),
         amount=228000),
    timed(Stage.SIGNED, H, lambda w, d: w.ledger.run_alone(win_deal, d), "signed-not-won"),
    timed(Stage.WON, H, lambda w, d: w.ledger.run_alone(issue_invoice, d), "won-not-invoiced"),
    timed(Stage.INVOICED, H, lambda w, d: w.ledger.run_alone(issue_license, d), "invoice-no-license"),
    Case("license-no-subscription",
         lambda w: (lambda d: (setattr(w, "t0", w.clock.now()), w.at(w.t0 + H - SECOND), w.ref.update(deal=d),
                               _license_id(w, d))[-1])(deal_at(w.ledger, w.customer, Stage.LICENSED)),
         lambda w: w.at(w.t0 + H), lambda w, _: w.ledger.run_alone(start_billing, w.ref["deal"])),
    Case("period-not-invoiced", unperiodic, on_day, bill_the_period, amount=40000),
    Case("invoice-overdue", overdue_invoice, on_day, lambda w, _: w.pay(w.ref["deal"]), amount=228000),
    Case("charge-retries-exhausted", card_plan_in_flight, plan(PlanStatus.EXHAUSTED), lambda w, _: w.pay(w.ref["deal"]),
         amount=228000),
    Case("charge-outcome-unknown", unknown_charge, lambda w: w.at(w.t0 + timedelta(minutes=60)),
         lambda w, c: w.write(lambda s: s.execute(update(Charge).where(Charge.id == c)
                                                  .values(status=ChargeStatus.SUCCEEDED))), amount=228000),
    Case("overdue-license-active", overdue_license, on_day,
         lambda w, lic: w.ledger.run(act_on_gap, w.state("overdue-license-active", lic).id, action="suspend",
                                     actor="U0FIN", request_key="k"), amount=228000),
    Case("suspended-but-paid", suspended_paid, lambda w: w.at(w.t0 + H),
         lambda w, lic: w.ledger.run(reinstate_license, lic, reason="paid", actor="U0FIN")),
    Case("usage-unbilled", usage_billed_in_full, lambda w: vendor_bill(w, "1020"), charge_the_rest,
         fires_at_threshold=False, past=lambda w: vendor_bill(w, "1021"), amount=247),
    Case("outbox-dead", dead_message, set_outbox(OutboxStatus.DEAD), set_outbox(OutboxStatus.DONE)),
    Case("outbox-lagging", due_message, _later(timedelta(minutes=15))[1], set_outbox(OutboxStatus.DONE)),
    Case("mail-failed", queued_mail, refuse_mail, send_again),
    Case("inbound-unmatched", triaged_mail, lambda w: w.at(w.t0 + H), route_mail),
    Case("invoice-pdf-unmatched", unmatched_invoice_pdf, lambda w: w.at(w.t0 + H), match_invoice_pdf, amount=12300),
    Case("contact-bouncing", billing_contact, bounces, bounce(lambda w: None)),
    Case("customer-not-contacted", quiet_customer, lambda w: w.at(w.t0 + 90 * D), remind),
]


def test_every_rule_has_a_case():
    assert [c.rule for c in CASES] == [r.name for r in RULES]


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_rule_fires_at_its_threshold_and_resolves_when_the_step_happens(services, clock, case: Case):
    w = World(services, clock)
    entity = case.arrange(w)
    w.evaluate()
    assert w.state(case.rule, entity) is None, "fired below the threshold"
    case.at_threshold(w)
    w.evaluate()
    if not case.fires_at_threshold:
        assert w.state(case.rule, entity) is None, "fired at the tolerance itself"
        case.past(w)
        w.evaluate()
    state = w.state(case.rule, entity)
    assert state is not None and state.resolved_at is None, f"{case.rule} did not fire"
    if case.amount is not None:
        assert (state.amount, state.currency) == (case.amount, "EUR")
    shown = w.read(lambda s: list_gaps(s, w.clock.now(), rule=case.rule))
    assert [g.entity_id for g in shown.items] == [entity]
    case.resolve(w, entity)
    w.evaluate()
    after = w.state(case.rule, entity)
    assert after.id == state.id and after.resolved_at == w.clock.now(), f"{case.rule} did not resolve"


def test_snoozed_gap_is_hidden_audited_and_comes_back_when_the_snooze_ends(services, clock):
    RULE = "won-not-invoiced"  # nothing drains the outbox here: outbox-lagging fires beside it
    w = World(services, clock)
    deal_id = deal_at(w.ledger, w.customer, Stage.WON)
    clock.advance(2 * H)
    w.evaluate()
    gap = w.state(RULE, deal_id)
    with pytest.raises(InvalidInput):
        w.ledger.run(snooze_gap, gap.id, until=clock.now().date(), reason="later", actor="U0FIN")
    with pytest.raises(InvalidInput):
        w.ledger.run(snooze_gap, gap.id, until=clock.now().date() + D, reason="  ", actor="U0FIN")
    until = clock.now().date() + 3 * D
    w.ledger.run(snooze_gap, gap.id, until=until, reason="waiting for the PO number", actor="U0FIN")
    assert w.ledger.run(snooze_gap, gap.id, until=until, reason="waiting for the PO number",
                        actor="U0FIN").value == "already done"
    w.evaluate()
    assert w.read(lambda s: list_gaps(s, clock.now(), rule=RULE).total) == 0
    assert w.read(lambda s: list_gaps(s, clock.now(), rule=RULE, snoozed=True).items[0].snooze_reason) == "waiting for the PO number"
    w.at(w.day(until) - SECOND)
    w.evaluate()
    assert w.read(lambda s: list_gaps(s, clock.now(), rule=RULE).total) == 0
    w.at(w.day(until))
    w.evaluate()
    back = w.read(lambda s: list_gaps(s, clock.now(), rule=RULE).items)
    assert [g.id for g in back] == [gap.id] and back[0].snoozed_until is None
    kinds = w.read(lambda s: [(e.kind, e.actor) for e in s.scalars(select(Event).where(Event.kind.like("gap.%"))
                                                                  .order_by(Event.id))])
    assert kinds == [("gap.snoozed", "U0FIN"), ("gap.snooze_ended", "closeloop")]


def test_a_resolved_gap_that_comes_back_opens_a_new_row_and_keeps_the_old(services, clock):
    w = World(services, clock)
    contact = billing_contact(w)
    bounce(lambda w: w.clock.now())(w)
    w.evaluate()
    bounce(lambda w: None)(w)
    w.evaluate()
    bounce(lambda w: w.clock.now())(w)
    w.evaluate()
    rows = w.read(lambda s: [(g.resolved_at is None) for g in s.scalars(
        select(GapState).where(GapState.rule == "contact-bouncing", GapState.entity_id == contact).order_by(GapState.id))])
    assert rows == [False, True]


def test_an_evaluation_issues_the_same_number_of_statements_for_one_deal_or_many(services, clock):
    w = World(services, clock)
    counted: list[str] = []

    def count(conn, cursor, statement, *args):
        counted.append(statement)

    def statements() -> int:
        counted.clear()
        event.listen(services.engine, "before_cursor_execute", count)
        try:
            w.evaluate()
        finally:
            event.remove(services.engine, "before_cursor_execute", count)
        return len(counted)

    deal_at(w.ledger, w.customer, Stage.WON)
    clock.advance(2 * H)
    statements()
    first = statements()  # steady state: the gap is known
    for _ in range(6):
        deal_at(w.ledger, w.customer, Stage.WON)
    clock.advance(2 * H)
    statements()
    assert statements() == first


def test_unknown_rules_in_the_thresholds_are_refused():
    with pytest.raises(InvalidInput, match="unknown gap rule"):
        GapPolicy(overrides={"no-such-rule": 3})
    assert GapPolicy(overrides={"quote-unsigned": 10}).threshold(RULES[0]) == 10


def test_configuration_refuses_unknown_rules_and_bad_digest_times():
    from closeloop.config import Settings
    with pytest.raises(ValueError, match="unknown gap rule"):
        Settings(gap_thresholds="quote-unsigend=3")
    with pytest.raises(ValueError):
        Settings(digest_time="25:00")
    assert Settings(gap_thresholds="quote-unsigned=10", digest_time="07:30").digest_time == "07:30"


def test_the_suspension_rule_follows_the_collections_policy_amount_and_days(services, clock):
    w = World(services, clock)
    license_id = overdue_license(w)
    on_day(w)
    for policy, fires in ((CollectionsPolicy(), False),                                    # never suspend
                          (CollectionsPolicy(suspend_over={"EUR": 228001}), False),        # owes less
                          (CollectionsPolicy(suspend_over={"USD": 1}), False),             # another currency
                          (CollectionsPolicy(suspend_over={"EUR": 1}, suspend_after_days=31), False),
                          (CollectionsPolicy(suspend_over={"EUR": 228000}), True)):
        w.ledger.run(evaluate_gaps, GapPolicy(collections=policy))
        state = w.state("overdue-license-active", license_id)
        assert (state is not None and state.resolved_at is None) is fires, policy
        assert policy.past_suspension("EUR", 228000, 30) is fires


def test_the_gap_policy_and_collections_read_one_parse_of_the_settings():
    from closeloop.config import Settings
    from closeloop.gaps_wiring import gap_policy
    from closeloop.money import collections_policy
    settings = Settings(suspend_over="EUR=500.00", suspend_after_days=14)
    assert gap_policy(settings).collections == collections_policy(settings)
    assert gap_policy(settings).threshold(RULES[[r.name for r in RULES].index("overdue-license-active")]) == 14
    with pytest.raises(InvalidInput, match="CLOSELOOP_SUSPEND_AFTER_DAYS"):
        GapPolicy(overrides={"overdue-license-active": 3})


def test_a_docusign_envelope_whose_signed_pdf_was_not_accepted_is_a_failed_signature(services, clock):
    from flows.esign import DocuSignEnvelope
    w = World(services, clock)
    envelope_id = ended_envelope(w)
    w.write(lambda s: s.execute(update(SignatureEnvelope).where(SignatureEnvelope.id == envelope_id)
                                .values(status=EnvelopeStatus.COMPLETED, provider="docusign")))
    w.write(lambda s: s.add(DocuSignEnvelope(signature_envelope_id=envelope_id, deal_id=w.ref["deal"],
                                             closeloop_key="k-1", state="created", verdict="accepted",
                                             created_at=w.clock.now())))
    w.at(w.t0 + H)
    w.evaluate()
    assert w.state("signature-failed", envelope_id) is None  # accepted: record_signature takes it on
    w.write(lambda s: s.execute(update(DocuSignEnvelope).values(verdict="needs_review")))
    w.evaluate()
    assert w.state("signature-failed", envelope_id).resolved_at is None
