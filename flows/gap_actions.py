"""What a person does about a gap from a button: send a reminder, issue the invoice,
suspend or reinstate the license. Each calls the flow step that exists for it
(resend_invoice, issue_invoice, suspend_license, reinstate_license); where none
exists yet, it writes the outbox row for the service that will do it and a timeline
event saying who asked. Idempotent by the click's request key."""
from __future__ import annotations

from sqlalchemy import select

from flows.errors import InvalidInput
from flows.finance import reinstate_license, resend_invoice, suspend_license
from flows.gap_models import GapState
from flows.gaps import INVOICE, REINSTATE, REMIND, RULES_BY_NAME, SUSPEND
from flows.ledger import Tx
from flows.outbox import OutboxMessage
from flows.steps import Done, issue_invoice

# gap action -> the permission (flows/access.py) it needs
ACTION_PERMISSION = {REMIND: "gaps.remind", INVOICE: "gaps.invoice", SUSPEND: "license.suspend",
                     REINSTATE: "license.suspend"}


def act_on_gap(tx: Tx, gap_id: int, *, action: str, actor: str, request_key: str) -> tuple[Done, str]:
    """Do the gap's action; returns what happened, in words."""
    gap = tx.get(GapState, gap_id, lock=False)
    rule = RULES_BY_NAME.get(gap.rule)
    if rule is None or rule.action != action:
        raise InvalidInput(f"'{action}' is not what can be done about gap {gap.key}")
    if gap.resolved_at is not None:
        return Done.ALREADY, f"gap {gap.key} is already resolved; nothing to do"
    handler = _HANDLERS[(gap.rule, action)]
    return handler(tx, gap, actor, request_key)


def _resend(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
    if not gap.ref:
        raise InvalidInput(f"gap {gap.key} names no invoice")
    done = resend_invoice(tx, invoice_number=gap.ref, actor=actor, request_key=f"gap:{key}")
    return done, f"invoice {gap.ref} sent again as a reminder"


def _queue(kind: str, what: str):  # type: ignore[no-untyped-def]
    """No step exists yet: the outbox row for the service that will, and who asked."""
    def handle(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
        idempotency = f"gap.{kind}:{gap.key}:{key}"
        if tx.session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == idempotency)):
            return Done.ALREADY, f"{what} was already asked for"
        tx.enqueue(kind, {"gap": gap.key, "entity_id": gap.entity_id, "deal_id": gap.deal_id,
                          "customer_id": gap.customer_id, "requested_by": actor}, key=idempotency,
                   deal_id=gap.deal_id, stream=None if gap.deal_id else f"customer:{gap.customer_id}")
        event = "gap.reminder_requested" if kind.startswith("email.") else "gap.invoice_requested"
        tx.record(event, deal_id=gap.deal_id, customer_id=gap.customer_id, actor=actor, gap=gap.key, outbox=kind)
        return Done.ACTED, f"{what} queued"
    return handle


def _issue(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
    done = issue_invoice(tx, gap.entity_id)
    return done, f"invoice issued for D-{gap.entity_id}"


def _suspend(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
    done = suspend_license(tx, gap.entity_id, reason=f"overdue past the policy (gap {gap.key})", actor=actor)
    return done, f"license {gap.ref or gap.entity_id} suspended"


def _reinstate(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
    done = reinstate_license(tx, gap.entity_id, reason=f"nothing owed (gap {gap.key})", actor=actor)
    return done, f"license {gap.ref or gap.entity_id} reinstated"


# (rule, action) -> what the button does
_HANDLERS = {
    ("quote-unsigned", REMIND): _queue("email.quote_reminder", "a reminder to sign"),
    ("quote-expiring", REMIND): _queue("email.quote_reminder", "a reminder to sign"),
    ("customer-not-contacted", REMIND): _queue("email.check_in", "a check-in email"),
    ("invoice-overdue", REMIND): _resend,
    ("charge-retries-exhausted", REMIND): _resend,
    ("won-not-invoiced", INVOICE): _issue,
    ("period-not-invoiced", INVOICE): _queue("billing.invoice_period", "an invoice for the period"),
    ("overdue-license-active", SUSPEND): _suspend,
    ("suspended-but-paid", REINSTATE): _reinstate,
}
