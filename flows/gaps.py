"""Completeness gap rules: each is ONE set-based SQL query over the ledger that returns
the entities where an expected step is missing past its threshold.

Every rule query selects the same labelled columns — entity_id, customer_id, deal_id,
owner, amount, currency, since, ref, extra — and is driven by an indexed, selective
predicate (a stage, a status, a flag), so its cost follows the number of gaps and
in-flight items, not the size of the ledger (bench/gap_rules.py shows the plans).
The owner is a rep's Slack id (for rep rules) or the role "finance" / "admin".

Thresholds come from configuration: CLOSELOOP_GAP_THRESHOLDS="quote-unsigned=10;
invoice-overdue=3" overrides the defaults in the table at the bottom of this module.

The lifecycle (evaluate_gaps, snooze_gap) and the read views live in flows/gap_states.py."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (BigInteger, Boolean, ColumnElement, Numeric, String, and_, case, cast, exists, false, func,
                        literal, null, or_, select, union_all)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from flows.billing import Charge, ChargeStatus, Subscription, SubscriptionStatus
from flows.catalog import Sku, SkuKind
from flows.charges import ChargePlan, PlanStatus
from flows.collections import CollectionsPolicy
from flows.deals import Deal, EnvelopeStatus, SignatureEnvelope, Stage
from flows.errors import InvalidInput
from flows.esign import DocuSignEnvelope
from flows.external_invoices import ExternalInvoiceRecord, ExternalInvoiceStatus
from flows.gap_models import VendorUsage
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus
from flows.licenses import License, LicenseStatus
from flows.mail import InboundMail, MailStatus, OutboundMail, OutboundStatus
from flows.money import line_net, round_half_up
from flows.outbox import OutboxMessage, OutboxStatus
from flows.parties import Contact, Customer
from flows.quotes import Quote, QuoteVersion
from flows.timeline import Event

REP, FINANCE, ADMIN = "rep", "finance", "admin"
# what a person can do about a gap from Slack (besides snoozing it)
REMIND, INVOICE, SUSPEND, REINSTATE = "remind", "invoice", "suspend", "reinstate"

# Timeline kinds that count as being in touch with a customer. The email issue records
# "email.sent" / "email.received" with the customer's id: that is the contract.
CONTACT_KINDS = ("quote.sent", "invoice.issued", "invoice.resent", "statement.requested", "payment.recorded",
                 "email.sent", "email.received", "customer.contacted", "gap.reminder_requested",
                 # what the email and collections flows record (flows/mail.py, flows/collections.py)
                 "mail.sent", "mail.reply_sent", "payment.claimed", "collections.reminder_sent",
                 "collections.overdue_sent")
# inbound mail a person must look at (flows/mail.py: matched to no deal, or its route raised)
UNMATCHED_MAIL = (MailStatus.TRIAGE, MailStatus.FAILED)
# outbound mail that failed for good (flows/mail.py: 5xx / refused, a permanent bounce, or not sent to
# recipients flagged bouncing / unsubscribed)
FAILED_MAIL = (OutboundStatus.FAILED, OutboundStatus.BOUNCED, OutboundStatus.SUPPRESSED)
# signature requests that ended without a signature (flows/esign.py, flows/steps.py)
FAILED_ENVELOPES = (EnvelopeStatus.DECLINED, EnvelopeStatus.VOIDED, EnvelopeStatus.EXPIRED)
# the suspension rule's threshold is the collections policy's, not a gap threshold of its own
SUSPENSION_RULE = "overdue-license-active"
COLUMNS = ("entity_id", "customer_id", "deal_id", "owner", "amount", "currency", "since", "ref", "extra")


@dataclass(frozen=True)
class Context:
    now: datetime
    today: date           # in the company's time zone
    threshold: int
    collections: CollectionsPolicy = CollectionsPolicy()  # the suspension policy (flows/collections.py)


@dataclass(frozen=True)
class Rule:
    name: str
    title: str            # a few words, for lists and chart labels
    description: str      # what it finds, in plain language (N is the threshold)
    owner: str            # rep, finance or admin
    entity: str           # what entity_id names: deal, invoice, license, …
    threshold: int        # the default N
    unit: str             # days, hours, minutes, attempts, percent
    query: Callable[[Context], Select[Any]]
    action: str | None = None
    # (row, threshold) -> (amount at stake, detail) when SQL cannot say it portably
    finish: Callable[[Mapping[str, Any], int], tuple[int | None, str | None]] | None = None

    def explain(self, threshold: int | None = None) -> str:
        text = re.sub(r"\bN\b", str(self.threshold if threshold is None else threshold), self.description)
        return text.replace(" 1 hours", " 1 hour").replace(" 1 days", " 1 day")


@dataclass(frozen=True)
class GapPolicy:
    """Thresholds per rule (defaults from the table, overridden by configuration)."""

    timezone: str = "UTC"
    overrides: Mapping[str, int] = field(default_factory=dict)
    # CLOSELOOP_SUSPEND_OVER / _AFTER_DAYS, parsed once (closeloop/money.py collections_policy)
    collections: CollectionsPolicy = CollectionsPolicy()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(RULES_BY_NAME))
        if unknown:
            raise InvalidInput(f"unknown gap rule(s) {', '.join(unknown)} in the thresholds; "
                               f"rules: {', '.join(RULES_BY_NAME)}")
        if SUSPENSION_RULE in self.overrides:
            raise InvalidInput(f"{SUSPENSION_RULE} follows the suspension policy: set CLOSELOOP_SUSPEND_AFTER_DAYS "
                               "and CLOSELOOP_SUSPEND_OVER, not a gap threshold")
        for name, value in self.overrides.items():
            if type(value) is not int or value < 0:
                raise InvalidInput(f"the threshold of {name} must be a whole number >= 0")

    def threshold(self, rule: Rule) -> int:
        if rule.name == SUSPENSION_RULE:
            return self.collections.suspend_after_days
        return self.overrides.get(rule.name, rule.threshold)

    def today(self, now: datetime) -> date:
        return now.astimezone(ZoneInfo(self.timezone)).date()

    def context(self, rule: Rule, now: datetime) -> Context:
        return Context(now, self.today(now), self.threshold(rule), self.collections)

    def start_of(self, day: date) -> datetime:
        return datetime.combine(day, time(), ZoneInfo(self.timezone))


def parse_thresholds(text: str) -> dict[str, int]:
    """'quote-unsigned=10; invoice-overdue=3' -> {"quote-unsigned": 10, "invoice-overdue": 3}"""
    found: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        name, _, value = part.partition("=")
        if not value.strip().isdigit():
            raise InvalidInput(f"gap threshold {part!r} must look like quote-unsigned=10")
        found[name.strip()] = int(value)
    return found


# --- building blocks ----------------------------------------------------------------------

class selective(ColumnElement[bool]):  # noqa: N801 — reads like the SQL function it becomes
    """A predicate true for few rows (a rare status or stage). SQLite's planner cannot tell
    from its statistics that 'cancelled' is rare among two values, so it is told with
    unlikely(); PostgreSQL's planner knows from its statistics and gets the plain predicate."""

    inherit_cache = True
    type = Boolean()

    def __init__(self, clause: Any) -> None:
        self.clause = clause


@compiles(selective)
def _selective(element: selective, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clause, **kw)


@compiles(selective, "sqlite")
def _selective_sqlite(element: selective, compiler: Any, **kw: Any) -> str:
    return f"unlikely({compiler.process(element.clause, **kw)})"


class common(selective):  # noqa: N801
    """A predicate true for most rows (an active license): not worth driving a plan from."""

    inherit_cache = True


@compiles(common, "sqlite")
def _common_sqlite(element: common, compiler: Any, **kw: Any) -> str:
    return f"likely({compiler.process(element.clause, **kw)})"


def _text(value: str) -> Any:
    return literal(value, String)


def _row(entity_id: Any, customer_id: Any, deal_id: Any, owner: Any, amount: Any, currency: Any, since: Any,
         ref: Any = None, extra: Any = None) -> list[Any]:
    values = (entity_id, customer_id, deal_id, owner, amount, currency, since,
              null() if ref is None else ref, null() if extra is None else extra)
    return [value.label(name) for value, name in zip(values, COLUMNS)]


def _deal_row(ctx: Context, owner: Any, since: Any = None) -> list[Any]:
    return _row(Deal.id, Deal.customer_id, Deal.id, owner, Deal.amount, Deal.currency,
                Deal.stage_changed_at if since is None else since, Quote.number)


def _stuck(stage: Stage, ctx: Context, unit: str) -> Any:
    """In `stage` for at least N units: the ix_deals_stage_stage_changed_at range."""
    return and_(Deal.stage == stage, Deal.stage_changed_at <= ctx.now - timedelta(**{unit: ctx.threshold}))


def _balance() -> Any:
    return Invoice.net + Invoice.tax - Invoice.amount_paid


def _rep_of_customer(customer_id: Any) -> Any:
    """The rep of the customer's latest deal (finance when it has none)."""
    newest = select(func.max(Deal.id)).where(Deal.customer_id == customer_id).correlate_except(Deal).scalar_subquery()
    rep = aliased(Deal)
    latest = select(rep.owner).where(rep.id == newest).correlate_except(rep, Deal).scalar_subquery()
    return func.coalesce(latest, _text(FINANCE))


# --- the rules' queries -------------------------------------------------------------------

def quote_unsigned(ctx: Context) -> Select[Any]:
    return (select(*_deal_row(ctx, Deal.owner)).join(Quote, Quote.deal_id == Deal.id)
            .where(_stuck(Stage.SENT, ctx, "days")))


def quote_expiring(ctx: Context) -> Select[Any]:
    return (select(*_deal_row(ctx, Deal.owner, since=QuoteVersion.valid_until))
            .join(Quote, Quote.deal_id == Deal.id)
            .join(QuoteVersion, and_(QuoteVersion.quote_id == Quote.id, QuoteVersion.version == Quote.current_version))
            .where(Deal.stage.in_((Stage.QUOTED, Stage.SENT)),
                   QuoteVersion.valid_until <= ctx.today + timedelta(days=ctx.threshold)))


def signature_failed(ctx: Context) -> Select[Any]:
    # The deal's latest envelope ended without a signature (declined, voided, expired), or
    # DocuSign completed it but our verification did not accept the signed PDF, and the
    # quote is still open: nobody sent it again or closed the deal. Driven by the rare
    # ended statuses of signature_envelopes.status; resolves with a newer envelope or a
    # stage change (signed, declined, expired, lost).
    newer = aliased(SignatureEnvelope)
    superseded = exists(select(newer.id).where(newer.deal_id == SignatureEnvelope.deal_id,
                                               newer.id > SignatureEnvelope.id))

    def failed(*where: Any) -> Select[Any]:
        return (select(*_row(SignatureEnvelope.id, Deal.customer_id, Deal.id, Deal.owner, Deal.amount, Deal.currency,
                             SignatureEnvelope.status_changed_at, Quote.number,
                             SignatureEnvelope.provider + _text(" ") + cast(SignatureEnvelope.status, String)))
                .join(Deal, Deal.id == SignatureEnvelope.deal_id).join(Quote, Quote.deal_id == Deal.id)
                .where(*where, Deal.stage.in_((Stage.QUOTED, Stage.SENT)), ~superseded,
                       SignatureEnvelope.status_changed_at <= ctx.now - timedelta(hours=ctx.threshold)))
    ended = failed(selective(SignatureEnvelope.status.in_(FAILED_ENVELOPES)))
    # completed is the common status: driven from the few refused verdicts instead
    refused = (failed(SignatureEnvelope.status == EnvelopeStatus.COMPLETED)
               .join(DocuSignEnvelope, DocuSignEnvelope.signature_envelope_id == SignatureEnvelope.id)
               .where(selective(DocuSignEnvelope.verdict.in_(("rejected", "needs_review")))))
    return union_all(ended, refused)  # type: ignore[return-value]


def signed_not_won(ctx: Context) -> Select[Any]:
    return (select(*_deal_row(ctx, _text(ADMIN))).join(Quote, Quote.deal_id == Deal.id)
            .where(_stuck(Stage.SIGNED, ctx, "hours")))


def won_not_invoiced(ctx: Context) -> Select[Any]:
    return (select(*_deal_row(ctx, _text(FINANCE), since=Deal.won_at)).join(Quote, Quote.deal_id == Deal.id)
            .where(_stuck(Stage.WON, ctx, "hours")))


def invoice_without_license(ctx: Context) -> Select[Any]:
    licensable = (select(InvoiceLine.id).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                  .join(Sku, Sku.id == InvoiceLine.sku_id)
                  .where(Invoice.deal_id == Deal.id, Sku.licensable.is_(True),
                         Invoice.status.in_((InvoiceStatus.ISSUED, InvoiceStatus.PAID))))
    return (select(*_deal_row(ctx, _text(ADMIN))).join(Quote, Quote.deal_id == Deal.id)
            .where(_stuck(Stage.INVOICED, ctx, "hours"), exists(licensable)))


def license_without_subscription(ctx: Context) -> Select[Any]:
    # (a) billing never started for a licensed deal; (b) its subscription was cancelled or
    # parked while the license stays active. Both driven by a stage or a rare status.
    recurring = and_(Sku.id == License.sku_id, Sku.kind == SkuKind.RECURRING)
    not_started = (select(*_row(License.id, License.customer_id, License.deal_id, _text(FINANCE), Deal.amount,
                                Deal.currency, Deal.stage_changed_at, License.product))
                   .select_from(Deal).join(License, License.deal_id == Deal.id).join(Sku, recurring)
                   .where(_stuck(Stage.LICENSED, ctx, "hours"), License.status == LicenseStatus.ACTIVE))
    ended = (select(*_row(License.id, License.customer_id, License.deal_id, _text(FINANCE), Deal.amount,
                          Deal.currency, License.status_changed_at, License.product))
             .select_from(Subscription)
             .join(License, and_(License.deal_id == Subscription.deal_id, License.sku_id == Subscription.sku_id))
             .join(Sku, recurring).join(Deal, Deal.id == License.deal_id)
             .where(selective(Subscription.status.in_((SubscriptionStatus.CANCELLED, SubscriptionStatus.PARKED))),
                    common(License.status == LicenseStatus.ACTIVE)))
    return union_all(not_started, ended)  # type: ignore[return-value]


def period_not_invoiced(ctx: Context) -> Select[Any]:
    # subscriptions.next_start is the start of the next period to bill, kept by the billing
    # run (flows/billing_run.py) and start_billing: the previous period ended then, and a
    # subscription still due N days later got no invoice. The run's own index
    # ix_subscriptions_due (status, next_start) is the range.
    cutoff = ctx.today - timedelta(days=ctx.threshold)
    return (select(*_row(Subscription.id, Subscription.customer_id, Subscription.deal_id, _text(FINANCE),
                         Subscription.unit_amount, Subscription.currency, Subscription.next_start, Sku.code,
                         Subscription.quantity))
            .join(Sku, Sku.id == Subscription.sku_id)
            .where(Subscription.status.in_((SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELLING)),
                   Subscription.next_start <= cutoff,
                   or_(Subscription.ends_on.is_(None), Subscription.next_start < Subscription.ends_on)))


def invoice_overdue(ctx: Context) -> Select[Any]:
    return (select(*_row(Invoice.id, Invoice.customer_id, Invoice.deal_id, _text(FINANCE), _balance(),
                         Invoice.currency, Invoice.due_on, Invoice.number))
            .where(Invoice.status == InvoiceStatus.ISSUED,
                   Invoice.due_on <= ctx.today - timedelta(days=ctx.threshold), _balance() > 0))


def charge_retries_exhausted(ctx: Context) -> Select[Any]:
    # The charge plan (flows/charges.py) gave up: soft declines used every retry, or a hard
    # decline that needs another card, N hours ago or more, and the invoice is still owed.
    # Resolves when the invoice is paid (any way) or the plan is scheduled again.
    return (select(*_row(Invoice.id, Invoice.customer_id, Invoice.deal_id, _text(FINANCE), _balance(),
                         Invoice.currency, ChargePlan.updated_at, Invoice.number,
                         cast(ChargePlan.status, String) + _text(" ") + func.coalesce(ChargePlan.last_code, "")))
            .select_from(ChargePlan).join(Invoice, Invoice.id == ChargePlan.invoice_id)
            .where(selective(ChargePlan.status.in_((PlanStatus.EXHAUSTED, PlanStatus.HARD_DECLINED))),
                   ChargePlan.updated_at <= ctx.now - timedelta(hours=ctx.threshold),
                   Invoice.status == InvoiceStatus.ISSUED, _balance() > 0))


def charge_outcome_unknown(ctx: Context) -> Select[Any]:
    return (select(*_row(Charge.id, Invoice.customer_id, Invoice.deal_id, _text(ADMIN), Charge.amount,
                         Charge.currency, Charge.created_at, Invoice.number))
            .join(Invoice, Invoice.id == Charge.invoice_id)
            .where(Charge.status == ChargeStatus.UNKNOWN,
                   Charge.created_at <= ctx.now - timedelta(minutes=ctx.threshold)))


def overdue_license_active(ctx: Context) -> Select[Any]:
    # The collections policy (flows/collections.py CollectionsPolicy.past_suspension): per
    # customer and currency, the overdue balance is at least suspend_over[currency] and the
    # oldest overdue invoice is suspend_after_days (the threshold) past due. No amount for a
    # currency: never suspended, so never a gap.
    limits = ctx.collections.suspend_over
    overdue = (select(Invoice.customer_id.label("customer_id"), Invoice.currency.label("currency"),
                      func.sum(_balance()).label("owed"), func.min(Invoice.due_on).label("oldest"))
               .where(Invoice.status == InvoiceStatus.ISSUED, _balance() > 0, Invoice.due_on < ctx.today)
               .group_by(Invoice.customer_id, Invoice.currency)
               .having(func.min(Invoice.due_on) <= ctx.today - timedelta(days=ctx.threshold),
                       func.sum(_balance()) >= case(limits, value=Invoice.currency) if limits else false())
               .subquery())
    return (select(*_row(License.id, License.customer_id, License.deal_id, _text(FINANCE),
                         cast(overdue.c.owed, BigInteger), overdue.c.currency, overdue.c.oldest, License.product))
            .select_from(overdue).join(License, License.customer_id == overdue.c.customer_id)
            .where(License.status == LicenseStatus.ACTIVE))


def suspended_but_paid(ctx: Context) -> Select[Any]:
    owing = exists(select(Invoice.id).where(Invoice.customer_id == License.customer_id,
                                            Invoice.status == InvoiceStatus.ISSUED, _balance() > 0))
    return (select(*_row(License.id, License.customer_id, License.deal_id, _text(FINANCE), null(), null(),
                         License.status_changed_at, License.product))
            .where(License.status == LicenseStatus.SUSPENDED,
                   License.status_changed_at <= ctx.now - timedelta(hours=ctx.threshold), ~owing))


def usage_unbilled(ctx: Context) -> Select[Any]:
    # Quantities are exact decimals (text on SQLite): compared as numbers in SQL, shown exactly.
    charged = (select(func.coalesce(func.sum(cast(InvoiceLine.quantity, Numeric(18, 6))), 0))
               .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
               .where(InvoiceLine.sku_id == VendorUsage.sku_id,
                      InvoiceLine.period_start >= VendorUsage.period_start,
                      InvoiceLine.period_start < VendorUsage.period_end,
                      Invoice.status.in_((InvoiceStatus.ISSUED, InvoiceStatus.PAID)))
               .scalar_subquery())
    return (select(*_row(VendorUsage.id, null(), null(), _text(FINANCE), VendorUsage.amount, VendorUsage.currency,
                         VendorUsage.period_end, VendorUsage.vendor,
                         cast(VendorUsage.quantity, String) + _text("|") + cast(charged, String) + _text("|")
                         + Sku.unit))
            .join(Sku, Sku.id == VendorUsage.sku_id)
            .where(cast(VendorUsage.quantity, Numeric(18, 6)) * 100 > charged * (100 + ctx.threshold)))


def outbox_dead(ctx: Context) -> Select[Any]:
    return (select(*_row(OutboxMessage.id, Deal.customer_id, OutboxMessage.deal_id, _text(ADMIN), null(), null(),
                         OutboxMessage.created_at, OutboxMessage.kind, func.substr(OutboxMessage.last_error, 1, 200)))
            .outerjoin(Deal, Deal.id == OutboxMessage.deal_id)
            .where(OutboxMessage.status == OutboxStatus.DEAD,
                   OutboxMessage.created_at <= ctx.now - timedelta(minutes=ctx.threshold)))


def outbox_lagging(ctx: Context) -> Select[Any]:
    # Due N minutes ago or more and still not delivered: the relays (Celery workers, or
    # the embedded thread) are down, stuck or far behind. Retries waiting for their
    # backoff are not due yet, so they do not count.
    return (select(*_row(OutboxMessage.id, Deal.customer_id, OutboxMessage.deal_id, _text(ADMIN), null(), null(),
                         OutboxMessage.available_at, OutboxMessage.kind,
                         func.coalesce(func.substr(OutboxMessage.last_error, 1, 200), _text("not delivered yet"))))
            .outerjoin(Deal, Deal.id == OutboxMessage.deal_id)
            .where(OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.LEASED]),
                   OutboxMessage.available_at <= ctx.now - timedelta(minutes=ctx.threshold)))


def mail_failed(ctx: Context) -> Select[Any]:
    # An email refused for good (5xx, refused recipients) or bounced permanently
    # (flows/mail.py), with no later message of the same template to the deal sent since.
    later = aliased(OutboundMail)
    resent = exists(select(later.id).where(later.deal_id == OutboundMail.deal_id, later.template == OutboundMail.template,
                                           later.id > OutboundMail.id, later.status == OutboundStatus.SENT))
    return (select(*_row(OutboundMail.id, Deal.customer_id, OutboundMail.deal_id,
                         func.coalesce(Deal.owner, _text(ADMIN)), null(), null(), OutboundMail.created_at,
                         OutboundMail.subject, func.substr(OutboundMail.error, 1, 200)))
            .outerjoin(Deal, Deal.id == OutboundMail.deal_id)
            .where(selective(OutboundMail.status.in_(FAILED_MAIL)), ~resent,
                   OutboundMail.created_at <= ctx.now - timedelta(minutes=ctx.threshold)))


def inbound_unmatched(ctx: Context) -> Select[Any]:
    # Mail in triage (flows/mail.py: matched to no deal) or whose route failed, until a
    # person routes, ignores or links it (its status changes).
    return (select(*_row(InboundMail.id, null(), InboundMail.deal_id, _text(FINANCE), null(), null(),
                         InboundMail.received_at, func.substr(InboundMail.subject, 1, 120),
                         func.coalesce(InboundMail.from_address, "") + _text(": ")
                         + func.substr(InboundMail.reason, 1, 160)))
            .where(selective(InboundMail.status.in_(UNMATCHED_MAIL)),
                   InboundMail.received_at <= ctx.now - timedelta(hours=ctx.threshold)))


def invoice_pdf_unmatched(ctx: Context) -> Select[Any]:
    # External accounting mode: an invoice PDF the accounting system mailed that matched no
    # deal (flows/external_invoices.py keeps it with status 'unmatched').
    return (select(*_row(ExternalInvoiceRecord.id, null(), null(), _text(FINANCE), ExternalInvoiceRecord.gross,
                         ExternalInvoiceRecord.currency, ExternalInvoiceRecord.received_at,
                         ExternalInvoiceRecord.number, func.coalesce(ExternalInvoiceRecord.customer_name, "")))
            .where(selective(ExternalInvoiceRecord.status == ExternalInvoiceStatus.UNMATCHED),
                   ExternalInvoiceRecord.received_at <= ctx.now - timedelta(hours=ctx.threshold)))


def contact_bouncing(ctx: Context) -> Select[Any]:
    return (select(*_row(Contact.id, Contact.customer_id, null(), _rep_of_customer(Contact.customer_id), null(),
                         null(), Contact.bounced_at, Contact.email, Contact.role))
            .where(Contact.bounced_at.is_not(None),
                   Contact.bounced_at <= ctx.now - timedelta(hours=ctx.threshold)))


def customer_not_contacted(ctx: Context) -> Select[Any]:
    # Per customer, its latest contact is read backwards from ix_events_customer_id_occurred_at
    # (a probe per customer with an active subscription: this rule grows with the customers).
    cutoff = ctx.now - timedelta(days=ctx.threshold)
    active = exists(select(Subscription.id).where(Subscription.customer_id == Customer.id,
                                                  Subscription.status == SubscriptionStatus.ACTIVE))
    last = (select(Event.occurred_at).where(Event.customer_id == Customer.id, Event.kind.in_(CONTACT_KINDS))
            .order_by(Event.occurred_at.desc()).limit(1).correlate(Customer).scalar_subquery())
    since = func.coalesce(last, Customer.created_at)
    return (select(*_row(Customer.id, Customer.id, null(), _rep_of_customer(Customer.id), null(), null(), since,
                         Customer.name))
            .where(Customer.created_at <= cutoff, since <= cutoff, active))


# --- what SQL cannot say portably ---------------------------------------------------------

def _period_fee(row: Mapping[str, Any], _: int) -> tuple[int | None, str | None]:
    quantity = Decimal(str(row["extra"]))
    return line_net(int(row["amount"]), quantity), f"{row['ref']} × {format(quantity.normalize(), 'f')}"


def _usage_figures(row: Mapping[str, Any], _: int) -> tuple[int | None, str | None]:
    billed_text, charged_text, unit = str(row["extra"]).split("|")
    billed, charged = Decimal(billed_text).normalize(), Decimal(charged_text).quantize(Decimal("0.000001")).normalize()
    amount = row["amount"]
    at_stake = round_half_up(Decimal(amount) * (billed - charged) / billed) if amount is not None and billed else None
    return at_stake, f"vendor billed {format(billed, 'f')} {unit}, customers charged {format(charged, 'f')} {unit}"


def _bounce_role(row: Mapping[str, Any], _: int) -> tuple[int | None, str | None]:
    role = getattr(row["extra"], "value", row["extra"])
    return None, f"{role} contact"


def _overdue_bucket(row: Mapping[str, Any], _: int) -> tuple[int | None, str | None]:
    return row["amount"], None  # the bucket follows from the age; see aging_bucket()


# --- the rules, in one table ---------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule("quote-unsigned", "Quote unsigned", "Quote sent for signature N days ago or more and not signed yet.",
         REP, "deal", 7, "days", quote_unsigned, REMIND),
    Rule("quote-expiring", "Quote expiring", "Quote not signed yet whose validity ends within N days (or has "
         "ended without the quote being expired).", REP, "deal", 3, "days", quote_expiring, REMIND),
    Rule("signature-failed", "Signature failed", "Signature request declined, voided or expired (or its signed PDF "
         "not accepted) N hours ago or more while the quote is still open, and not sent again.", REP, "envelope", 1,
         "hours", signature_failed),
    Rule("signed-not-won", "Signed, not won", "Signature verified N hours ago or more but the deal is not won: "
         "the pipeline stopped.", ADMIN, "deal", 1, "hours", signed_not_won),
    Rule("won-not-invoiced", "Won, not invoiced", "Deal won N hours ago or more with no invoice issued.",
         FINANCE, "deal", 1, "hours", won_not_invoiced, INVOICE),
    Rule("invoice-no-license", "Invoiced, no license", "Invoice for a licensable SKU issued N hours ago or more "
         "and no license issued for the deal.", ADMIN, "deal", 1, "hours", invoice_without_license),
    Rule("license-no-subscription", "License, no subscription", "Active license for a recurring SKU with no "
         "active subscription: billing never started (N hours after licensing) or the subscription was cancelled "
         "or parked.", FINANCE, "license", 1, "hours", license_without_subscription),
    Rule("period-not-invoiced", "Period not invoiced", "Active subscription whose billing period ended N days ago "
         "or more with no invoice for the next one (subscriptions.next_start, kept by the billing run).", FINANCE,
         "subscription", 1, "days", period_not_invoiced, INVOICE, _period_fee),
    Rule("invoice-overdue", "Invoice overdue", "Issued invoice with an open balance N days or more past its due "
         "date (listed by aging bucket).", FINANCE, "invoice", 1, "days", invoice_overdue, REMIND, _overdue_bucket),
    Rule("charge-retries-exhausted", "Charge retries exhausted", "Unpaid invoice whose card charges stopped N "
         "hours ago or more: every retry declined, or a hard decline that needs another card.", FINANCE, "invoice",
         0, "hours", charge_retries_exhausted, REMIND),
    Rule("charge-outcome-unknown", "Charge outcome unknown", "Charge whose outcome has been unknown for N minutes "
         "or more: the reconciler must ask the gateway (never charge again).", ADMIN, "charge", 60, "minutes",
         charge_outcome_unknown),
    Rule("overdue-license-active", "Overdue, license active", "Customer owes at least the suspension amount "
         "(CLOSELOOP_SUSPEND_OVER) with an invoice N days or more past due (CLOSELOOP_SUSPEND_AFTER_DAYS) and still "
         "has an active license.", FINANCE, "license", 30, "days",
         overdue_license_active, SUSPEND),
    Rule("suspended-but-paid", "Suspended though paid", "License suspended N hours ago or more although the "
         "customer owes nothing.", FINANCE, "license", 1, "hours", suspended_but_paid, REINSTATE),
    Rule("usage-unbilled", "Usage not billed", "Vendor-billed usage of a resold usage SKU above the quantity "
         "charged to customers for that period by more than N percent.", FINANCE, "vendor usage", 2, "percent",
         usage_unbilled, None, _usage_figures),
    Rule("outbox-dead", "Message failed for good", "Outbound message (Slack, email, e-signature, charge…) that "
         "failed for good, dead-lettered N minutes ago or more.", ADMIN, "outbox message", 0, "minutes",
         outbox_dead),
    Rule("outbox-lagging", "Messages not going out", "Outbound message due N minutes ago or more and still not "
         "delivered: the workers are down, stuck or far behind (retries waiting out their backoff are not due).",
         ADMIN, "outbox message", 15, "minutes", outbox_lagging),
    Rule("mail-failed", "Email failed", "Email refused for good or bounced permanently N minutes ago or more, "
         "and no later email of its kind sent to the deal.", REP, "outbound mail", 0, "minutes", mail_failed),
    Rule("inbound-unmatched", "Inbound not matched", "Inbound email received N hours ago or more that matched no "
         "deal (or whose handling failed) and that nobody has routed yet (closeloop mail triage).", FINANCE,
         "inbound mail", 1, "hours", inbound_unmatched),
    Rule("invoice-pdf-unmatched", "Invoice PDF not matched", "Invoice PDF from the accounting system received N "
         "hours ago or more that matched no deal (external invoicing).", FINANCE, "external invoice", 1, "hours",
         invoice_pdf_unmatched),
    Rule("contact-bouncing", "Contact bouncing", "Contact whose mail bounces for good (contacts.bounced_at, set "
         "by flows/mail.py when a permanent delivery report comes back) for N hours or more.", REP, "contact", 0, "hours",
         contact_bouncing, None, _bounce_role),
    Rule("customer-not-contacted", "Customer not contacted", "Customer with an active subscription and no "
         "contact either way (quote, invoice, statement, email sent or received) for N days.", REP, "customer",
         90, "days", customer_not_contacted, REMIND),
)
RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}

# Aging buckets of overdue gaps: label -> (fewest, most) days past due; None: no upper bound
AGING_BUCKETS: dict[str, tuple[int, int | None]] = {"1-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90),
                                                    "90+": (91, None)}


def aging_bucket(days_overdue: int) -> str:
    for label, (fewest, most) in AGING_BUCKETS.items():
        if days_overdue >= fewest and (most is None or days_overdue <= most):
            return label
    return "not due"
