"""The relay's side of DocuSign: the `esign.send`, `esign.void`, `esign.remind` and
`esign.connect_event` outbox kinds, and the reconciler that polls envelopes whose
Connect notice never came.

Send is safe to repeat: the intent (our key) is committed before the create call,
and a repeat looks the key up in DocuSign before creating anything, so a crash
between DocuSign's answer and our commit never yields a second envelope."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from adapters.backoff import Backoff
from adapters.docusign_esign import DocuSign, DocuSignUnavailable, EnvelopeRequest
from adapters.esign_ports import QuoteDocument, SignedQuoteCheck
from flows.errors import LedgerError
from flows.esign import (CREATING, Seen, begin_send, envelopes_to_poll, observe_status, record_completion,
                         record_created, void_target)
from flows.ledger import Ledger
from flows.outbox import Delivery, PermanentFailure, RetryAfter
from parsers.docusign_connect import docusign_time

log = logging.getLogger("closeloop.docusign")


@dataclass
class DocuSignRelay:
    ledger: Ledger
    docusign: DocuSign
    document: QuoteDocument
    check: SignedQuoteCheck
    documents_dir: Path
    reconcile_after: timedelta = timedelta(minutes=30)
    backoff: Backoff = field(default_factory=lambda: Backoff())

    def send(self, delivery: Delivery) -> None:
        envelope_id = int(delivery.payload["envelope_id"])
        order = self._step(begin_send, envelope_id)
        if order is None:
            return  # sent already, or withdrawn before it left
        found = None
        if order.state == CREATING:  # a previous attempt may have created it before failing to record it
            since = self.ledger.clock.now() - timedelta(days=30)
            found = self.docusign.find_by_key(order.key, since)
        if found is not None:
            external_id = found.envelope_id
        else:
            pdf = self.document.render_quote_pdf(order.deal_id, order.version)
            external_id = self.docusign.create(EnvelopeRequest(
                key=order.key, quote=order.quote, version=order.version, customer=order.customer,
                language=order.language, signer_email=order.signer_email, signer_name=order.signer_name, pdf=pdf))
        self._step(record_created, envelope_id, external_id=external_id, found=found is not None)

    def void(self, delivery: Delivery) -> None:
        external_id, key = self._step(void_target, int(delivery.payload["envelope_id"]))
        if external_id is None and key is not None:
            found = self.docusign.find_by_key(key, self.ledger.clock.now() - timedelta(days=30))
            external_id = found.envelope_id if found and found.status != "voided" else None
        if external_id is None:
            return  # never reached DocuSign: nothing to void
        self.docusign.void(external_id, str(delivery.payload.get("reason") or "withdrawn"))

    def remind(self, delivery: Delivery) -> None:
        self.docusign.resend(str(delivery.payload["external_id"]))

    def connect_event(self, delivery: Delivery) -> None:
        payload = delivery.payload
        self.apply(str(payload["envelope_id"]), str(payload["status"]), docusign_time(str(payload["status_at"])))

    def apply(self, external_id: str, status: str, at: datetime) -> Seen:
        """One status from DocuSign (Connect or the poll): record it; a completed
        envelope has its documents fetched, stored and verified first."""
        seen = self._step(observe_status, external_id=external_id, status=status, at=at)
        if seen is not Seen.NEEDS_DOCUMENTS:
            return seen
        combined, certificate = self.docusign.documents(external_id)
        folder = self.documents_dir / "signed"
        folder.mkdir(parents=True, exist_ok=True)
        signed_path, certificate_path = folder / f"{external_id}.pdf", folder / f"{external_id}.certificate.pdf"
        signed_path.write_bytes(combined)
        certificate_path.write_bytes(certificate)
        deal_id = self._deal_of(external_id)
        verdict = self.check.verify(combined, deal_id)
        self._step(record_completion, external_id=external_id, at=at, signed_pdf=str(signed_path),
                   certificate_pdf=str(certificate_path), verdict=verdict.status, reasons=list(verdict.reasons),
                   signer=verdict.signer, evidence={"sha256": hashlib.sha256(combined).hexdigest(),
                                                    "certificate_sha256": hashlib.sha256(certificate).hexdigest(),
                                                    "details": verdict.details})
        return Seen.APPLIED

    def reconcile(self) -> dict[str, int]:
        """Poll DocuSign for envelopes still open after `reconcile_after`; returns counts.
        When DocuSign answers 429 or 5xx the pass stops and the next ones do not call it
        until the backoff has passed (then `deferred` and `retry_in` seconds are set)."""
        now = self.ledger.clock.now()
        waiting = self.backoff.remaining(now)
        if waiting is not None:
            return {"polled": 0, "changed": 0, "deferred": 1, "retry_in": int(waiting.total_seconds())}
        pending = self.ledger.read(envelopes_to_poll, now, self.reconcile_after)
        counts = {"polled": 0, "changed": 0}
        for start in range(0, len(pending), 100):
            batch = pending[start:start + 100]
            try:
                found = self.docusign.statuses(batch)
            except (RetryAfter, DocuSignUnavailable) as error:
                told = error.seconds if isinstance(error, RetryAfter) else error.retry_after
                delay = self.backoff.failed(self.ledger.clock.now(), told)
                log.warning("DocuSign is not answering the status poll (%s): next poll in %d s", error,
                            delay.total_seconds())
                return {**counts, "deferred": 1, "retry_in": int(delay.total_seconds())}
            self.backoff.succeeded()
            counts["polled"] += len(batch)
            for envelope in found:
                if self.apply(envelope.envelope_id, envelope.status, envelope.status_at) is Seen.APPLIED:
                    counts["changed"] += 1
        return counts

    def _deal_of(self, external_id: str) -> int:
        from sqlalchemy import select

        from flows.deals import SignatureEnvelope
        return self.ledger.read(lambda s: s.scalar(
            select(SignatureEnvelope.deal_id).where(SignatureEnvelope.external_id == external_id)))

    def _step(self, step, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return self.ledger.run(step, *args, **kwargs)
        except LedgerError as error:  # the ledger refused: retrying cannot change its mind
            raise PermanentFailure(str(error)) from error
