"""The gap buttons call the real steps: a reminder to sign is an email queued through
flows/mail.py (to the signer, once per press), "issue invoice" on a period runs the
billing run for that one subscription, and the gap resolves at the next evaluation."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from sqlalchemy import select

from flows.billing import Subscription
from flows.deals import Stage
from flows.gap_actions import act_on_gap
from flows.gap_models import GapState
from flows.gap_states import evaluate_gaps
from flows.gaps import GapPolicy
from flows.invoices import Invoice
from flows.mail import OutboundMail
from flows.outbox import OutboxMessage
from flows.steps import Done
from tests.factories import deal_at, seed

POLICY = GapPolicy()


def open_gap(ledger, rule: str, entity_id: int) -> GapState:
    return ledger.read(lambda s: s.scalar(select(GapState).where(GapState.rule == rule, GapState.entity_id == entity_id,
                                                                 GapState.resolved_at.is_(None))))


def test_remind_to_sign_queues_one_email_to_the_signer_per_press(services, clock):
    ledger = services.ledger
    customer = seed(ledger)
    deal_id = deal_at(ledger, customer, Stage.SENT)
    clock.advance(timedelta(days=7))
    ledger.run(evaluate_gaps, POLICY)
    gap = open_gap(ledger, "quote-unsigned", deal_id)
    done, said = ledger.run(act_on_gap, gap.id, action="remind", actor="U_REP", request_key="press-1")
    assert done is Done.ACTED and "a reminder to sign queued to ada@acme.example" == said
    again, _ = ledger.run(act_on_gap, gap.id, action="remind", actor="U_REP", request_key="press-1")
    assert again is Done.ALREADY

    def sent(session):
        mail = session.scalars(select(OutboundMail).where(OutboundMail.key.like("gap:%"))).all()
        outbox = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email.send")).all()
        return mail, outbox
    mail, outbox = ledger.read(sent)
    assert [(m.recipients, m.template, m.deal_id) for m in mail] == [(["ada@acme.example"], "reply", deal_id)]
    assert mail[0].subject.endswith("awaiting your signature")
    assert [o.payload["message_id"] for o in outbox if o.payload["subject"] == mail[0].subject] == [mail[0].message_id]


def test_issue_invoice_on_a_period_gap_runs_the_billing_run_for_that_subscription(services, clock):
    ledger = services.ledger
    customer = seed(ledger)
    deal_id = deal_at(ledger, customer, Stage.BILLING_ACTIVE)
    other = deal_at(ledger, customer, Stage.BILLING_ACTIVE)
    subs = ledger.read(lambda s: {sub.deal_id: sub for sub in s.scalars(select(Subscription))})
    clock.set(datetime.combine(subs[deal_id].next_start + timedelta(days=1), time(9), timezone.utc))
    ledger.run(evaluate_gaps, POLICY)
    gap = open_gap(ledger, "period-not-invoiced", subs[deal_id].id)
    assert open_gap(ledger, "period-not-invoiced", subs[other].id) is not None
    done, said = ledger.run(act_on_gap, gap.id, action="invoice", actor="U0FIN", request_key="press-1")
    assert done is Done.ACTED and said.startswith("invoice ") and said.endswith("issued for the period")
    again, why = ledger.run(act_on_gap, gap.id, action="invoice", actor="U0FIN", request_key="press-2")
    assert again is Done.ALREADY and "not due" in why
    periods = ledger.read(lambda s: [i.deal_id for i in s.scalars(select(Invoice).where(
        Invoice.purpose_key.like("period:%")))])
    assert periods == [deal_id]  # only the subscription of the gap was billed
    ledger.run(evaluate_gaps, POLICY)
    assert open_gap(ledger, "period-not-invoiced", subs[deal_id].id) is None
    assert open_gap(ledger, "period-not-invoiced", subs[other].id) is not None
