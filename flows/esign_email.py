"""Signing by email, on the ledger: the quote emailed to the signer for signature (the
`esign.send` of an envelope whose provider is "email"), and the email telling the
customer what to fix in a returned copy the verifier did not accept. No mail or PDF
code here: the adapters render the PDF and the texts; these steps queue the email."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flows.deals import EnvelopeStatus, SignatureEnvelope
from flows.errors import InvalidInput
from flows.ledger import Tx
from flows.mail import InboundMail, queue_email
from flows.parties import ContactRole
from flows.steps import Done, announce, load_deal


def email_quote(tx: Tx, envelope_id: int, *, filename: str, path: str, domain: str) -> Done:
    """Email the quote PDF (rendered to `path`) to the envelope's signer; the mailer's
    Reply-To carries the deal's token, so the signed copy finds its deal."""
    envelope = tx.get(SignatureEnvelope, envelope_id)
    deal = load_deal(tx, envelope.deal_id)
    envelope = tx.get(SignatureEnvelope, envelope.id)
    if envelope.provider != "email":
        raise InvalidInput(f"envelope {envelope.id} is signed by {envelope.provider}, not by email")
    if envelope.status is not EnvelopeStatus.REQUESTED:
        return Done.ALREADY  # emailed already, or withdrawn before it left
    version = envelope.version
    signer = deal.customer.contact(ContactRole.SIGNER)
    context = {"name": signer.name if signer else "", "number": deal.quote.number, "version": version.version,
               "amount_minor": version.gross, "currency": deal.currency,
               "valid_until": version.valid_until.isoformat()}
    message_id = queue_email(tx, key=f"esign.email:{envelope.id}", deal_id=deal.id, to=[envelope.signer_email],
                             template="quote", locale=deal.customer.language, subject="", context=context,
                             domain=domain, attachments=({"filename": filename, "content_type": "application/pdf",
                                                          "path": path},))
    envelope.status, envelope.status_changed_at, envelope.external_id = EnvelopeStatus.SENT, tx.now, message_id
    announce(tx, deal, "esign.quote_emailed", f"Quote {deal.quote.number} v{version.version} emailed to "
             f"{envelope.signer_email} for signature (reply with the signed PDF)", quote=deal.quote.number,
             version=version.version, message_id=message_id, to=envelope.signer_email)
    return Done.ACTED


def email_rejection(tx: Tx, payload: dict[str, Any], *, key: str, subject: str, intro: str, domain: str) -> Done:
    """The `esign.rejection_email` (see flows.esign.record_returned_copy): the verifier's
    reasons emailed to the customer, in their thread when we have mail from them."""
    deal = load_deal(tx, int(payload["deal_id"]))
    to = payload.get("to") or None
    last = tx.session.scalar(select(InboundMail).where(
        InboundMail.deal_id == deal.id, InboundMail.from_address.is_not(None)).order_by(InboundMail.id.desc()))
    if to is None and last is not None:
        to = last.from_address
    if to is None:
        raise InvalidInput(f"deal {deal.reference} has no signer address to send the rejection to")
    signer = deal.customer.contact(ContactRole.SIGNER)
    queue_email(tx, key=f"esign.rejection:{key}", deal_id=deal.id, to=[str(to)], template="quote_rejected",
                locale=str(payload.get("locale") or deal.customer.language), subject=subject, domain=domain,
                context={"name": signer.name if signer else "", "intro": intro,
                         "reasons": [str(r) for r in payload.get("reasons") or []]},
                in_reply_to=last.message_id if last else None, references=(last.message_id,) if last else ())
    return Done.ACTED
