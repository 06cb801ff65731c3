"""The demo's billing part: the license key signed and verified offline, the billing
run for the next period — once, however often it runs."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from closeloop.license_signing import load_signing_key, signer
from flows.billing import Subscription, SubscriptionPeriod
from flows.billing_run import run_billing
from flows.clock import ManualClock
from flows.license_keys import key_id, mint_license_key, verify_key
from flows.licenses import License


def billing_scene(log: Any, services: Any, deal_id: int, clock: ManualClock) -> None:
    ledger, settings = services.ledger, services.settings
    log.say()
    log.say("8. License key and the billing run")
    periods = ledger.read(lambda s: s.execute(
        select(SubscriptionPeriod.start, SubscriptionPeriod.end).join(Subscription)
        .where(Subscription.deal_id == deal_id).order_by(SubscriptionPeriod.start.desc())).first())
    if periods is None:
        log.say("  · no recurring items: nothing for the billing run")
        return
    log.say(f"  ✓ first period {periods[0]} – {periods[1]} was billed by the deal's invoice")
    end = periods[1]
    for _ in range(2):  # the next period begins; then the clock moves a month and the next one does
        clock.set(max(clock.now(), _morning_of(end, settings.timezone)))
        first = log.step(f"{clock.now():%Y-%m-%d}: closeloop billing run",
                         lambda: run_billing(ledger, keep_numbers=True))
        log.say(f"    {first.summary()}: {', '.join(first.numbers)}")
        again = log.step("the same run again (a retried beat, a second worker)", lambda: run_billing(ledger))
        log.say(f"    {again.summary()}")
        end = ledger.read(lambda s: s.scalar(select(Subscription.next_start).where(Subscription.deal_id == deal_id)))
    license_id = ledger.read(lambda s: s.scalar(select(License.id).where(License.deal_id == deal_id)))
    if license_id is not None:
        key = log.step("license key for the renewed period signed (Ed25519)",
                       lambda: ledger.run(mint_license_key, license_id, signer(settings)))
        public = load_signing_key(settings).public_key()
        claims = verify_key(key, public, clock.now())
        log.say(f"  ✓ verified offline with public key {key_id(public)}: {claims['customer']}, "
                f"{claims['seats']} × {claims['product']}, features {claims['features']}")
        log.say(f"    {key[:60]}…")
    clock.advance(timedelta(hours=1))


def _morning_of(day: Any, zone: str) -> Any:
    from datetime import datetime, time
    from zoneinfo import ZoneInfo
    return datetime.combine(day, time(6), ZoneInfo(zone))
