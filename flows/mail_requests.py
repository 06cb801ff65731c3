"""Emails other flows ask for, turned into `email.send` rows (flows.mail.queue_email):
the invoice with its PDF, esign's "what to fix" reply to a returned copy, gaps' reminder
to sign and check-in. Each is idempotent by its key; a missing recipient is a timeline
note (the gap rules find it), never an exception that the relay would retry."""
from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from sqlalchemy import select

from flows.deals import Deal
from flows.errors import NotFound
from flows.invoices import Invoice
from flows.ledger import Tx
from flows.mail import InboundMail, OutboundMail, _references_of, queue_email
from flows.parties import ContactRole, Customer
from flows.quotes import Quote
from flows.steps import Done, announce
from flows.timeline import Event


def _queued(tx: Tx, key: str) -> bool:
    return tx.session.scalar(select(OutboundMail.id).where(OutboundMail.key == key)) is not None


def _noted(tx: Tx, kind: str, key: str) -> bool:
    return any(e.data.get("key") == key for e in tx.session.scalars(select(Event).where(Event.kind == kind)))


def _contact(customer: Customer, *roles: ContactRole) -> tuple[str, str] | None:
    for role in roles:
        contact = customer.contact(role)
        if contact is not None:
            return contact.email, contact.name
    return None


def queue_invoice_email(tx: Tx, number: str, *, key: str, to: str | None, lookup: bool, language: str | None,
                        domain: str) -> Done:
    """The invoice email to the billing contact with the Factur-X PDF attached (rendered at
    send time). `lookup`: the payload named no recipient, so the customer's is used."""
    invoice = tx.session.scalar(select(Invoice).where(Invoice.number == number))
    if invoice is None:
        raise NotFound("invoice", number)
    customer = tx.get(Customer, invoice.customer_id, lock=False)
    name = customer.name
    if lookup and not to:
        found = _contact(customer, ContactRole.BILLING, ContactRole.SIGNER)
        to, name = found if found else (None, name)
    if not to:
        if _noted(tx, "invoice.no_billing_contact", key):
            return Done.ALREADY
        tx.record("invoice.no_billing_contact", deal_id=invoice.deal_id, customer_id=customer.id, invoice=number,
                  key=key, note=f"invoice {number} was not emailed: {customer.name} has no billing contact")
        return Done.ACTED
    if _queued(tx, key):
        return Done.ALREADY
    queue_email(tx, key=key, deal_id=invoice.deal_id, to=[to], template="invoice", locale=language or customer.language,
                subject="", domain=domain,
                context={"number": number, "customer": customer.name, "name": name, "amount_minor": invoice.gross,
                         "currency": invoice.currency, "due_on": invoice.due_on.isoformat() if invoice.due_on else ""},
                attachments=({"render": "invoice", "invoice": number, "filename": f"{number}.pdf",
                              "content_type": "application/pdf"},))
    return Done.ACTED  # the timeline hears of it as "mail.sent" (template invoice) when the mailer sent it


def queue_rejection_email(tx: Tx, payload: dict[str, Any], *, key: str, domain: str) -> Done:
    """esign's "what to fix" for a returned copy, answered in the customer's own thread
    (In-Reply-To the message that carried the copy, to its sender)."""
    if _queued(tx, key):
        return Done.ALREADY
    deal = tx.get(Deal, int(payload["deal_id"]), lock=False)
    inbound = tx.session.get(InboundMail, int(payload["inbound_id"])) if payload.get("inbound_id") else None
    if inbound is None:  # a copy that did not come by email: answer in the customer's latest thread, if any
        inbound = tx.session.scalar(select(InboundMail).where(
            InboundMail.deal_id == deal.id, InboundMail.from_address.is_not(None)).order_by(InboundMail.id.desc()))
    to = (inbound.from_address if inbound is not None else None) or payload.get("to")
    if not to:
        tx.record("esign.rejection_not_sent", deal_id=deal.id, customer_id=deal.customer_id, key=key,
                  note="no address to send the 'what to fix' email to")
        return Done.ACTED
    references: tuple[str, ...] = ()
    if inbound is not None:
        references = (*_references_of(tx.session, inbound), inbound.message_id)
    queue_email(tx, key=key, deal_id=deal.id, to=[to], template="signature_rejected",
                locale=str(payload.get("locale") or deal.customer.language), subject="", domain=domain,
                context={"quote": payload["quote"], "version": payload["version"], "reasons": payload["reasons"],
                         "customer": deal.customer.name},
                in_reply_to=inbound.message_id if inbound is not None else None, references=references)
    return Done.ACTED


def queue_gap_email(tx: Tx, payload: dict[str, Any], *, template: str, key: str, domain: str) -> Done:
    """A gap button's reminder to sign (`quote_reminder`) or check-in (`check_in`)."""
    if _queued(tx, key):
        return Done.ALREADY
    deal = tx.session.get(Deal, int(payload["deal_id"])) if payload.get("deal_id") else None
    customer_id = deal.customer_id if deal is not None else payload.get("customer_id")
    if customer_id is None:
        raise NotFound("customer of gap", payload.get("gap"))
    customer = tx.get(Customer, int(customer_id), lock=False)
    roles = (ContactRole.SIGNER, ContactRole.OTHER, ContactRole.BILLING)
    found = _contact(customer, *roles)
    if found is None:
        tx.record("mail.no_contact", deal_id=deal.id if deal else None, customer_id=customer.id, key=key,
                  note=f"{template} not sent: {customer.name} has no contact")
        return Done.ACTED
    context: dict[str, Any] = {"customer": customer.name, "name": found[1]}
    if template == "quote_reminder":
        quote = tx.session.scalar(select(Quote).where(Quote.deal_id == deal.id)) if deal else None
        if quote is None:
            raise NotFound("quote of deal", payload.get("deal_id"))
        version = quote.current
        context.update(quote=quote.number, version=quote.current_version, amount_minor=version.gross,
                       currency=quote.currency, valid_until=version.valid_until.isoformat())
    queue_email(tx, key=key, deal_id=deal.id if deal else None, to=[found[0]], template=template,
                locale=customer.language, subject="", domain=domain, context=context)
    if deal is not None:
        announce(tx, deal, f"mail.{template}_queued", f":envelope: {template.replace('_', ' ')} emailed to {found[0]}",
                 requested_by=payload.get("requested_by"))
    return Done.ACTED


def queue_statement_email(tx: Tx, payload: dict[str, Any], *, key: str, domain: str) -> Done:
    """Finance's "send statement": the statement of account for the last twelve months up
    to today (in the company's zone), as a PDF rendered at send time, to the billing
    contact (else the signer)."""
    if _queued(tx, key):
        return Done.ALREADY
    customer = tx.get(Customer, int(payload["customer_id"]), lock=False)
    found = _contact(customer, ContactRole.BILLING, ContactRole.SIGNER, ContactRole.OTHER)
    if found is None:
        tx.record("mail.no_contact", deal_id=None, customer_id=customer.id, key=key,
                  note=f"statement not sent: {customer.name} has no contact")
        return Done.ACTED
    end = tx.now.astimezone(ZoneInfo(tx.policy.timezone)).date()
    start = end - relativedelta(years=1) + timedelta(days=1)
    queue_email(tx, key=key, deal_id=None, to=[found[0]], template="statement", locale=customer.language,
                subject="", domain=domain, stream=f"customer:{customer.id}",
                context={"customer": customer.name, "name": found[1], "start": start.isoformat(),
                         "end": end.isoformat()},
                attachments=({"render": "statement", "customer_id": customer.id, "start": start.isoformat(),
                              "end": end.isoformat(), "filename": f"statement-{end.isoformat()}.pdf"},))
    tx.record("statement.queued", deal_id=None, customer_id=customer.id, to=found[0], start=start.isoformat(),
              end=end.isoformat())
    return Done.ACTED
