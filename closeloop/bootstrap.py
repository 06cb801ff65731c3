"""The composition root: builds the services from settings. Tests call `build` with
their own settings and clock; nothing else constructs engines, ledgers or relays."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from adapters.file_sink import FileSink
from adapters.license_webhook import LicenseWebhook
from adapters.slack import SlackDealThreads, slack_client
from adapters.slack_alerts import SlackAlerts
from closeloop import esign_wiring
from closeloop.config import Settings, parse_role_grants
from closeloop.documents import InvoiceDocuments, company_from
from closeloop.database import make_engine
from closeloop.license_signing import signer as license_signer
from closeloop.logs import step_context
from closeloop.money import build_money, money_routes
from closeloop.relay import Relay, Route
from flows.access import Role, grant_role
from flows.clock import Clock, SystemClock
from flows.errors import LedgerError
from flows.ledger import Committed, Ledger, Policy, Tx
from flows.outbox import Delivery, PermanentFailure, RetryPolicy
from flows.steps import PIPELINE_STEPS


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ledger: Ledger
    sink: FileSink
    relay: Relay = field(init=False)
    # The kinds this configuration still writes to the file sink, with the reason (the bot
    # says so to the person who asked), read from the routes as built, not from NOT_YET.
    unsent: dict[str, str] = field(init=False, default_factory=dict)
    money: Any = field(init=False)  # closeloop.money.Money: gateway and money policies
    # E-signature: the document ports (the quote renderer, the signed-quote verifier) and DocuSign.
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
                    timezone=settings.timezone, discount_approval_bp=settings.discount_approval_percent * 100,
                    invoicing=settings.invoicing, billing_max_invoices_per_day=settings.billing_max_invoices_per_day)
    ledger = Ledger(engine, clock or SystemClock(), policy, concurrency=settings.ledger_concurrency,
                    around_step=step_context)
    services = Services(settings, engine, ledger, FileSink(settings.outbox_dir))
    esign_wiring.attach(services)
    retry = RetryPolicy(max_attempts=settings.relay_max_attempts)
    services.money = build_money(settings, ledger)
    services.relay = Relay(ledger, routes(services, retry),
                           lease_for=timedelta(seconds=settings.relay_lease_seconds))
    return services


class Embedded:
    """The all-in-one process: the relay drains the outbox in a background thread,
    woken as soon as a step commits side effects, and the beat schedule
    (closeloop/schedule.py) runs in another."""

    def __init__(self, services: Services) -> None:
        from closeloop.schedule import EmbeddedBeat
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closeloop-relay", daemon=True)
        self._beat = EmbeddedBeat(services)

    def __enter__(self) -> Embedded:
        self.services.ledger.after_commit.append(self._wake)
        self._thread.start()
        self._beat.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.services.relay.wake()
        self._beat.__exit__()
        self._thread.join(timeout=30)
        self.services.ledger.after_commit.remove(self._wake)

    def _run(self) -> None:
        self.services.relay.run_forever(self._stop, self.services.settings.relay_poll_seconds)

    def _wake(self, tx: Tx | Committed) -> None:
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
    "esign.send": "DocuSign is not configured (set DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_USER_ID, DOCUSIGN_PRIVATE_KEY)",
    "esign.void": "DocuSign is not configured (set DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_USER_ID, DOCUSIGN_PRIVATE_KEY)",
    "esign.remind": "DocuSign is not configured (set DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_USER_ID, DOCUSIGN_PRIVATE_KEY)",
    "esign.connect_event": "DocuSign is not configured: Connect notice kept, not applied",
    "email.send": "SMTP is not configured (set SMTP_HOST): the message is kept here, not sent",
    "slack.triage": "Slack is not configured: unmatched mail is listed by `closeloop mail triage`",
    "license.provision": "no provisioning webhook configured (set CLOSELOOP_LICENSE_WEBHOOK_URL and _SECRET)",
    "slack.alert": "Slack is not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)",
}


def routes(services: Services, retry: RetryPolicy) -> dict[str, Route]:
    table = {"pipeline.step": Route(run_pipeline_step(services.ledger), retry)}
    for kind, note in NOT_YET.items():
        table[kind] = Route(services.sink.handler(note), retry)
    to_sink = {kind: table[kind] for kind in NOT_YET}
    table.update(money_routes(services.money, retry))  # payment.collect, payment.event
    settings = services.settings
    invoices = InvoiceDocuments(services.ledger, company_from(settings), settings.documents_dir, services.sink)
    table["invoice.deliver"] = Route(invoices.deliver, retry)  # rendered only; mail_request_routes emails it
    from closeloop.gaps_wiring import gap_routes  # completeness: the daily digest
    table.update(gap_routes(services, retry))
    table["license.provision"] = Route(license_provisioning(services), retry)
    if settings.slack_enabled:
        threads = SlackDealThreads(slack_client(settings.slack_bot_token, settings.slack_api_url),  # type: ignore[arg-type]
                                   services.ledger, settings.slack_deals_channel)
        table["slack.deal_thread"] = Route(threads.post, retry)
        alerts = SlackAlerts(slack_client(settings.slack_bot_token, settings.slack_api_url),  # type: ignore[arg-type]
                             settings.slack_finance_channel)
        table["slack.alert"] = Route(alerts.post, retry)
    table.update(mail_routes(services))
    esign_wiring.esign_routes(services, retry, table)
    from closeloop.mail_wiring import mail_request_routes  # invoices, "what to fix", reminders: by email
    table.update(mail_request_routes(services, retry, invoices))
    services.unsent = {kind: NOT_YET[kind] for kind, route in to_sink.items() if table[kind] is route}
    if not (settings.license_webhook_url and settings.license_webhook_secret):
        services.unsent["license.provision"] = NOT_YET["license.provision"]
    return table


# RFC 5321 4.5.4.1: keep retrying transient SMTP failures for days, at most every few hours.
EMAIL_RETRY = RetryPolicy(base=timedelta(minutes=1), cap=timedelta(hours=4), max_attempts=36)


def mail_routes(services: Services) -> dict[str, Route]:
    """The email agent's outbox routes, when their services are configured."""
    from adapters.smtp_mailer import SmtpMailer, SmtpRelay
    from closeloop.mail_wiring import render_attachment
    from parsers.mail_token import reply_address
    s = services.settings
    table: dict[str, Route] = {}
    if s.slack_enabled:
        from adapters.slack_mail import SlackTriage
        triage = SlackTriage(slack_client(s.slack_bot_token, s.slack_api_url),  # type: ignore[arg-type]
                             s.slack_triage_channel or s.slack_deals_channel)
        table["slack.triage"] = Route(triage.post, RetryPolicy(max_attempts=s.relay_max_attempts))
    if s.smtp_host:
        secret, base = s.mail_token_secret(), s.mail_reply_to or s.mail_from
        fallback = None
        if s.smtp_fallback_host:
            fallback = SmtpRelay("fallback", s.smtp_fallback_host, s.smtp_fallback_port, s.smtp_fallback_username,
                                 s.smtp_fallback_password, s.smtp_fallback_starttls, s.smtp_timeout)
        mailer = SmtpMailer(services.ledger, SmtpRelay("primary", s.smtp_host, s.smtp_port, s.smtp_username,
                                                       s.smtp_password, s.smtp_starttls, s.smtp_timeout),
                            sender=s.mail_from, company=s.mail_company, fallback=fallback,
                            fallback_after=s.smtp_fallback_after,
                            reply_to_for=lambda deal_id: reply_address(base, deal_id, secret) if deal_id else base,
                            render_attachment=render_attachment(services))
        table["email.send"] = Route(mailer.send, EMAIL_RETRY)
    return table


def license_provisioning(services: Services):  # type: ignore[no-untyped-def]
    """The signed webhook when configured; else the key is still minted (so it can be shown
    and verified) and the request written to the file sink."""
    settings = services.settings
    webhook = LicenseWebhook(services.ledger, license_signer(settings), settings.license_webhook_url or "",
                             settings.license_webhook_secret or "", clock=services.ledger.clock,
                             timeout=settings.license_webhook_timeout)
    if settings.license_webhook_url and settings.license_webhook_secret:
        return webhook.deliver

    def to_sink(delivery: Delivery) -> None:
        webhook.body(delivery)
        services.sink.write(delivery, NOT_YET["license.provision"])
    return to_sink


def apply_role_grants(services: Services) -> int:
    """Grant the roles named in CLOSELOOP_SLACK_ROLES (idempotent); returns how many were new."""
    grants = parse_role_grants(services.settings.slack_roles)
    return sum(services.ledger.run(grant_role, principal=principal, role=Role(role), granted_by="configuration")
               for principal, role in grants)
