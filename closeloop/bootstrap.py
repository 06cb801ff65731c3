"""The composition root: builds the services from settings. Tests call `build` with
their own settings and clock; nothing else constructs engines, ledgers or relays."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from adapters.file_sink import FileSink
from adapters.slack import SlackDealThreads, slack_client
from closeloop import esign_wiring
from closeloop.config import Settings, parse_role_grants
from closeloop.database import make_engine
from closeloop.relay import Relay, Route
from flows.access import Role, grant_role
from flows.clock import Clock, SystemClock
from flows.errors import LedgerError
from flows.ledger import Ledger, Policy, Tx
from flows.outbox import Delivery, PermanentFailure, RetryPolicy
from flows.steps import PIPELINE_STEPS


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ledger: Ledger
    sink: FileSink
    relay: Relay = field(init=False)
    # E-signature: the document ports (swapped for the real ones at merge) and DocuSign.
    quote_document: Any = field(init=False)
    signed_quote_check: Any = field(init=False)
    esign: Any = None  # adapters.docusign_outbox.DocuSignRelay when DocuSign is configured
    email_signing: Any = None  # adapters.email_signing.EmailSigning: returned signed copies by email

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings, clock: Clock | None = None) -> Services:
    engine = make_engine(settings.database_url)
    policy = Policy(invoice_series=settings.invoice_series, quote_series=settings.quote_series,
                    quote_valid_days=settings.quote_valid_days, payment_terms_days=settings.payment_terms_days,
                    timezone=settings.timezone, discount_approval_bp=settings.discount_approval_percent * 100)
    ledger = Ledger(engine, clock or SystemClock(), policy, concurrency=settings.ledger_concurrency)
    services = Services(settings, engine, ledger, FileSink(settings.outbox_dir))
    esign_wiring.attach(services)
    retry = RetryPolicy(max_attempts=settings.relay_max_attempts)
    services.relay = Relay(ledger, routes(services, retry),
                           lease_for=timedelta(seconds=settings.relay_lease_seconds))
    return services


class Embedded:
    """The all-in-one process: the relay drains the outbox in a background thread,
    woken as soon as a step commits side effects."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closeloop-relay", daemon=True)

    def __enter__(self) -> Embedded:
        self.services.ledger.after_commit.append(self._wake)
        self._thread.start()
        esign_wiring.reconcile_ticker(self.services, self._stop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.services.relay.wake()
        self._thread.join(timeout=30)
        self.services.ledger.after_commit.remove(self._wake)

    def _run(self) -> None:
        self.services.relay.run_forever(self._stop, self.services.settings.relay_poll_seconds)

    def _wake(self, tx: Tx) -> None:
        if tx.outbox_written:
            self.services.relay.wake()


def run_pipeline_step(ledger: Ledger):  # type: ignore[no-untyped-def]
    """The pipeline's own continuation: run the named step for the deal."""
    def handle(delivery: Delivery) -> None:
        step = PIPELINE_STEPS.get(delivery.payload.get("step", ""))
        if step is None:
            raise PermanentFailure(f"unknown pipeline step {delivery.payload.get('step')!r}")
        try:
            ledger.run(step, int(delivery.payload["deal_id"]))
        except LedgerError as error:  # the ledger refused; retrying cannot change its mind
            raise PermanentFailure(str(error)) from error
    return handle


# What each kind of side effect is delivered by. Kinds whose service is not built or
# not configured yet are written to the file sink with a note saying so.
NOT_YET = {
    "slack.deal_thread": "Slack is not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)",
    "collect.statement": "statements are not available yet (the billing and collections issue)",
    "esign.send": "e-signature is not available yet (the e-signature issue adds DocuSign and email signing)",
    "esign.void": "e-signature is not available yet (the e-signature issue adds voiding envelopes)",
    "esign.remind": "DocuSign is not configured (set DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_USER_ID, DOCUSIGN_PRIVATE_KEY)",
    "esign.connect_event": "DocuSign is not configured: Connect notice kept, not applied",
    "esign.rejection_email": "email is not wired to e-signature yet: the 'what to fix' email is kept here",
    "invoice.deliver": "invoice PDFs and email are not available yet (the documents and billing issues)",
    "payment.collect": "charging through a gateway is not available yet (the billing issue)",
    "license.provision": "signed license keys and provisioning are not available yet (the billing issue)",
}


def routes(services: Services, retry: RetryPolicy) -> dict[str, Route]:
    table = {"pipeline.step": Route(run_pipeline_step(services.ledger), retry)}
    for kind, note in NOT_YET.items():
        table[kind] = Route(services.sink.handler(note), retry)
    settings = services.settings
    if settings.slack_enabled:
        threads = SlackDealThreads(slack_client(settings.slack_bot_token, settings.slack_api_url),  # type: ignore[arg-type]
                                   services.ledger, settings.slack_deals_channel)
        table["slack.deal_thread"] = Route(threads.post, retry)
    esign_wiring.esign_routes(services, retry, table)
    return table


def apply_role_grants(services: Services) -> int:
    """Grant the roles named in CLOSELOOP_SLACK_ROLES (idempotent); returns how many were new."""
    grants = parse_role_grants(services.settings.slack_roles)
    return sum(services.ledger.run(grant_role, principal=principal, role=Role(role), granted_by="configuration")
               for principal, role in grants)
