"""The crash-point sweep's machinery (tests/test_crash_sweep.py; RELIABILITY 38).

One *phase* drives a set of deals through the whole loop on real processes: a Celery
worker (2 pool processes, which the pool restarts after each SIGKILL) and the beat,
against PostgreSQL and Redis, with every external service a real server on loopback —
SMTP (aiosmtpd), the card gateway (localstripe behind the tests' Stripe proxy) and the
license provisioning webhook (`ProvisioningEndpoint`). The customer's side is played
here: quotes are sent by email, and once every quote email has gone out the customer
signs (`record_signature` alone, so the pipeline runs in the workers as `pipeline.step`).

`Facts` is what a phase left behind, read from the servers' own records (the SMTP
server's messages, localstripe's PaymentIntents, the webhook's requests) and the
ledger; `fingerprint` is the per-deal final state a crash run must share with the
reference run."""
from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock, Thread
from typing import Any

from sqlalchemy import func, select

from adapters.license_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.demo.mail_servers import SmtpServer
from closeloop.tasks import wake_dispatch_on_commit
from flows.charges import register_card
from flows.clock import SystemClock
from flows.deals import Deal, Stage
from flows.invoices import Invoice, InvoiceStatus
from flows.licenses import License
from flows.mail import OutboundMail, OutboundStatus
from flows.outbox import OutboxMessage, OutboxStatus
from flows.parties import ContactRole
from flows.steps import ContactRequest, LineRequest, add_customer, draft_quote, load_catalog, record_signature, \
    send_quote
from flows.billing import Subscription, SubscriptionPeriod
from flows.timeline import Event
from flows.catalog_file import read_catalog
from tests.celery_kit import CeleryRig, PrivateRedis, wait_until
from tests.factories import CATALOG
from tests.stripe_peer import API_KEY, StripeProxy, card, stripe_client

WEBHOOK_SECRET = "license-webhook-secret"
MAIL_SECRET = "sweep-mail-secret"
DEALS_PER_CUSTOMER = 5

# The instrumented points, by step of the loop: (step, point, kind). `deliver.*` are the
# relay's (closeloop/relay.py); the others sit in the adapters, after the outside world
# acted and before the ledger recorded it.
POINTS: tuple[tuple[str, str, str], ...] = (
    ("quote", "deliver.before", "esign.send"),
    ("quote", "deliver.after", "esign.send"),
    ("signature", "deliver.before", "pipeline.step"),
    ("signature", "deliver.after", "pipeline.step"),
    ("invoice", "deliver.before", "invoice.deliver"),
    ("invoice", "deliver.after", "invoice.deliver"),
    ("charge", "deliver.before", "payment.collect"),
    ("charge", "gateway.answered", "payment.collect"),
    ("charge", "deliver.after", "payment.collect"),
    ("license", "deliver.before", "license.provision"),
    ("license", "webhook.answered", "license.provision"),
    ("license", "deliver.after", "license.provision"),
    ("email", "deliver.before", "email.send"),
    ("email", "smtp.accepted", "email.send"),
    ("email", "deliver.after", "email.send"),
)
# How many times a point is reached per message of its kind (the gateway answers once per
# deal: only the charge's own payment.collect asks it, not the invoice's).
_REACHES = {"gateway.answered": lambda n: 1}


@dataclass(frozen=True)
class DealSpec:
    seats: int
    setup: bool
    annual: bool
    language: str

    def lines(self) -> list[LineRequest]:
        lines = [LineRequest("SEAT", Decimal(self.seats))]
        if self.setup:
            lines.append(LineRequest("SETUP", Decimal(1)))
        if self.annual:
            lines.append(LineRequest("ANNUAL", Decimal(1)))
        return lines


def specs(runs: int, rng: random.Random) -> list[DealSpec]:
    return [DealSpec(rng.randint(1, 60), rng.random() < 0.5, rng.random() < 0.3, rng.choice(["en", "pl", "de"]))
            for _ in range(runs)]


def plan(deal_ids: list[int], messages: dict[int, Counter], rng: random.Random) -> dict[int, str]:
    """One crash per deal: a point at random, and which of its occurrences (how many
    messages of that kind the deal had in the reference run)."""
    chosen = {}
    for deal_id in deal_ids:
        _, point, kind = rng.choice(POINTS)
        reaches = _REACHES.get(point, lambda n: n)(messages[deal_id][kind])
        chosen[deal_id] = f"{point}:{kind}:{deal_id}@{rng.randint(1, max(1, reaches))}"
    return chosen


# --- a broker of the sweep's own ------------------------------------------------------------

# --- the license provisioning webhook ---------------------------------------------------------

class ProvisioningEndpoint:
    """The product's provisioning endpoint: checks the signature, answers 200, keeps every
    request (a retry after a lost answer arrives again with the same Idempotency-Key,
    which the product de-duplicates on)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                expected = signature(WEBHOOK_SECRET, self.headers.get(TIMESTAMP_HEADER, ""), body)
                if self.headers.get(SIGNATURE_HEADER) != expected:
                    self.send_response(401)
                else:
                    with endpoint.lock:
                        endpoint.requests.append((self.headers.get("Idempotency-Key", ""), json.loads(body)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/provision"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- one phase --------------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    deals: list[int]
    customers: dict[int, str]            # our customer id -> the gateway's cus_…
    smtp: SmtpServer
    endpoint: ProvisioningEndpoint
    proxy: StripeProxy
    settings: Settings
    services: Any
    elapsed: float = 0.0
    fired: list[str] = field(default_factory=list)
    logs: str = ""
    marks: dict[str, float] = field(default_factory=dict)  # seconds from the start, by milestone


def phase_settings(base: Settings, smtp: SmtpServer, proxy: StripeProxy, endpoint: ProvisioningEndpoint,
                   broker: str) -> Settings:
    values = {name: getattr(base, name) for name in base.model_fields_set if name != "broker_url"}
    return Settings(**values, broker_url=broker, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, smtp_timeout=10,
                    mail_secret=MAIL_SECRET, mail_from="sales@ourco.example", mail_company="OurCo",
                    gateway="stripe", stripe_api_key=API_KEY, stripe_api_base=proxy.url,
                    license_webhook_url=endpoint.url, license_webhook_secret=WEBHOOK_SECRET)


def run_phase(name: str, base: Settings, broker: PrivateRedis, folder: Path, localstripe_url: str,
              deal_specs: list[DealSpec], *, crash_plan: list[str] | None = None, timeout: float = 600) -> Phase:
    """Arrange the deals, start the worker and the beat, send the quotes, sign, and wait
    until the outbox has nothing left to do. The caller reads the facts, then `stop`s."""
    broker.flush()  # nothing of an earlier phase in the broker
    folder.mkdir(parents=True, exist_ok=True)
    smtp, endpoint, proxy = SmtpServer(), ProvisioningEndpoint(), StripeProxy(localstripe_url).start()
    settings = phase_settings(base, smtp, proxy, endpoint, broker.url)
    services = build(settings, SystemClock())
    begun = time.monotonic()
    deals, customers = arrange(services, localstripe_url, deal_specs)
    env: dict[str, str] = {}
    if crash_plan is not None:
        crash = folder / "crash"
        crash.mkdir()
        (crash / "plan.json").write_text(json.dumps(crash_plan))
        env["CLOSELOOP_CRASHPOINTS"] = str(crash)
    rig = CeleryRig(settings, folder, **env)
    phase = Phase(name, deals, customers, smtp, endpoint, proxy, settings, services)
    phase.marks["arranged"] = time.monotonic() - begun
    started = time.monotonic()
    try:
        wake_dispatch_on_commit(services)
        failed: list[BaseException] = []

        def start_beat() -> None:
            try:
                rig.beat()
            except BaseException as error:  # noqa: BLE001 — raised below, in the test's thread
                failed.append(error)
        beat = Thread(target=start_beat)  # the two start at once: each takes seconds to come up
        beat.start()
        rig.worker(concurrency=2, name=f"{name}-worker")
        beat.join()
        if failed:
            raise failed[0]
        phase.marks["processes up"] = time.monotonic() - started
        for deal_id in deals:
            services.ledger.run_alone(send_quote, deal_id, provider="email", actor="U_REP")
        settle(services, f"{name}: the quotes to go out", timeout)
        phase.marks["quotes out"] = time.monotonic() - started
        for deal_id in deals:  # the customer signs what the quote email brought
            services.ledger.run_alone(record_signature, deal_id, version=1, signer="ada@acme.example",
                                      evidence={"method": "sweep"})
        settle(services, f"{name}: the deals to run to the end", timeout)
        phase.marks["deals done"] = time.monotonic() - started
    finally:
        phase.elapsed = time.monotonic() - started
        rig.stop()
        phase.logs = rig.logs()
        if crash_plan is not None and (folder / "crash" / "fired").exists():
            phase.fired = sorted(p.name for p in (folder / "crash" / "fired").iterdir())
    return phase


def stop(phase: Phase) -> None:
    phase.services.close()
    phase.smtp.stop()
    phase.endpoint.stop()
    phase.proxy.stop()


def arrange(services: Any, localstripe_url: str, deal_specs: list[DealSpec]) -> tuple[list[int], dict[int, str]]:
    """The catalog, a customer (with a card on file at the gateway) per few deals, and one
    quoted deal per spec, in spec order so both phases number them alike."""
    from flows.charges import GatewayAccount
    ledger = services.ledger
    ledger.run(load_catalog, read_catalog(CATALOG, "sweep catalog"), source="sweep catalog")
    customers: dict[int, str] = {}
    deals = []
    for index, spec in enumerate(deal_specs):
        if index % DEALS_PER_CUSTOMER == 0:
            n = index // DEALS_PER_CUSTOMER + 1
            customer_id = ledger.run(add_customer, name=f"Customer {n}", country="DE", currency="EUR",
                                     language=spec.language, contacts=(
                ContactRequest("Ada Signer", f"ada@c{n}.example", ContactRole.SIGNER),
                ContactRequest("Bob Billing", f"billing@c{n}.example", ContactRole.BILLING)))
            register_card(ledger, services.money.gateway, customer_id, card(localstripe_url, "ok"))
            customers[customer_id] = ledger.read(lambda s, c=customer_id: s.scalar(
                select(GatewayAccount.customer_ref).where(GatewayAccount.customer_id == c)))
        deals.append(ledger.run(draft_quote, key=f"sweep:{index}", customer_id=customer_id, owner="U_REP",
                                currency="EUR", discount_bp=0, lines=spec.lines()))
    return deals, customers


def outbox_counts(services: Any) -> Counter:
    rows = services.ledger.read(lambda s: s.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    return Counter({status: n for status, n in rows})


def settle(services: Any, what: str, timeout: float) -> None:
    """Until nothing is pending or leased, twice in a row a moment apart (a delivery that
    just finished may still be writing what follows)."""
    def idle() -> bool:
        counts = outbox_counts(services)
        return counts[OutboxStatus.PENDING] == 0 and counts[OutboxStatus.LEASED] == 0

    def settled() -> bool:
        if not idle():
            return False
        time.sleep(0.5)
        return idle()
    wait_until(what, settled, timeout=timeout, every=0.5)


# --- what a phase left behind -------------------------------------------------------------------

@dataclass
class Facts:
    deals: list[int]
    stages: dict[int, Stage]
    invoices: list[tuple[int, str, str, int, InvoiceStatus]]   # deal, purpose key, number, gross, status
    periods: list[tuple[int, int, int | None]]                 # subscription, index, invoice
    licenses: list[tuple[int, str, int]]                       # deal, product, seats
    mails: dict[str, tuple[int | None, str, OutboundStatus]]   # Message-ID -> deal, template, status
    smtp: Counter                                              # Message-ID -> times the server accepted it
    intents: list[dict[str, Any]]                              # the gateway's PaymentIntents of our customers
    provisioned: list[tuple[str, dict[str, Any]]]              # the webhook's requests
    outbox: Counter                                            # status -> messages
    messages: dict[int, Counter]                               # deal -> kind -> messages
    redelivered: Counter                                       # kind -> messages attempted more than once
    timeline: dict[int, Counter]                               # deal -> event kinds


def facts(phase: Phase, localstripe_url: str) -> Facts:
    def read(s: Any) -> dict[str, Any]:
        messages: dict[int, Counter] = defaultdict(Counter)
        redelivered: Counter = Counter()
        for deal_id, kind, attempts in s.execute(select(OutboxMessage.deal_id, OutboxMessage.kind,
                                                        OutboxMessage.attempts)):
            if deal_id is not None:
                messages[deal_id][kind] += 1
            if attempts > 1:
                redelivered[kind] += 1
        timeline: dict[int, Counter] = defaultdict(Counter)
        for deal_id, kind in s.execute(select(Event.deal_id, Event.kind).where(Event.deal_id.is_not(None))):
            timeline[deal_id][kind] += 1
        return {
            "stages": {d.id: d.stage for d in s.scalars(select(Deal))},
            "invoices": [(i.deal_id, i.purpose_key, i.number, i.gross, i.status) for i in s.scalars(select(Invoice))],
            "periods": list(s.execute(select(SubscriptionPeriod.subscription_id, SubscriptionPeriod.index,
                                             SubscriptionPeriod.invoice_id)).all()),
            "licenses": list(s.execute(select(License.deal_id, License.product, License.seats)).all()),
            "mails": {m.message_id: (m.deal_id, m.template, m.status) for m in s.scalars(select(OutboundMail))},
            "subscriptions": s.scalar(select(func.count()).select_from(Subscription)),
            "messages": messages, "redelivered": redelivered, "timeline": timeline,
        }
    ledger = phase.services.ledger.read(read)
    smtp = Counter(str(message_from_bytes(r.data, policy=email_policy.default)["Message-ID"]).strip()
                   for r in phase.smtp.received)
    ours = set(phase.customers.values())
    intents = [i for i in (p.to_dict() for p in stripe_client(localstripe_url).v1.payment_intents.list(
        {"limit": 100}).auto_paging_iter()) if i.get("customer") in ours]
    return Facts(phase.deals, ledger["stages"], ledger["invoices"], ledger["periods"], ledger["licenses"],
                 ledger["mails"], smtp, intents, list(phase.endpoint.requests), outbox_counts(phase.services),
                 ledger["messages"], ledger["redelivered"], ledger["timeline"])


def fingerprint(f: Facts) -> dict[int, Any]:
    """Each deal's final state, in terms that do not depend on numbering order: its stage,
    its invoices (gross, status), licenses, the emails it was sent (by template), what the
    gateway charged for it, what was provisioned, and its timeline's event kinds."""
    number_to_deal = {number: deal for deal, _, number, _, _ in f.invoices}
    charged: Counter = Counter()
    for intent in f.intents:
        if intent.get("status") == "succeeded":
            charged[number_to_deal.get((intent.get("metadata") or {}).get("closeloop_invoice"))] += intent["amount"]
    sent = defaultdict(Counter)
    for message_id, (deal, template, _) in f.mails.items():
        if f.smtp[message_id]:
            sent[deal][template] += 1
    provisioned = defaultdict(set)
    for _, body in f.provisioned:
        provisioned[body["deal_id"]].add((body["product"], body["seats"], body["status"]))
    return {deal: {
        "stage": f.stages[deal].value,
        "invoices": sorted((gross, status.value) for d, _, _, gross, status in f.invoices if d == deal),
        "licenses": sorted((product, seats) for d, product, seats in f.licenses if d == deal),
        "emails": dict(sent[deal]), "charged": charged[deal], "provisioned": sorted(provisioned[deal]),
        "timeline": dict(f.timeline[deal]),
    } for deal in f.deals}


def invariants(f: Facts, smtp_crashed: set[int]) -> dict[str, list[str]]:
    """RELIABILITY 38's invariants, each a list of violations (empty: holds). The one
    duplicate allowed: a deal whose worker died at `smtp.accepted` (the server had the
    message, the ledger did not know yet) gets that one email twice with the same
    Message-ID — SMTP has no idempotency key, so only the Message-ID de-duplicates it."""
    twice = Counter(f.mails.get(m, (None,))[0] for m, n in f.smtp.items() if n == 2)
    per_key = Counter((deal, key) for deal, key, _, _, _ in f.invoices)
    per_period = Counter((sub, index) for sub, index, _ in f.periods)
    succeeded = [i for i in f.intents if i.get("status") == "succeeded"]
    by_invoice: Counter = Counter()
    for intent in succeeded:
        by_invoice[(intent.get("metadata") or {}).get("closeloop_invoice")] += intent["amount"]
    totals = {number: gross for _, _, number, gross, _ in f.invoices}
    licenses = Counter((deal, product) for deal, product, _ in f.licenses)
    provisioned = defaultdict(set)
    for _, body in f.provisioned:
        provisioned[(body["deal_id"], body["product"])].add(body["license_id"])
    unpaid = [number for _, _, number, _, status in f.invoices if status is not InvoiceStatus.PAID]
    return {
        "at most one invoice per deal and period": (
            [f"{k}: {n} invoices" for k, n in per_key.items() if n > 1]
            + [f"subscription {k}: {n} period rows" for k, n in per_period.items() if n > 1]),
        "sum of successful charges (localstripe) == invoice totals": (
            ([] if sum(by_invoice.values()) == sum(totals.values()) else
             [f"charged {sum(by_invoice.values())} != invoiced {sum(totals.values())}"])
            + [f"{number}: charged {by_invoice[number]} of {gross}" for number, gross in totals.items()
               if by_invoice[number] != gross]),
        "one license per paid deal (ledger and provisioned)": (
            [f"deal {k}: {n} licenses" for k, n in licenses.items() if n != 1]
            + [f"deal {k}: provisioned as {sorted(ids)}" for k, ids in provisioned.items() if len(ids) != 1]
            + [f"deal {k}: never provisioned" for k in licenses if k not in provisioned]
            + [f"invoice {n} not paid" for n in unpaid]),
        "every email sent exactly once by Message-ID": (
            [f"{m} ({f.mails.get(m, ('?', '?'))[1]}) accepted {n} times" for m, n in f.smtp.items()
             if n > 1 and (n > 2 or f.mails.get(m, (None,))[0] not in smtp_crashed)]
            + [f"deal {d}: {n} emails accepted twice after one crash" for d, n in twice.items() if n > 1]
            + [f"{m} accepted by the SMTP server but not in the ledger" for m in f.smtp if m not in f.mails]
            + [f"{m} ({template}, deal {deal}) is {status.value}, accepted {f.smtp[m]} times"
               for m, (deal, template, status) in f.mails.items()
               if status is not OutboundStatus.SENT or not f.smtp[m]]),
        "nothing accepted is lost": (
            [f"deal {d} ended {stage.value}" for d, stage in f.stages.items() if stage is not Stage.BILLING_ACTIVE]
            + [f"{n} outbox messages {status.value}" for status, n in f.outbox.items()
               if status is not OutboxStatus.DONE and n]),
    }
