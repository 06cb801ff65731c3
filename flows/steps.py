"""The steps of the loop. Each has one shape: load (locking the deal), return if the
work is already done, check the transition is legal, act, append events, write
outbox rows. `Ledger.run` commits. Replays change nothing; illegal transitions raise.

The tables at the bottom say which stages each step moves between, and which step
follows on its own when a deal reaches a stage."""
from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload, selectinload

from flows.billing import Subscription, SubscriptionPeriod, SubscriptionStatus, period_bounds
from flows.catalog import Sku, SkuPrice
from flows.catalog_file import CatalogSpec
from flows.deals import HAPPY_PATH, Deal, EnvelopeStatus, SignatureEnvelope, Stage
from flows.errors import IllegalTransition, InvalidInput, NotFound
from flows.invoices import Invoice, InvoiceLine, InvoiceStatus, invoice_delivery
from flows.ledger import Tx
from flows.licenses import License, LicenseStatus
from flows.money import Money, check_basis_points, check_currency, check_quantity, document_totals, line_net
from flows.parties import Contact, ContactRole, Customer
from flows.quotes import Approval, Quote, QuoteLine, QuoteVersion


class Done(enum.Enum):
    ACTED = "acted"
    ALREADY = "already done"  # a replay: nothing changed


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: Decimal
    unit_amount: int | None = None  # price override in minor units
    description: str | None = None


@dataclass(frozen=True)
class ContactRequest:
    name: str
    email: str
    role: ContactRole


_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\]+\.[^@\s<>()\[\],;:\"\\]+$")


# --- customers and catalog -------------------------------------------------------

def add_customer(tx: Tx, *, name: str, country: str, currency: str, language: str = "en",
                 tax_id: str | None = None, contacts: tuple[ContactRequest, ...] = ()) -> int:
    """Create a customer with its contacts; an existing customer of the same name and
    country is returned unchanged (a retried command must not create a twin)."""
    name = name.strip()
    if not name:
        raise InvalidInput("a customer needs a name")
    if not re.fullmatch(r"[A-Z]{2}", country or ""):
        raise InvalidInput(f"country '{country}' must be a two-letter ISO code such as DE or US")
    check_currency(currency)
    for contact in contacts:
        if not _EMAIL.match(contact.email):
            raise InvalidInput(f"'{contact.email}' is not an email address")
    existing = tx.session.scalar(
        select(Customer).where(func.lower(Customer.name) == name.lower(), Customer.country == country)
    )
    if existing is not None:
        return existing.id
    customer = Customer(name=name, country=country, currency=currency, language=language,
                        tax_id=tax_id, created_at=tx.now)
    customer.contacts = [Contact(name=c.name, email=c.email, role=c.role) for c in contacts]
    tx.session.add(customer)
    tx.session.flush()
    tx.record("customer.added", deal_id=None, customer_id=customer.id, name=name)
    return customer.id


def load_catalog(tx: Tx, spec: CatalogSpec, *, source: str) -> dict[str, int]:
    """Insert or update every SKU of the file; SKUs no longer in it are deactivated,
    never deleted, because issued quotes and invoices refer to them. Loading the same
    file again changes nothing."""
    existing = {sku.code: sku for sku in tx.session.scalars(select(Sku))}
    counts = {"added": 0, "updated": 0, "unchanged": 0, "deactivated": 0}
    for item in spec.skus:
        sku = existing.pop(item.code, None)
        if sku is None:
            sku = Sku(code=item.code)
            tx.session.add(sku)
            counts["added"] += 1
        elif _sku_fields(sku) == _spec_fields(item):
            counts["unchanged"] += 1
            continue
        else:
            counts["updated"] += 1
        sku.name, sku.kind, sku.unit, sku.interval = item.name, item.kind, item.unit, item.interval
        sku.licensable, sku.features, sku.active = item.licensable, list(item.features), True
        sku.tax_category, sku.tax_rate_bp = item.tax_category, item.tax_rate_bp
        # Update prices in place: replacing the rows would INSERT the new (sku, currency)
        # before DELETEing the old one and break the unique constraint.
        current = {price.currency: price for price in sku.prices}
        sku.prices = [current.get(c) or SkuPrice(currency=c) for c, _ in sorted(item.prices.items())]
        for price in sku.prices:
            price.unit_amount = item.prices[price.currency]
    for sku in existing.values():
        if sku.active:
            sku.active = False
            counts["deactivated"] += 1
    if counts["added"] or counts["updated"] or counts["deactivated"]:
        tx.record("catalog.loaded", deal_id=None, customer_id=None, source=source, **counts)
    return counts


def _sku_fields(sku: Sku) -> tuple[Any, ...]:
    return (sku.name, sku.kind, sku.unit, sku.interval, sku.licensable, tuple(sku.features), sku.active,
            sku.tax_category, sku.tax_rate_bp, tuple((p.currency, p.unit_amount) for p in sku.prices))


def _spec_fields(item: Any) -> tuple[Any, ...]:
    return (item.name, item.kind, item.unit, item.interval, item.licensable, tuple(item.features), True,
            item.tax_category, item.tax_rate_bp, tuple(sorted(item.prices.items())))


# --- quote -------------------------------------------------------------------------

def draft_quote(tx: Tx, *, key: str, customer_id: int, owner: str, currency: str,
                lines: list[LineRequest], discount_bp: int = 0, valid_days: int | None = None,
                payment_terms_days: int | None = None) -> int:
    """Open a deal with a numbered quote (version 1). `key` identifies the request
    (a Slack trigger id, a CLI invocation): the same key returns the same deal."""
    replay = tx.session.scalar(select(Deal.id).where(Deal.origin_key == key))
    if replay is not None:
        return replay
    customer = tx.get(Customer, customer_id, lock=False)
    check_currency(currency)
    deal = Deal(customer_id=customer.id, owner=owner, stage=Stage.QUOTED, currency=currency, amount=0,
                origin_key=key, created_at=tx.now, stage_changed_at=tx.now)
    tx.session.add(deal)
    tx.session.flush()
    year = today(tx).year
    series = tx.policy.quote_series.format(year=year)
    quote = Quote(number=f"{series}-{tx.next_number(series):04d}", deal_id=deal.id,
                  customer_id=customer.id, owner=owner, currency=currency, current_version=1,
                  created_at=tx.now)
    tx.session.add(quote)
    version = _new_version(tx, quote, 1, lines, discount_bp, valid_days, payment_terms_days)
    deal.amount = version.gross
    tx.session.flush()
    announce(tx, deal, "quote.drafted", f"Quote {quote.number} drafted for {customer.name}",
              actor=owner, quote=quote.number, version=1, gross=version.gross, currency=currency)
    _ask_approval_if_needed(tx, deal, version)
    return deal.id


def revise_quote(tx: Tx, deal_id: int, *, key: str, lines: list[LineRequest], actor: str,
                 discount_bp: int = 0, valid_days: int | None = None,
                 payment_terms_days: int | None = None) -> Done:
    """Make a new version. A version already sent for signature is withdrawn."""
    deal = load_deal(tx, deal_id)
    quote = deal.quote
    if any(v.origin_key == key for v in quote.versions):
        return Done.ALREADY
    _require(deal, "revise_quote")
    if deal.stage is Stage.SENT:
        _withdraw_envelopes(tx, deal, reason=f"replaced by version {quote.current_version + 1}")
    version = _new_version(tx, quote, quote.current_version + 1, lines, discount_bp, valid_days,
                           payment_terms_days, key=key)
    quote.current_version = version.version
    deal.amount = version.gross
    _move(tx, deal, Stage.QUOTED)
    announce(tx, deal, "quote.revised", f"Quote {quote.number} revised to version {version.version}",
              actor=actor, quote=quote.number, version=version.version, gross=version.gross)
    _ask_approval_if_needed(tx, deal, version)
    return Done.ACTED


def send_quote(tx: Tx, deal_id: int, *, provider: str, actor: str) -> Done:
    """Ask the customer's signer to sign the current version (DocuSign or email)."""
    deal = load_deal(tx, deal_id)
    if not _begin(deal, "send_quote"):
        return Done.ALREADY
    quote, version = deal.quote, deal.quote.current
    if version.valid_until < today(tx):
        raise InvalidInput(f"quote {quote.number} v{version.version} expired on {version.valid_until}; "
                           "revise it before sending")
    _require_approval(deal, version)
    signer = deal.customer.contact(ContactRole.SIGNER)
    if signer is None:
        raise InvalidInput(f"{deal.customer.name} has no signer contact; add one before sending")
    if provider not in ("docusign", "email"):
        raise InvalidInput(f"unknown signature provider '{provider}' (docusign or email)")
    envelope = SignatureEnvelope(deal_id=deal.id, quote_version_id=version.id, provider=provider,
                                 status=EnvelopeStatus.REQUESTED, requested_at=tx.now,
                                 status_changed_at=tx.now, signer_email=signer.email)
    tx.session.add(envelope)
    version.sent_at = tx.now
    tx.session.flush()
    _move(tx, deal, Stage.SENT)
    tx.enqueue("esign.send", {"envelope_id": envelope.id, "deal_id": deal.id},
               key=f"esign.send:{envelope.id}", deal_id=deal.id)
    announce(tx, deal, "quote.sent", f"Quote {quote.number} v{version.version} sent to {signer.email} "
              f"for signature ({provider})", actor=actor, quote=quote.number, version=version.version,
              provider=provider, signer=signer.email)
    return Done.ACTED


def record_signature(tx: Tx, deal_id: int, *, version: int, signer: str, evidence: dict[str, Any],
                     actor: str = "customer") -> Done:
    """A verified signature arrived for a version of the quote."""
    deal = load_deal(tx, deal_id)
    if not _begin(deal, "record_signature"):
        return Done.ALREADY
    quote = deal.quote
    if version != quote.current_version:
        raise InvalidInput(f"this is version {version} of {quote.number}; "
                           f"version {quote.current_version} is the current one")
    quote.current.signed_at = tx.now
    tx.session.connection().execute(  # every open request for this deal's signature is now complete
        update(SignatureEnvelope.__table__)
        .where(SignatureEnvelope.deal_id == deal.id, SignatureEnvelope.status.in_(_OPEN_ENVELOPES))
        .values(status=EnvelopeStatus.COMPLETED.value, status_changed_at=tx.now))
    _move(tx, deal, Stage.SIGNED)
    announce(tx, deal, "quote.signed", f"Quote {quote.number} v{version} signed by {signer}",
              actor=actor, quote=quote.number, version=version, signer=signer, evidence=evidence)
    return Done.ACTED


def approve_discount(tx: Tx, deal_id: int, *, version: int, approver: str) -> Done:
    """A manager approves the discount of a quote version; it may then be sent."""
    return _decide_discount(tx, deal_id, version, approver, Approval.APPROVED, reason="")


def reject_discount(tx: Tx, deal_id: int, *, version: int, approver: str, reason: str) -> Done:
    """A manager rejects the discount; the rep must revise the quote before sending."""
    if not reason.strip():
        raise InvalidInput("say why the discount is rejected, so the rep can revise the quote")
    return _decide_discount(tx, deal_id, version, approver, Approval.REJECTED, reason=reason)


def _decide_discount(tx: Tx, deal_id: int, number: int, approver: str, decision: Approval, *,
                     reason: str) -> Done:
    deal = load_deal(tx, deal_id)
    quote = deal.quote
    version = next((v for v in quote.versions if v.version == number), None)
    if version is None:
        raise InvalidInput(f"{quote.number} has no version {number}")
    if version.approval is decision:
        return Done.ALREADY
    if version.approval is not Approval.PENDING:
        raise InvalidInput(f"{quote.number} v{number}: the discount is {version.approval.value.replace('_', ' ')}; "
                           "nothing to decide")
    if number != quote.current_version:
        raise InvalidInput(f"{quote.number} v{number} was replaced by version {quote.current_version}")
    version.approval, version.approval_by, version.approval_at = decision, approver, tx.now
    verb = "approved" if decision is Approval.APPROVED else f"rejected ({reason})"
    announce(tx, deal, f"discount.{decision.value}",
             f"Discount of {version.discount_bp / 100:g} % on {quote.number} v{number} {verb} by {approver}",
             actor=approver, quote=quote.number, version=number, discount_bp=version.discount_bp,
             reason=reason)
    return Done.ACTED


def void_quote(tx: Tx, deal_id: int, *, reason: str, actor: str) -> Done:
    return _end_quote(tx, deal_id, "void_quote", "quote.voided", "voided", reason, actor)


def decline_quote(tx: Tx, deal_id: int, *, reason: str, actor: str = "customer") -> Done:
    return _end_quote(tx, deal_id, "decline_quote", "quote.declined", "declined", reason, actor)


def expire_quote(tx: Tx, deal_id: int) -> Done:
    deal = load_deal(tx, deal_id)
    valid_until = deal.quote.current.valid_until
    if deal.stage in (Stage.QUOTED, Stage.SENT) and valid_until >= today(tx):
        raise InvalidInput(f"quote {deal.quote.number} is valid until {valid_until}; it has not expired")
    return _end_quote(tx, deal_id, "expire_quote", "quote.expired", "expired",
                      f"validity ended {valid_until}", "closeloop")


# --- deal won -> invoice -> license -> billing ------------------------------------------

def win_deal(tx: Tx, deal_id: int) -> Done:
    deal = load_deal(tx, deal_id)
    if not _begin(deal, "win_deal"):
        return Done.ALREADY
    deal.won_at = tx.now
    _move(tx, deal, Stage.WON)
    announce(tx, deal, "deal.won", f"Deal {deal.reference} with {deal.customer.name} won: "
              f"{_amount(deal.amount, deal.currency)}", gross=deal.amount, currency=deal.currency)
    return Done.ACTED


def issue_invoice(tx: Tx, deal_id: int) -> Done:
    """Invoice the signed quote: one-off lines, and the first period of recurring ones."""
    deal = load_deal(tx, deal_id)
    if not _begin(deal, "issue_invoice"):
        return Done.ALREADY
    version = deal.quote.current
    day = today(tx)
    if tx.policy.invoicing == "external":  # the accounting system invoices; its PDF is linked on arrival
        _move(tx, deal, Stage.INVOICED)
        announce(tx, deal, "invoice.external_expected", f"Invoicing is external: {deal.reference} is invoiced "
                 "by the accounting system; its invoice is linked when it reaches the finance inbox",
                 gross=deal.amount, currency=deal.currency)
        return Done.ACTED
    invoice = Invoice(customer_id=deal.customer_id, purpose_key=f"deal:{deal.id}",
                      status=InvoiceStatus.DRAFT, currency=deal.currency, net=0, tax=0, amount_paid=0,
                      payment_terms_days=version.payment_terms_days, created_at=tx.now)
    for line in version.lines:
        start = end = None
        if line.sku.interval is not None:
            start, end = period_bounds(day, line.sku.interval, 0)
        invoice.lines.append(InvoiceLine(
            position=line.position, sku_id=line.sku_id, description=line.description,
            quantity=line.quantity, unit_amount=line.unit_amount, tax_rate_bp=line.tax_rate_bp,
            net=line.net, period_start=start, period_end=end))
    deal.invoices.append(invoice)
    _finalize(tx, invoice)
    _move(tx, deal, Stage.INVOICED)
    # The number names the invoice for its side effects: unique, and known before it has an id.
    tx.session.flush()  # the invoice's id, for the deliverer
    billing = deal.customer.contact(ContactRole.BILLING)
    tx.enqueue("invoice.deliver", invoice_delivery(invoice.id, invoice.number, customer=deal.customer.name,
                                                   language=deal.customer.language,
                                                   to=billing.email if billing else None),
               key=f"invoice.deliver:{invoice.number}", deal_id=deal.id)
    tx.enqueue("payment.collect", {"invoice": invoice.number}, key=f"payment.collect:{invoice.number}",
               deal_id=deal.id)
    announce(tx, deal, "invoice.issued", f"Invoice {invoice.number} issued: "
              f"{_amount(invoice.gross, invoice.currency)}, due {invoice.due_on}",
              invoice=invoice.number, gross=invoice.gross,
              due_on=invoice.due_on.isoformat())
    return Done.ACTED


def finalize_invoice(tx: Tx, invoice_id: int) -> Done:
    """Give a draft invoice its number. Two workers racing here consume one number."""
    invoice = tx.get(Invoice, invoice_id)
    if invoice.status is not InvoiceStatus.DRAFT:
        return Done.ALREADY
    _finalize(tx, invoice)
    tx.record("invoice.finalized", deal_id=invoice.deal_id, customer_id=invoice.customer_id,
              invoice=invoice.number)
    return Done.ACTED


def issue_license(tx: Tx, deal_id: int) -> Done:
    deal = load_deal(tx, deal_id)
    if not _begin(deal, "issue_license"):
        return Done.ALREADY
    licensable = [line for line in deal.quote.current.lines if line.sku.licensable]
    for line in licensable:
        license = _license_for(tx, deal, line)
        tx.session.add(license)
        # A deal holds one license per product, so (deal, product) names it before it has an id.
        tx.enqueue("license.provision", {"deal_id": deal.id, "product": license.product},
                   key=f"license.provision:{deal.id}:{license.product}", deal_id=deal.id)
        announce(tx, deal, "license.issued", f"License for {license.seats} × {license.product} issued",
                  product=license.product, seats=license.seats)
    if not licensable:
        tx.record("license.not_needed", deal_id=deal.id, customer_id=deal.customer_id,
                  reason="no licensable items on the quote")
    _move(tx, deal, Stage.LICENSED)
    return Done.ACTED


def _license_for(tx: Tx, deal: Deal, line: QuoteLine) -> License:
    until = None
    if line.sku.interval is not None:
        _, end = period_bounds(today(tx), line.sku.interval, 0)
        until = datetime.combine(end, time(), ZoneInfo(tx.policy.timezone))
    return License(deal_id=deal.id, customer_id=deal.customer_id, sku_id=line.sku_id, product=line.sku.code,
                   seats=int(line.quantity), features=list(line.sku.features), status=LicenseStatus.ACTIVE,
                   valid_from=tx.now, valid_until=until, status_changed_at=tx.now)


def start_billing(tx: Tx, deal_id: int) -> Done:
    """Open a subscription per recurring line; its first period is the deal's invoice."""
    deal = load_deal(tx, deal_id)
    if not _begin(deal, "start_billing"):
        return Done.ALREADY
    invoice = next((i for i in deal.invoices if i.purpose_key == f"deal:{deal.id}"), None)
    if invoice is None and tx.policy.invoicing != "external":
        raise NotFound("invoice for deal", deal.reference)
    recurring = ([line for line in invoice.lines if line.period_start is not None] if invoice is not None
                 else _external_period_lines(tx, deal))
    for line in recurring:
        sku = tx.get(Sku, line.sku_id, lock=False)
        subscription = Subscription(
            deal_id=deal.id, customer_id=deal.customer_id, sku_id=sku.id, quantity=line.quantity,
            unit_amount=line.unit_amount, tax_rate_bp=line.tax_rate_bp, currency=deal.currency,
            interval=sku.interval, anchor=line.period_start, status=SubscriptionStatus.ACTIVE,
            started_at=tx.now, next_index=1, next_start=line.period_end, description=line.description,
            payment_terms_days=deal.quote.current.payment_terms_days, credit=0, billed_today=0)
        subscription.periods.append(SubscriptionPeriod(index=0, start=line.period_start, end=line.period_end,
                                                       invoice=invoice))
        tx.session.add(subscription)
        announce(tx, deal, "subscription.started",
                  f"Subscription {sku.code} × {line.quantity} started, every {sku.interval.value}",
                  sku=sku.code, quantity=str(line.quantity), anchor=line.period_start.isoformat())
    if not recurring:
        tx.record("billing.not_needed", deal_id=deal.id, customer_id=deal.customer_id,
                  reason="no recurring items on the quote")
    _move(tx, deal, Stage.BILLING_ACTIVE)
    return Done.ACTED


def _external_period_lines(tx: Tx, deal: Deal) -> list[InvoiceLine]:
    """External invoicing: the first period of each recurring quote line, as unsaved lines."""
    lines = []
    for line in deal.quote.current.lines:
        if line.sku.interval is not None:
            start, end = period_bounds(today(tx), line.sku.interval, 0)
            lines.append(InvoiceLine(position=line.position, sku_id=line.sku_id, description=line.description,
                                     quantity=line.quantity, unit_amount=line.unit_amount,
                                     tax_rate_bp=line.tax_rate_bp, net=line.net, period_start=start,
                                     period_end=end))
    return lines


def set_deal_thread(tx: Tx, deal_id: int, *, thread: str) -> Done:
    """Remember the Slack thread ("channel:ts") where the deal's timeline is posted."""
    deal = tx.get(Deal, deal_id)
    if deal.slack_thread == thread:
        return Done.ALREADY
    if deal.slack_thread is not None:
        raise InvalidInput(f"deal {deal.reference} already posts to thread {deal.slack_thread}")
    deal.slack_thread = thread
    return Done.ACTED


# --- helpers ------------------------------------------------------------------------

# What every deal step reads: the customer, the quote with its versions, their lines
# and SKUs — loaded with the locked deal in one query — and the deal's invoices.
_DEAL_GRAPH = (
    joinedload(Deal.customer, innerjoin=True),
    selectinload(Deal.invoices),
    joinedload(Deal.quote, innerjoin=True).joinedload(Quote.versions, innerjoin=True)
    .joinedload(QuoteVersion.lines, innerjoin=True).joinedload(QuoteLine.sku, innerjoin=True),
)


def load_deal(tx: Tx, deal_id: int) -> Deal:
    """The deal, locked, with the graph every deal step reads.

    The lock is taken alone, then the graph is read by a second statement: on
    PostgreSQL a statement that waited for a row lock re-reads that row but still
    sees the joined rows (versions, lines) as they were when it started, so one
    statement for both would miss what the lock holder just committed."""
    if tx.holds(Deal, deal_id):
        return tx.get(Deal, deal_id)
    tx.get(Deal, deal_id)
    return tx.session.scalars(
        select(Deal).where(Deal.id == deal_id).options(*_DEAL_GRAPH)
        .execution_options(populate_existing=True)).unique().one()


def today(tx: Tx) -> date:
    return tx.now.astimezone(ZoneInfo(tx.policy.timezone)).date()


def _amount(minor: int, currency: str) -> str:
    return str(Money(minor, currency))


def _begin(deal: Deal, step: str) -> bool:
    """True to go ahead; False when the step's work is already done (a replay)."""
    sources, target = TRANSITIONS[step]
    if deal.stage in sources:
        return True
    if _reached(deal.stage, target):
        return False
    raise IllegalTransition(step, deal.stage.value, tuple(s.value for s in sources))


def _require(deal: Deal, step: str) -> None:
    sources, _ = TRANSITIONS[step]
    if deal.stage not in sources:
        raise IllegalTransition(step, deal.stage.value, tuple(s.value for s in sources))


def _reached(stage: Stage, target: Stage) -> bool:
    if target in HAPPY_PATH and stage in HAPPY_PATH:
        return HAPPY_PATH.index(stage) >= HAPPY_PATH.index(target)
    return stage is target


def _move(tx: Tx, deal: Deal, stage: Stage) -> None:
    deal.stage, deal.stage_changed_at = stage, tx.now
    follow = PIPELINE.get(stage)
    if follow is not None:
        key = f"pipeline:{deal.id}:{follow}:{deal.quote.current_version}"
        tx.then(PIPELINE_STEPS[follow], deal.id, queue=lambda: tx.enqueue(
            "pipeline.step", {"step": follow, "deal_id": deal.id}, key=key, deal_id=deal.id))


def announce(tx: Tx, deal: Deal, kind: str, text: str, *, actor: str = "closeloop", **data: Any) -> str:
    """Append to the deal's timeline and post the same line to its Slack thread;
    returns the event's uid."""
    uid = tx.record(kind, deal_id=deal.id, customer_id=deal.customer_id, actor=actor, **data)
    tx.enqueue("slack.deal_thread", {"deal_id": deal.id, "event": uid, "kind": kind, "text": text, "data": data},
               key=f"slack.deal_thread:{uid}", deal_id=deal.id)
    return uid


def _ask_approval_if_needed(tx: Tx, deal: Deal, version: QuoteVersion) -> None:
    if version.approval is not Approval.PENDING:
        return
    limit = tx.policy.discount_approval_bp / 100
    announce(tx, deal, "discount.approval_requested",
             f"{deal.quote.number} v{version.version} has a {version.discount_bp / 100:g} % discount, above the "
             f"{limit:g} % policy: a manager must approve it before it is sent",
             quote=deal.quote.number, version=version.version, discount_bp=version.discount_bp)


def _require_approval(deal: Deal, version: QuoteVersion) -> None:
    number = f"{deal.quote.number} v{version.version}"
    if version.approval is Approval.PENDING:
        raise InvalidInput(f"{number} has a {version.discount_bp / 100:g} % discount that a manager "
                           "has not approved yet; it cannot be sent before approval")
    if version.approval is Approval.REJECTED:
        raise InvalidInput(f"the discount on {number} was rejected by {version.approval_by}; revise the quote")


def _end_quote(tx: Tx, deal_id: int, step: str, kind: str, verb: str, reason: str, actor: str) -> Done:
    deal = load_deal(tx, deal_id)
    if not _begin(deal, step):
        return Done.ALREADY
    if not reason.strip():
        raise InvalidInput(f"say why the quote is {verb}")
    _withdraw_envelopes(tx, deal, reason=reason)
    _move(tx, deal, TRANSITIONS[step][1])
    announce(tx, deal, kind, f"Quote {deal.quote.number} {verb}: {reason}", actor=actor,
              quote=deal.quote.number, reason=reason)
    return Done.ACTED


_OPEN_ENVELOPES = (EnvelopeStatus.REQUESTED, EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED)


def _open_envelopes(tx: Tx, deal: Deal) -> list[SignatureEnvelope]:
    return list(tx.session.scalars(select(SignatureEnvelope).where(
        SignatureEnvelope.deal_id == deal.id, SignatureEnvelope.status.in_(_OPEN_ENVELOPES))))


def _withdraw_envelopes(tx: Tx, deal: Deal, *, reason: str) -> None:
    for envelope in _open_envelopes(tx, deal):
        envelope.status, envelope.status_changed_at = EnvelopeStatus.VOIDED, tx.now
        tx.enqueue("esign.void", {"envelope_id": envelope.id, "reason": reason},
                   key=f"esign.void:{envelope.id}", deal_id=deal.id)


def _new_version(tx: Tx, quote: Quote, number: int, lines: list[LineRequest], discount_bp: int,
                 valid_days: int | None, payment_terms_days: int | None, *, key: str | None = None) -> QuoteVersion:
    if not lines:
        raise InvalidInput("a quote needs at least one line")
    check_basis_points(discount_bp, "discount")
    valid_days = tx.policy.quote_valid_days if valid_days is None else valid_days
    terms = tx.policy.payment_terms_days if payment_terms_days is None else payment_terms_days
    if not 1 <= valid_days <= 365:
        raise InvalidInput("validity must be between 1 and 365 days")
    if not 0 <= terms <= 365:
        raise InvalidInput("payment terms must be between 0 and 365 days")
    version = QuoteVersion(version=number, discount_bp=discount_bp, payment_terms_days=terms,
                           valid_until=today(tx) + timedelta(days=valid_days), net=0, tax=0,
                           content_hash="", origin_key=key or f"{quote.number}:v{number}",
                           created_at=tx.now)
    for position, request in enumerate(lines, start=1):
        version.lines.append(_price_line(tx, quote.currency, position, request, discount_bp))
    totals = document_totals(quote.currency, ((l.net, l.tax_rate_bp) for l in version.lines))
    version.net, version.tax = totals.net, totals.tax
    version.approval = Approval.PENDING if discount_bp > tx.policy.discount_approval_bp else Approval.NOT_NEEDED
    version.content_hash = _content_hash(quote, version)
    quote.versions.append(version)
    return version


def _price_line(tx: Tx, currency: str, position: int, request: LineRequest, discount_bp: int) -> QuoteLine:
    sku = tx.session.scalar(select(Sku).where(Sku.code == request.sku))
    if sku is None or not sku.active:
        raise InvalidInput(f"line {position}: there is no SKU '{request.sku}' in the catalog")
    quantity = check_quantity(request.quantity)
    if sku.licensable and quantity != quantity.to_integral_value():
        raise InvalidInput(f"line {position}: {sku.code} is licensed per {sku.unit}; "
                           f"{quantity} is not a whole number")
    unit_amount = request.unit_amount if request.unit_amount is not None else sku.price_in(currency)
    if unit_amount is None:
        priced = ", ".join(p.currency for p in sku.prices) or "no currency"
        raise InvalidInput(f"line {position}: {sku.code} has no {currency} price (priced in {priced}); "
                           "give a price or quote in another currency")
    if type(unit_amount) is not int or unit_amount < 0:
        raise InvalidInput(f"line {position}: price must be a non-negative amount")
    return QuoteLine(position=position, sku=sku, sku_id=sku.id, description=request.description or sku.name,
                     quantity=quantity, unit_amount=unit_amount, tax_rate_bp=sku.tax_rate_bp,
                     net=line_net(unit_amount, quantity, discount_bp))


def _content_hash(quote: Quote, version: QuoteVersion) -> str:
    """A fingerprint of what the customer is asked to sign, printed on the PDF."""
    content = {
        "quote": quote.number, "version": version.version, "currency": quote.currency,
        "discount_bp": version.discount_bp, "valid_until": version.valid_until.isoformat(),
        "payment_terms_days": version.payment_terms_days, "net": version.net, "tax": version.tax,
        "lines": [[l.position, l.sku.code, l.description, format(l.quantity, "f"), l.unit_amount,
                   l.tax_rate_bp, l.net] for l in version.lines],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _finalize(tx: Tx, invoice: Invoice) -> None:
    totals = document_totals(invoice.currency, ((l.net, l.tax_rate_bp) for l in invoice.lines))
    invoice.net, invoice.tax = totals.net, totals.tax
    day = today(tx)
    series = tx.policy.invoice_series.format(year=day.year)
    invoice.series = series
    invoice.sequence = tx.next_number(series)
    invoice.number = f"{series}-{invoice.sequence:06d}"
    invoice.status = InvoiceStatus.ISSUED
    invoice.issued_at = tx.now
    invoice.due_on = day + timedelta(days=invoice.payment_terms_days)


# --- the process in two tables ------------------------------------------------------

# step -> (stages it may start from, stage it leaves the deal in)
TRANSITIONS: dict[str, tuple[tuple[Stage, ...], Stage]] = {
    "send_quote": ((Stage.QUOTED,), Stage.SENT),
    "revise_quote": ((Stage.QUOTED, Stage.SENT), Stage.QUOTED),
    "record_signature": ((Stage.SENT,), Stage.SIGNED),
    "win_deal": ((Stage.SIGNED,), Stage.WON),
    "issue_invoice": ((Stage.WON,), Stage.INVOICED),
    "issue_license": ((Stage.INVOICED,), Stage.LICENSED),
    "start_billing": ((Stage.LICENSED,), Stage.BILLING_ACTIVE),
    "void_quote": ((Stage.QUOTED, Stage.SENT), Stage.VOID),
    "decline_quote": ((Stage.SENT,), Stage.DECLINED),
    "expire_quote": ((Stage.QUOTED, Stage.SENT), Stage.EXPIRED),
}

# The pipeline: when a deal reaches a stage, this step follows on its own (via the outbox).
PIPELINE: dict[Stage, str] = {
    Stage.SIGNED: "win_deal",
    Stage.WON: "issue_invoice",
    Stage.INVOICED: "issue_license",
    Stage.LICENSED: "start_billing",
}

# Steps the pipeline may run by name (only ids cross process boundaries).
PIPELINE_STEPS = {"win_deal": win_deal, "issue_invoice": issue_invoice,
                  "issue_license": issue_license, "start_billing": start_billing}
