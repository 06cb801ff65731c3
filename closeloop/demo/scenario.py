"""The demo: one realistic deal through the whole loop on embedded defaults, printed
as a transcript with timings, every artifact written to the output directory.

Steps whose capability has not been built yet are shown plainly as not yet available;
each later capability replaces its line here with the real behaviour."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Callable, TextIO

from sqlalchemy import func, select

from adapters.slack import APPROVE_DISCOUNT
from closeloop import migrate
from closeloop.bootstrap import Embedded, apply_role_grants, build
from closeloop.config import Settings
from closeloop.demo import documents_scene
from closeloop.demo import esign_scene
from closeloop.demo.loopback_slack import APP, SIGNING_SECRET, TEAM, FakeSlackApi
from closeloop.demo.mail_scene import MailScene
from closeloop.demo.billingcore_scene import billing_scene
from closeloop.demo.slack_scene import FINANCE, MANAGER, PEOPLE, REP, ROLES, Answer, SlackScene, calls_json, describe
from flows.billing import Subscription
from flows.catalog_file import read_catalog
from flows.clock import ManualClock
from flows.deals import Deal, Stage
from flows.invoices import Invoice
from flows.licenses import License
from flows.money import Money
from flows.parties import ContactRole
from flows.queries import overdue_invoices, timeline
from flows.steps import (ContactRequest, LineRequest, add_customer, draft_quote, load_catalog,
                         record_signature, send_quote)

DEMO_FILES = ("closeloop.db", "closeloop.db-wal", "closeloop.db-shm", "transcript.txt", "timeline.json",
              "invoice.json", "licenses.json", "subscriptions.json", "catalog.toml", "slack-calls.json")
CUSTOMER = "Kowalski Logistics Sp. z o.o."
CHANNELS = {"C0DEALS": "deals"}  # the loopback Slack's deals channel (SLACK_DEALS_CHANNEL)


@dataclass
class Transcript:
    sinks: list[TextIO]
    started: float = field(default_factory=time.perf_counter)

    def say(self, text: str = "") -> None:
        for sink in self.sinks:
            sink.write(text + "\n")
            sink.flush()

    def step(self, title: str, action: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        result = action()
        self.say(f"  ✓ {title}  [{(time.perf_counter() - began) * 1000:.1f} ms]")
        return result

    def not_yet(self, title: str, why: str) -> None:
        self.say(f"  · {title}: not yet available — {why}")

    def slack(self, scene: SlackScene, who: str, command: str, text: str) -> Answer:
        """A person types a slash command; show what the bot answered and posted."""
        return self._shown(f"{PEOPLE[who]} types {command} {text}".rstrip(), scene.command(who, command, text))

    def press(self, scene: SlackScene, who: str, label: str, action_id: str, value: str) -> Answer:
        return self._shown(f"{PEOPLE[who]} presses [{label}]", scene.press(who, action_id, value))

    def _shown(self, title: str, answer: Answer) -> Answer:
        if not answer.available:
            self.not_yet(title, answer.missing)
            return answer
        failed = [e for e in answer.errors if not isinstance(e, NotImplementedError)]
        mark = "✗" if failed or answer.status != 200 else "✓"
        self.say(f"  {mark} {title}  [ack in {answer.ack_ms:.1f} ms]")
        for error in failed:
            self.say(f"      ✗ the bot failed: {type(error).__name__}: {error}")
        for line in describe(answer, channels=CHANNELS):
            self.say(line)
        return answer


def run_demo(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:  # a fresh run each time, touching only what the demo writes
        (out / name).unlink(missing_ok=True)
    for stale in (out / "outbox").glob("*.jsonl"):
        stale.unlink()
    for stale in (out / "documents").glob("*.pdf"):
        stale.unlink()
    with (out / "transcript.txt").open("w", encoding="utf-8") as file:
        import sys
        log = Transcript([sys.stdout, file])
        _scenario(out.resolve(), log)
    return 0


def _scenario(out: Path, log: Transcript) -> None:
    api = FakeSlackApi().start()
    mail = MailScene()  # real SMTP and IMAP servers on loopback
    try:
        _deal(out, log, api, mail)
    finally:
        mail.close()
        api.stop()
        _write_calls(out, api)  # also when the demo broke: what Slack saw until then


def _write_calls(out: Path, api: FakeSlackApi) -> None:
    (out / "slack-calls.json").write_text(json.dumps(calls_json(api), indent=2, ensure_ascii=False, default=str)
                                          + "\n", encoding="utf-8")


def _deal(out: Path, log: Transcript, api: FakeSlackApi, mail: MailScene) -> None:
    settings = Settings(database_url=f"sqlite:///{out}/closeloop.db", outbox_dir=out / "outbox",
                        documents_dir=out / "documents", data_dir=out / "data",
                        timezone="Europe/Warsaw", relay_poll_seconds=0.05,
                        slack_bot_token="xoxb-demo", slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=api.base_url, slack_team_id=TEAM, slack_app_id=APP,
                        slack_deals_channel="C0DEALS", slack_roles=ROLES)
    settings = settings.model_copy(update=mail.settings())
    clock = ManualClock(datetime.now(timezone.utc).replace(microsecond=0))
    log.say(f"closeloop demo — {clock.now():%Y-%m-%d %H:%M} UTC — everything under {out}")
    log.say()
    log.say("1. Setup (embedded: a SQLite file, the outbox relay in a background thread, a loopback Slack)")
    log.step("database migrated", lambda: migrate.upgrade(settings.database_url))
    services = build(settings, clock)
    ledger = services.ledger
    catalog_text = resources.files("closeloop.demo").joinpath("catalog.toml").read_text(encoding="utf-8")
    (out / "catalog.toml").write_text(catalog_text, encoding="utf-8")
    counts = log.step("catalog loaded from catalog.toml (3 SKUs, EUR/USD/PLN)", lambda: ledger.run(
        load_catalog, read_catalog(catalog_text, "catalog.toml"), source="catalog.toml"))
    assert counts["added"] == 3
    customer_id = log.step(f"customer {CUSTOMER} (PL, documents in Polish)", lambda: ledger.run(
        add_customer, name=CUSTOMER, country="PL", currency="EUR", language="pl",
        tax_id="PL5260001246", contacts=(
            ContactRequest("Anna Kowalska", "anna.kowalska@kowalski-logistics.example", ContactRole.SIGNER),
            ContactRequest("Księgowość", "faktury@kowalski-logistics.example", ContactRole.BILLING))))
    log.step(f"Slack: a loopback Web API at {api.base_url} records every call (nothing goes to slack.com)",
             lambda: None)
    log.step("roles (CLOSELOOP_SLACK_ROLES): " + ", ".join(f"{name} {user}" for user, name in PEOPLE.items()),
             lambda: apply_role_grants(services))

    with Embedded(services):
        scene = SlackScene(services, api)
        try:
            deal_id = _quote_and_pipeline(log, services, scene, customer_id, clock, mail)
            from closeloop.demo.gaps_scene import show_gaps  # completeness: gaps and the digest
            show_gaps(log, services, scene, out)
        finally:
            scene.close()
        services.relay.drain()
    esign_scene.run(log, settings, clock, customer_id, REP, out)  # a second quote, signed through DocuSign

    _write_artifacts(out, services, deal_id)
    _write_calls(out, api)
    services.close()
    log.say()
    log.say(f"Done in {(time.perf_counter() - log.started):.2f} s. Artifacts in {out}:")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        log.say(f"  {path.relative_to(out)}")
    log.say(f"Inspect: DATABASE_URL=sqlite:///{out}/closeloop.db closeloop timeline D-{deal_id}")


def _quote_and_pipeline(log: Transcript, services: Any, scene: SlackScene, customer_id: int,
                        clock: ManualClock, mail: MailScene) -> int:
    ledger = services.ledger
    if scene.unavailable:
        log.not_yet("Slack commands and buttons", scene.unavailable)
    log.say()
    log.say("2. Quote, from Slack: the rep types /quote; the bot answers her, the relay opens the deal's thread")
    log.slack(scene, REP, "/quote", "help")
    before = _last_deal(ledger)
    log.slack(scene, REP, "/quote", "new Kowalski Logistics 25 seats PRO-SEAT, 1 ONBOARDING discount 10%")
    deal_id = _last_deal(ledger)
    if deal_id == before:
        mark = len(scene.api.calls)
        deal_id = log.step("quote drafted with the step /quote new calls: 25 × PRO-SEAT @ 40.00 EUR/month, "
                           "onboarding 1,500.00 EUR, 10 % off",
                           lambda: ledger.run(draft_quote, key="demo:quote:1", customer_id=customer_id,
                                              owner=REP, currency="EUR", discount_bp=1000,
                                              lines=[LineRequest("PRO-SEAT", Decimal(25)),
                                                     LineRequest("ONBOARDING", Decimal(1))]))
        scene.settle()
        _show_posts(log, scene.api.calls[mark:])
    quote = ledger.read(lambda s: _quote_summary(s, deal_id))
    log.say(f"    {quote}")
    documents_scene.show_quote(log, services, deal_id)

    log.say()
    log.say("   A bigger discount needs a manager (policy: over "
            f"{services.settings.discount_approval_percent} %)")
    before = _last_deal(ledger)
    log.slack(scene, REP, "/quote", "new Kowalski Logistics 5 seats PRO-SEAT discount 20%")
    second = _last_deal(ledger)
    button = _approve_button(scene.api.calls) if second != before else None
    if button is None:
        log.not_yet("approving a discount by button", "no quote over the policy was drafted from Slack"
                    if second == before else "no approval request was posted")
    else:
        log.press(scene, REP, "Approve discount", APPROVE_DISCOUNT, button)
        log.press(scene, MANAGER, "Approve discount", APPROVE_DISCOUNT, button)

    log.say()
    log.say("3. Signature")
    number = ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
    log.slack(scene, REP, "/quote", f"send {number}")
    if ledger.read(lambda s: s.get(Deal, deal_id).stage) is Stage.QUOTED:
        log.step("sent for signature to anna.kowalska@kowalski-logistics.example (the step /quote send calls)",
                 lambda: ledger.run(send_quote, deal_id, provider="email", actor=REP))
    mark = len(scene.api.calls)
    mail.run(log, services, scene, deal_id, REP)  # emailed for signature; the signed reply verified
    clock.advance(timedelta(days=2, hours=3))  # the same dates either way: the rest of the story follows them
    if ledger.read(lambda s: s.get(Deal, deal_id).stage) is Stage.SENT:  # the emailed copy did not sign it
        log.say(f"    … two days later ({clock.now():%Y-%m-%d}) the signed quote comes back by post; "
                "the manager records it in Slack")
        mark = len(scene.api.calls)
        log.slack(scene, MANAGER, "/quote", f"signed {number} signed on paper by Anna Kowalska, scan in the CRM")
    if ledger.read(lambda s: s.get(Deal, deal_id).stage) is Stage.SENT:
        log.step("signature recorded (the step /quote signed calls), and with it the deal won, invoiced, "
                 "licensed, billing", lambda: ledger.run(
                     record_signature, deal_id, version=1, signer=MANAGER,
                     evidence={"method": "demo", "note": "signed on paper by Anna Kowalska"}))
    documents_scene.verify_returned(log, services, deal_id, signer="Anna Kowalska")
    log.say()
    log.say("4. The pipeline ran on its own: deal won -> invoice -> license -> billing")
    stage = _wait_for(ledger, deal_id, Stage.BILLING_ACTIVE)
    log.say(f"  ✓ deal {deal_id} is now '{stage.value}'; the relay delivers the side effects from the outbox")
    for event in ledger.read(timeline, deal_id):
        if event.kind in ("deal.won", "invoice.issued", "license.issued", "subscription.started"):
            log.say(f"    {event.occurred_at:%Y-%m-%d %H:%M} UTC  {event.kind:<20} {_brief(event.data, 'EUR')}")
    scene.settle()
    log.say("  ✓ and told the deal's thread in Slack:")
    _show_posts(log, scene.api.calls[mark:])
    invoice = ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.deal_id == deal_id)))
    documents_scene.show_invoice(log, services, invoice.number)
    from closeloop.demo.mail_scene import show_invoice_email  # invoice.deliver: the PDF, then the email
    show_invoice_email(log, services, invoice.number)
    log.not_yet("signed license key provisioned to the product", "no CLOSELOOP_LICENSE_WEBHOOK_URL in the demo; "
                "the key is signed and the request is in outbox/license.provision.jsonl")
    log.say()
    from closeloop.demo.money_scene import money_scene  # 5. charges, 6. collections (billing-money)
    money_scene(log, services, clock, customer_id, deal_id)
    today = clock.now().date()
    overdue = ledger.read(overdue_invoices, today)
    for item in overdue:
        log.say(f"  ✓ {clock.now():%Y-%m-%d}: invoice {item.number} is {(today - item.due_on).days} days "
                f"overdue, balance {Money(item.balance, item.currency)}")
    log.slack(scene, FINANCE, "/invoice", invoice.number)
    log.slack(scene, FINANCE, "/collect", "Kowalski Logistics")
    documents_scene.show_aging(log, services, invoice.customer_id, today)
    log.say()
    log.say("7. Completeness")
    log.slack(scene, FINANCE, "/gaps", "all")
    billing_scene(log, services, deal_id, clock)
    return deal_id


def _last_deal(ledger: Any) -> int | None:
    return ledger.read(lambda s: s.scalar(select(func.max(Deal.id))))


def _approve_button(calls: list[Any]) -> str | None:
    """The value of the newest [Approve discount] button the relay posted."""
    for call in reversed([c for c in calls if c.method == "chat.postMessage"]):
        blocks = call.args.get("blocks")
        for block in blocks if isinstance(blocks, list) else []:
            elements = block.get("elements") if isinstance(block, dict) else None
            for element in elements if isinstance(elements, list) else []:
                if isinstance(element, dict) and element.get("action_id") == APPROVE_DISCOUNT:
                    return str(element.get("value"))
    return None


def _show_posts(log: Transcript, calls: list[Any]) -> None:
    posts = [c for c in calls if c.method == "chat.postMessage"]
    for line in describe(Answer(status=200, calls=posts), channels=CHANNELS):
        log.say(line)


def _quote_summary(session: Any, deal_id: int) -> str:
    deal = session.get(Deal, deal_id)
    version = deal.quote.current
    return (f"{deal.quote.number} v{version.version}: net {Money(version.net, deal.currency)} + "
            f"tax {Money(version.tax, deal.currency)} = {Money(version.gross, deal.currency)}, "
            f"valid until {version.valid_until}, payment {version.payment_terms_days} days")


def _wait_for(ledger: Any, deal_id: int, stage: Stage, timeout: float = 30.0) -> Stage:
    deadline = time.monotonic() + timeout
    while True:
        current = ledger.read(lambda s: s.get(Deal, deal_id).stage)
        if current is stage or time.monotonic() > deadline:
            return current
        time.sleep(0.01)


def _brief(data: dict[str, Any], currency: str) -> str:
    shown = {k: str(Money(v, currency)) if k == "gross" else v for k, v in data.items()
             if k not in ("evidence", "currency")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _write_artifacts(out: Path, services: Any, deal_id: int) -> None:
    def dump(name: str, rows: Any) -> None:
        (out / name).write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n",
                                encoding="utf-8")

    def collect(session: Any) -> None:
        dump("timeline.json", [{"at": e.occurred_at, "kind": e.kind, "actor": e.actor, "data": e.data}
                               for e in timeline(session, deal_id)])
        invoice = session.scalar(select(Invoice).where(Invoice.deal_id == deal_id))
        dump("invoice.json", {
            "number": invoice.number, "status": invoice.status.value, "currency": invoice.currency,
            "net": str(Money(invoice.net, invoice.currency)), "tax": str(Money(invoice.tax, invoice.currency)),
            "gross": str(Money(invoice.gross, invoice.currency)), "issued_at": invoice.issued_at,
            "due_on": invoice.due_on,
            "lines": [{"description": l.description, "quantity": str(l.quantity),
                       "unit": str(Money(l.unit_amount, invoice.currency)), "tax_rate": f"{l.tax_rate_bp / 100}%",
                       "net": str(Money(l.net, invoice.currency)), "period": [l.period_start, l.period_end]}
                      for l in invoice.lines]})
        dump("licenses.json", [{"product": l.product, "seats": l.seats, "features": l.features,
                                "status": l.status.value, "valid_until": l.valid_until}
                               for l in session.scalars(select(License).where(License.deal_id == deal_id))])
        dump("subscriptions.json", [{"sku_id": s.sku_id, "quantity": str(s.quantity), "interval": s.interval.value,
                                     "anchor": s.anchor, "status": s.status.value}
                                    for s in session.scalars(select(Subscription).where(
                                        Subscription.deal_id == deal_id))])

    services.ledger.read(collect)
