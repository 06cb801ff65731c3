"""What a person does about a gap from a button: send a reminder, issue the invoice,
suspend or reinstate the license. Each calls the flow step that exists for it:
resend_invoice, issue_invoice, the billing run for one subscription (bill_batch),
suspend_license, reinstate_license, and an email queued through flows/mail.py
queue_email for reminders to sign and check-ins. Idempotent by the click's request key."""
from __future__ import annotations

from sqlalchemy import select

from flows.billing_run import bill_batch
from flows.deals import Deal
from flows.errors import InvalidInput
from flows.finance import reinstate_license, resend_invoice, suspend_license
from flows.gap_models import GapState
from flows.gaps import INVOICE, REINSTATE, REMIND, RULES_BY_NAME, SUSPEND
from flows.ledger import Tx
from flows.mail import OutboundMail, queue_email
from flows.parties import ContactRole, Customer
from flows.steps import Done, issue_invoice, today

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


def _email(role: ContactRole, what: str, subject: str, text: str):  # type: ignore[no-untyped-def]
    """An email to the customer's contact of `role` (the other one if it has none),
    queued like every other (flows/mail.py queue_email, template "reply": plain paragraphs)."""
    def handle(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
        mail_key = f"gap:{gap.key}:{key}"
        if tx.session.scalar(select(OutboundMail.id).where(OutboundMail.key == mail_key)) is not None:
            return Done.ALREADY, f"{what} was already sent"
        customer = tx.get(Customer, gap.customer_id, lock=False) if gap.customer_id else None
        contact = customer and (customer.contact(role) or next(iter(customer.contacts), None))
        if customer is None or contact is None:
            raise InvalidInput(f"gap {gap.key}: the customer has no contact to write to")
        words = {"ref": gap.ref or "", "customer": customer.name}
        queue_email(tx, key=mail_key, deal_id=gap.deal_id, to=[contact.email], template="reply",
                    locale=customer.language, subject=subject.format(**words),
                    context={"name": contact.name, "text": text.format(**words)})
        tx.record("gap.reminder_requested", deal_id=gap.deal_id, customer_id=customer.id, actor=actor, gap=gap.key,
                  to=contact.email)
        return Done.ACTED, f"{what} queued to {contact.email}"
    return handle


def _invoice_period(tx: Tx, gap: GapState, actor: str, key: str) -> tuple[Done, str]:
    """The billing run, for this subscription only: its next period, as the nightly run would."""
    result = bill_batch(tx, today(tx), 1, subscription_id=gap.entity_id)
    if not result.numbers:
        what = "parked (daily bound)" if result.parked else "ended" if result.ended else "not due"
        return Done.ALREADY, f"subscription {gap.entity_id}: nothing billed ({what})"
    deal = tx.session.get(Deal, gap.deal_id) if gap.deal_id else None
    tx.record("gap.invoice_requested", deal_id=gap.deal_id, customer_id=deal.customer_id if deal else gap.customer_id,
              actor=actor, gap=gap.key, invoices=result.numbers)
    return Done.ACTED, f"invoice {', '.join(result.numbers)} issued for the period"


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
    ("quote-unsigned", REMIND): _email(ContactRole.SIGNER, "a reminder to sign", "Quote {ref}: awaiting your signature",
                                       "A friendly reminder: quote {ref} is waiting for your signature.\n\n"
                                       "Questions? Just reply to this email."),
    ("quote-expiring", REMIND): _email(ContactRole.SIGNER, "a reminder to sign", "Quote {ref} expires soon",
                                       "Quote {ref} expires soon: sign it to keep its terms.\n\n"
                                       "Questions? Just reply to this email."),
    ("customer-not-contacted", REMIND): _email(ContactRole.BILLING, "a check-in email", "Checking in",
                                               "We wanted to check that all is well at {customer} and whether "
                                               "there is anything we can help with.\n\nJust reply to this email."),
    ("invoice-overdue", REMIND): _resend,
    ("charge-retries-exhausted", REMIND): _resend,
    ("won-not-invoiced", INVOICE): _issue,
    ("period-not-invoiced", INVOICE): _invoice_period,
    ("overdue-license-active", SUSPEND): _suspend,
    ("suspended-but-paid", REINSTATE): _reinstate,
}
