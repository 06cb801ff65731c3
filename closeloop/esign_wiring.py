"""E-signature wiring: the two document ports (the real quote renderer and the signed-
quote verifier, run in the PDF sandbox), the DocuSign relay when DocuSign is
configured, signing by email (the quote emailed, the "what to fix" email), their
outbox routes, and the reconciler's tick in the embedded process.

The ports are plain attributes of Services, read at call time, so a test may swap
one: `services.signed_quote_check = ...`."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from adapters.email_signing import EmailSigning
from adapters.esign_ports import SignatureVerdict
from closeloop.documents import company_from, issued_quote, quote_pdf, verify_returned_quote
from closeloop.relay import Route
from flows.deals import Deal, SignatureEnvelope
from flows.documents import quote_document
from flows.errors import LedgerError
from flows.esign_email import email_quote
from flows.ledger import Ledger
from flows.outbox import Delivery, PermanentFailure, RetryPolicy
from parsers.pdf_errors import PdfError

if TYPE_CHECKING:
    from closeloop.bootstrap import Services

log = logging.getLogger("closeloop.esign")


def attach(services: Services) -> None:
    """Give the services their document ports and, when configured, the DocuSign relay."""
    settings = services.settings
    services.quote_document = RenderedQuotes(services.ledger, company_from(settings))
    services.signed_quote_check = VerifiedQuotes(services.ledger)
    services.email_signing = EmailSigning(services.ledger, _CheckOf(services))
    if settings.docusign_enabled:  # the SDK is imported only when it is used (it takes half a second)
        from adapters.docusign_esign import DocuSign, config_from_settings
        from adapters.docusign_outbox import DocuSignRelay
        services.esign = DocuSignRelay(
            services.ledger, DocuSign(config_from_settings(settings)), _QuoteDocumentOf(services),
            _CheckOf(services), settings.documents_dir,
            reconcile_after=timedelta(minutes=settings.esign_reconcile_minutes))


class RenderedQuotes:
    """The quote PDF a signer receives (docs-render): anchors /sn1/ /dt1/ /fn1/, QR, metadata."""

    def __init__(self, ledger: Ledger, company) -> None:  # type: ignore[no-untyped-def]
        self.ledger, self.company = ledger, company

    def render_quote_pdf(self, deal_id: int, version: int | None = None) -> bytes:
        number = self.ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
        return quote_pdf(self.ledger, self.company, number, version)


class VerifiedQuotes:
    """parsers/signed_quote.verify in the PDF sandbox, against the deal's current version,
    as the SignatureVerdict the e-signature steps record. A file the verifier cannot
    read is rejected with the reason the customer is told."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def verify(self, pdf: bytes, deal_id: int) -> SignatureVerdict:
        issued = self.ledger.read(lambda s: issued_quote(quote_document(s, s.get(Deal, deal_id).quote.number)))
        try:
            verdict = verify_returned_quote(pdf, issued)
        except PdfError as error:
            return SignatureVerdict("rejected", (error.message,), details={"error": error.code.value})
        return SignatureVerdict(verdict.status, tuple(r.text for r in verdict.reasons), verdict.signer, details={
            "quote": verdict.quote, "version": verdict.version, "signature": verdict.signature,
            "codes": [r.code for r in verdict.reasons], "notes": [n.text for n in verdict.notes]})


class EmailQuotes:
    """Signing by email: `esign.send` renders the quote PDF into the documents folder and
    queues the "quote" email with it attached. (The "what to fix" answer to a returned copy
    is `esign.rejection_email`, routed in closeloop/mail_wiring.py.)"""

    def __init__(self, services: Services) -> None:
        self.services = services

    def send(self, delivery: Delivery) -> None:
        ledger, settings = self.services.ledger, self.services.settings
        envelope_id = int(delivery.payload["envelope_id"])
        deal_id, version = ledger.read(lambda s: _deal_and_version(s, envelope_id))
        number = ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
        pdf = self.services.quote_document.render_quote_pdf(deal_id, version)
        folder = settings.documents_dir / "quotes"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{number}-v{version}.pdf"
        partial = target.with_suffix(".pdf.part")
        partial.write_bytes(pdf)
        partial.replace(target)  # the mailer attaches it from here: whole or not at all
        _run(ledger, email_quote, envelope_id, filename=target.name, path=str(target.resolve()),
             domain=settings.mail_domain)



def _deal_and_version(session, envelope_id: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    envelope = session.get(SignatureEnvelope, envelope_id)
    if envelope is None:
        raise PermanentFailure(f"no signature envelope {envelope_id}")
    return envelope.deal_id, envelope.version.version


def _run(ledger: Ledger, step, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return ledger.run(step, *args, **kwargs)
    except LedgerError as error:  # the ledger refused: retrying cannot change its mind
        raise PermanentFailure(str(error)) from error


class _QuoteDocumentOf:
    """Reads the port from the services at call time, so a port swapped after build is used."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def render_quote_pdf(self, deal_id: int, version: int | None = None) -> bytes:
        return self.services.quote_document.render_quote_pdf(deal_id, version)


class _CheckOf:
    def __init__(self, services: Services) -> None:
        self.services = services

    def verify(self, pdf: bytes, deal_id: int):  # type: ignore[no-untyped-def]
        return self.services.signed_quote_check.verify(pdf, deal_id)


def esign_routes(services: Services, retry: RetryPolicy, table: dict[str, Route]) -> None:
    """esign.* kinds: envelopes for the email provider are emailed (`email.send`, SMTP
    or its file sink); DocuSign ones go to DocuSign when configured, else keep the
    file sink they had."""
    relay = services.esign
    by_email = EmailQuotes(services)
    fallback_send, fallback_void = table["esign.send"].handler, table["esign.void"].handler

    def by_provider(docusign, email):  # type: ignore[no-untyped-def]
        def handle(delivery: Delivery) -> None:
            provider = services.ledger.read(lambda s: s.get(SignatureEnvelope, int(delivery.payload["envelope_id"]))
                                            .provider)
            (docusign if provider == "docusign" else email)(delivery)
        return handle

    # an emailed quote cannot be recalled: the note is kept, and a signed copy of a void quote is refused
    email_void = services.sink.handler("the quote was emailed: nothing to recall (a signed copy of a void quote "
                                       "is not accepted)")
    table["esign.send"] = Route(by_provider(relay.send if relay else fallback_send, by_email.send), retry)
    table["esign.void"] = Route(by_provider(relay.void if relay else fallback_void, email_void), retry)
    if relay is None:
        return
    table["esign.remind"] = Route(relay.remind, retry)
    table["esign.connect_event"] = Route(relay.connect_event, retry)
