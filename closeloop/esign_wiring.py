"""E-signature wiring: the two document ports, the DocuSign relay when DocuSign is
configured, its outbox routes, and the reconciler's tick in the embedded process.

The ports are plain attributes of Services so the lead (or a test) swaps in the real
quote renderer and signed-quote verifier: `services.quote_document = ...`."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from adapters.email_signing import EmailSigning
from adapters.esign_ports import MinimalQuotePdf, StructuralCheck
from closeloop.relay import Route
from flows.deals import SignatureEnvelope
from flows.outbox import Delivery, RetryPolicy

if TYPE_CHECKING:
    from closeloop.bootstrap import Services

log = logging.getLogger("closeloop.esign")


def attach(services: Services) -> None:
    """Give the services their document ports and, when configured, the DocuSign relay."""
    settings = services.settings
    services.quote_document = MinimalQuotePdf(services.ledger)
    services.signed_quote_check = StructuralCheck()
    services.email_signing = EmailSigning(services.ledger, _CheckOf(services))
    if settings.docusign_enabled:  # the SDK is imported only when it is used (it takes half a second)
        from adapters.docusign_esign import DocuSign, config_from_settings
        from adapters.docusign_outbox import DocuSignRelay
        services.esign = DocuSignRelay(
            services.ledger, DocuSign(config_from_settings(settings)), _QuoteDocumentOf(services),
            _CheckOf(services), settings.documents_dir,
            reconcile_after=timedelta(minutes=settings.esign_reconcile_minutes))


class _QuoteDocumentOf:
    """Reads the port from the services at call time, so a port swapped after build is used."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def render_quote_pdf(self, deal_id: int) -> bytes:
        return self.services.quote_document.render_quote_pdf(deal_id)


class _CheckOf:
    def __init__(self, services: Services) -> None:
        self.services = services

    def verify(self, pdf: bytes, deal_id: int):  # type: ignore[no-untyped-def]
        return self.services.signed_quote_check.verify(pdf, deal_id)


def esign_routes(services: Services, retry: RetryPolicy, table: dict[str, Route]) -> None:
    """esign.* kinds: DocuSign when configured. Envelopes for the email provider (and
    all of them without DocuSign) keep the route they had (the file sink), where the
    email path (`email.send`, the mail issue) takes over at merge."""
    relay = services.esign
    if relay is None:
        return
    fallback_send, fallback_void = table["esign.send"].handler, table["esign.void"].handler

    def by_provider(docusign, fallback):  # type: ignore[no-untyped-def]
        def handle(delivery: Delivery) -> None:
            provider = services.ledger.read(lambda s: s.get(SignatureEnvelope, int(delivery.payload["envelope_id"]))
                                            .provider)
            (docusign if provider == "docusign" else fallback)(delivery)
        return handle

    table["esign.send"] = Route(by_provider(relay.send, fallback_send), retry)
    table["esign.void"] = Route(by_provider(relay.void, fallback_void), retry)
    table["esign.remind"] = Route(relay.remind, retry)
    table["esign.connect_event"] = Route(relay.connect_event, retry)


def reconcile_ticker(services: Services, stop: threading.Event) -> threading.Thread | None:
    """The embedded process's clock for the reconciler (Celery beat takes over later)."""
    relay = services.esign
    if relay is None:
        return None

    def tick() -> None:
        while not stop.wait(services.settings.esign_reconcile_tick_seconds):
            try:
                counts = relay.reconcile()
                if counts["changed"]:
                    log.info("esign reconcile: %s", counts)
            except Exception:  # DocuSign or the database away: next tick tries again
                log.exception("esign reconcile failed")

    thread = threading.Thread(target=tick, name="closeloop-esign-reconcile", daemon=True)
    thread.start()
    return thread
