"""Signing by email, on the ledger: the quote emailed to the signer for signature (the
`esign.send` of an envelope whose provider is "email"), and the email telling the
customer what to fix in a returned copy the verifier did not accept. No mail or PDF
code here: the adapters render the PDF and the texts; these steps queue the email."""
from __future__ import annotations



from flows.deals import EnvelopeStatus, SignatureEnvelope
from flows.errors import InvalidInput
from flows.ledger import Tx
from flows.mail import queue_email
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

