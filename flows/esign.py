"""DocuSign envelopes on the ledger: the intent recorded before the provider is called,
Connect notices claimed once, status changes applied in order, completion with the
verifier's verdict. No DocuSign code here: the adapter calls these steps.

DocuSign has no idempotency key, so `begin_send` commits the intent (state
"creating" and our key, `closeloop_key` = quote number and version) before the
adapter creates anything; a retry finds the envelope by that key in DocuSign's
custom field instead of creating a second one."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from flows.base import Base, Id
from flows.deals import Deal, EnvelopeStatus, SignatureEnvelope, Stage
from flows.errors import InvalidInput
from flows.ledger import Tx
from flows.parties import ContactRole
from flows.steps import Done, announce, decline_quote, load_deal, record_signature, void_quote

CREATING = "creating"  # intent committed; DocuSign may or may not hold the envelope yet
CREATED = "created"    # DocuSign's envelope id is recorded


class DocuSignEnvelope(Base):
    """What DocuSign needs beyond the provider-neutral signature envelope."""

    __tablename__ = "docusign_envelopes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    signature_envelope_id: Mapped[int] = mapped_column(ForeignKey("signature_envelopes.id"), unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    closeloop_key: Mapped[str] = mapped_column(String(80), unique=True)  # the envelope custom field
    state: Mapped[str] = mapped_column(String(16))
    provider_status: Mapped[str | None] = mapped_column(String(16))  # the last status DocuSign reported
    provider_status_at: Mapped[datetime | None]  # DocuSign's time of that status (ordering)
    signed_pdf: Mapped[str | None] = mapped_column(String(400))
    certificate_pdf: Mapped[str | None] = mapped_column(String(400))
    verdict: Mapped[str | None] = mapped_column(String(16))  # accepted / rejected / needs_review
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class SendOrder:
    """Everything the adapter needs to create (or find) the envelope; plain data."""

    envelope_id: int
    deal_id: int
    key: str
    state: str
    external_id: str | None
    quote: str
    version: int
    signer_email: str
    signer_name: str
    language: str
    customer: str


class Seen(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"            # older than, or equal to, what we know: changes nothing
    UNKNOWN = "unknown"        # not one of our envelopes
    NEEDS_DOCUMENTS = "needs documents"  # completed: fetch and verify the signed PDF first


# DocuSign's envelope statuses, by how far along they are; the last four end it.
_RANK = {"created": 0, "sent": 1, "delivered": 2, "signed": 2,
         "completed": 3, "declined": 3, "voided": 3, "expired": 3}
_ENDED = (EnvelopeStatus.COMPLETED, EnvelopeStatus.DECLINED, EnvelopeStatus.VOIDED, EnvelopeStatus.EXPIRED)
_OPEN = (EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED)


def closeloop_key(quote: str, version: int) -> str:
    return f"{quote}:v{version}"


def begin_send(tx: Tx, envelope_id: int) -> SendOrder | None:
    """Record the intent to create the DocuSign envelope; None when there is nothing to
    send any more (already sent, or withdrawn before it left)."""
    envelope = tx.get(SignatureEnvelope, envelope_id)
    deal = load_deal(tx, envelope.deal_id)
    if envelope.provider != "docusign":
        raise InvalidInput(f"envelope {envelope.id} is signed by {envelope.provider}, not DocuSign")
    row = _row(tx.session, envelope.id)
    if envelope.status is not EnvelopeStatus.REQUESTED or (row is not None and row.state == CREATED):
        return None
    version = envelope.version
    if row is None:
        row = DocuSignEnvelope(signature_envelope_id=envelope.id, deal_id=deal.id, state=CREATING,
                               closeloop_key=closeloop_key(deal.quote.number, version.version), created_at=tx.now)
        tx.session.add(row)
        tx.record("esign.creating", deal_id=deal.id, customer_id=deal.customer_id, key=row.closeloop_key)
    signer = deal.customer.contact(ContactRole.SIGNER)
    return SendOrder(envelope.id, deal.id, row.closeloop_key, row.state, envelope.external_id, deal.quote.number,
                     version.version, envelope.signer_email, signer.name if signer else envelope.signer_email,
                     deal.customer.language, deal.customer.name)


def record_created(tx: Tx, envelope_id: int, *, external_id: str, found: bool) -> Done:
    """DocuSign holds the envelope (created now, or found by our key on a retry)."""
    envelope = tx.get(SignatureEnvelope, envelope_id)
    row = _row(tx.session, envelope.id)
    if row is None:
        raise InvalidInput(f"envelope {envelope.id} was never begun")
    if row.state == CREATED:
        return Done.ALREADY
    row.state, envelope.external_id = CREATED, external_id
    if envelope.status is EnvelopeStatus.REQUESTED:
        envelope.status, envelope.status_changed_at = EnvelopeStatus.SENT, tx.now
    elif envelope.status is EnvelopeStatus.VOIDED:  # withdrawn while it was being created: void it there too
        tx.enqueue("esign.void", {"envelope_id": envelope.id, "reason": "withdrawn while it was being sent"},
                   key=f"esign.void:{envelope.id}:late", deal_id=envelope.deal_id)
    tx.record("esign.envelope_created", deal_id=envelope.deal_id, customer_id=None, envelope=external_id,
              key=row.closeloop_key, found_on_retry=found)
    return Done.ACTED


def void_target(tx: Tx, envelope_id: int) -> tuple[str | None, str | None]:
    """(DocuSign envelope id, our key) of an envelope to void; the key is given when the
    id is not known yet (the create may have happened without being recorded)."""
    envelope = tx.get(SignatureEnvelope, envelope_id, lock=False)
    row = _row(tx.session, envelope.id)
    if row is None:
        return envelope.external_id, None
    return envelope.external_id, None if envelope.external_id else row.closeloop_key


def observe_status(tx: Tx, *, external_id: str, status: str, at: datetime) -> Seen:
    """Apply a status DocuSign reported (Connect or polling). A status older than, or as
    far along as, what we know changes nothing; completed waits for its documents."""
    envelope = tx.session.scalar(select(SignatureEnvelope).where(SignatureEnvelope.external_id == external_id))
    if envelope is None or status not in _RANK:
        tx.record("esign.notice_ignored", deal_id=envelope.deal_id if envelope else None, customer_id=None,
                  envelope=external_id, status=status, why="unknown envelope" if envelope is None else "status")
        return Seen.UNKNOWN
    deal = load_deal(tx, envelope.deal_id)
    envelope = tx.get(SignatureEnvelope, envelope.id)
    row = _row(tx.session, envelope.id)
    if envelope.status in _ENDED or (row and row.provider_status and _RANK[status] <= _RANK[row.provider_status]
                                     and status != "completed"):
        return Seen.STALE
    if status == "completed":
        return Seen.STALE if row and row.verdict else Seen.NEEDS_DOCUMENTS
    if row is not None:
        row.provider_status, row.provider_status_at = status, at
    envelope.status_changed_at = tx.now
    if status in ("sent", "delivered", "signed"):
        envelope.status = EnvelopeStatus.DELIVERED if status != "sent" else EnvelopeStatus.SENT
        tx.record(f"esign.{status}", deal_id=deal.id, customer_id=deal.customer_id, envelope=external_id)
    elif status == "declined":
        envelope.status = EnvelopeStatus.DECLINED
        _ended(tx, deal, "declined", f"{envelope.signer_email} declined to sign {deal.quote.number} in DocuSign")
        if deal.stage is Stage.SENT:
            decline_quote(tx, deal.id, reason="declined in DocuSign")
    elif status == "voided":
        envelope.status = EnvelopeStatus.VOIDED
        _ended(tx, deal, "voided", f"The DocuSign envelope for {deal.quote.number} was voided in DocuSign")
        if deal.stage is Stage.SENT:
            void_quote(tx, deal.id, reason="voided in DocuSign", actor="docusign")
    elif status == "expired":
        envelope.status = EnvelopeStatus.EXPIRED
        _ended(tx, deal, "expired", f"The DocuSign envelope for {deal.quote.number} expired unsigned: "
                                    "resend or revise the quote")
    return Seen.APPLIED


def record_completion(tx: Tx, *, external_id: str, at: datetime, signed_pdf: str, certificate_pdf: str,
                      verdict: str, reasons: list[str], signer: str | None, evidence: dict[str, Any]) -> Done:
    """The signed documents are stored and verified: an accepted verdict signs the quote
    (and the pipeline closes the deal); anything else goes to the rep with the reasons."""
    envelope = tx.session.scalar(select(SignatureEnvelope).where(SignatureEnvelope.external_id == external_id))
    if envelope is None:
        raise InvalidInput(f"no envelope {external_id}")
    deal = load_deal(tx, envelope.deal_id)
    envelope = tx.get(SignatureEnvelope, envelope.id)
    row = _row(tx.session, envelope.id)
    if row is None or row.verdict is not None or envelope.status in _ENDED:
        return Done.ALREADY
    row.provider_status, row.provider_status_at = "completed", at
    row.signed_pdf, row.certificate_pdf, row.verdict = signed_pdf, certificate_pdf, verdict
    evidence = {**evidence, "method": "docusign", "envelope": external_id, "signed_pdf": signed_pdf,
                "certificate_pdf": certificate_pdf, "verdict": verdict}
    if verdict == "accepted" and deal.stage is Stage.SENT:
        record_signature(tx, deal.id, version=envelope.version.version, signer=signer or envelope.signer_email,
                         evidence=evidence)
        return Done.ACTED
    announce(tx, deal, "esign.signature_not_accepted",
             f"DocuSign says {deal.quote.number} is signed, but the signed PDF was not accepted ({verdict}): "
             + ("; ".join(reasons) or "no reason given") + ". Check it before the deal moves on.",
             envelope=external_id, verdict=verdict, reasons=reasons, signed_pdf=signed_pdf)
    return Done.ACTED


def request_reminder(tx: Tx, deal_id: int, *, actor: str, key: str) -> Done:
    """A rep asks DocuSign to send the open envelope's email again (remind / resend)."""
    deal = load_deal(tx, deal_id)
    envelope = tx.session.scalar(select(SignatureEnvelope).where(
        SignatureEnvelope.deal_id == deal.id, SignatureEnvelope.provider == "docusign",
        SignatureEnvelope.status.in_(_OPEN), SignatureEnvelope.external_id.is_not(None)))
    if envelope is None:
        raise InvalidInput(f"{deal.quote.number} has no DocuSign envelope waiting for a signature")
    outbox_key = f"esign.remind:{envelope.id}:{key}"
    if _already_queued(tx.session, outbox_key):
        return Done.ALREADY
    row = _row(tx.session, envelope.id)
    if row is not None:
        row.reminders += 1
    tx.enqueue("esign.remind", {"envelope_id": envelope.id, "external_id": envelope.external_id},
               key=outbox_key, deal_id=deal.id)
    announce(tx, deal, "esign.reminder_requested", f"{actor} asked DocuSign to remind {envelope.signer_email} "
             f"to sign {deal.quote.number}", actor=actor, envelope=envelope.external_id)
    return Done.ACTED


def envelopes_to_poll(session: Session, now: datetime, older_than: timedelta, limit: int = 500) -> list[str]:
    """DocuSign envelopes still waiting for a signature longer than `older_than`, or
    completed but never verified: the reconciler asks DocuSign about them."""
    rows = session.scalars(
        select(SignatureEnvelope.external_id)
        .join(DocuSignEnvelope, DocuSignEnvelope.signature_envelope_id == SignatureEnvelope.id)
        .where(SignatureEnvelope.provider == "docusign", SignatureEnvelope.status.in_(_OPEN),
               SignatureEnvelope.external_id.is_not(None), DocuSignEnvelope.verdict.is_(None),
               SignatureEnvelope.status_changed_at <= now - older_than)
        .order_by(SignatureEnvelope.status_changed_at).limit(limit))
    return [r for r in rows if r]


def _ended(tx: Tx, deal: Deal, how: str, text: str) -> None:
    # "esign.declined" / "esign.voided" / "esign.expired": what gap rules look for.
    announce(tx, deal, f"esign.{how}", text, quote=deal.quote.number)


def _row(session: Session, envelope_id: int) -> DocuSignEnvelope | None:
    return session.scalar(select(DocuSignEnvelope).where(DocuSignEnvelope.signature_envelope_id == envelope_id))


def _already_queued(session: Session, key: str) -> bool:
    from flows.outbox import OutboxMessage
    return session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)) is not None


# --- signing by email (without DocuSign) ----------------------------------------------------

def record_returned_copy(tx: Tx, deal_id: int, *, key: str, verdict: str, reasons: list[str], signer: str | None,
                         evidence: dict[str, Any], inbound_id: int | None = None) -> Done:
    """A signed copy the customer emailed back, with the verifier's verdict. Accepted:
    the quote is signed (and the deal closes). Otherwise the customer is asked, by
    email, to fix exactly what the verifier listed, and the deal thread is told.
    `key` names the returned copy (e.g. its attachment id): a replay changes nothing."""
    deal = load_deal(tx, deal_id)
    if _already_queued(tx.session, f"esign.rejection_email:{key}") or deal.stage is not Stage.SENT:
        return Done.ALREADY
    envelope = tx.session.scalar(select(SignatureEnvelope).where(
        SignatureEnvelope.deal_id == deal.id, SignatureEnvelope.status.in_((EnvelopeStatus.REQUESTED, *_OPEN))))
    evidence = {**evidence, "method": "email", "verdict": verdict, "returned": key}
    if verdict == "accepted":
        record_signature(tx, deal.id, version=deal.quote.current_version,
                         signer=signer or (envelope.signer_email if envelope else "customer"), evidence=evidence)
        return Done.ACTED
    to = envelope.signer_email if envelope else None
    tx.enqueue("esign.rejection_email", {"deal_id": deal.id, "to": to, "locale": deal.customer.language,
                                         "quote": deal.quote.number, "version": deal.quote.current_version,
                                         "reasons": reasons, "inbound_id": inbound_id},
               key=f"esign.rejection_email:{key}", deal_id=deal.id)
    announce(tx, deal, "esign.returned_copy_rejected",
             f"The signed copy of {deal.quote.number} sent back by email was not accepted ({verdict}): "
             + ("; ".join(reasons) or "no reason given") + f". {to or 'The customer'} was asked to fix it.",
             verdict=verdict, reasons=reasons, evidence=evidence)
    return Done.ACTED
