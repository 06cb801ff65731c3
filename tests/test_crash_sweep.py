"""The crash-point sweep (issue 9 item 4, RELIABILITY 38): SIGKILL a worker at each
instrumented point of quote → signature → invoice → charge → license → email, let the
pool restart it, and compare with a run without crashes.

Each run is one deal with its own planned crash, picked at random: the point and which
occurrence of it (a deal sends several emails and two payment.collect messages). All the
runs' deals go through one worker with 2 pool processes at once, after a reference phase
with the same deals and specs and no crash. Then every deal's final state must equal the
reference's, and the invariants must hold: at most one invoice per deal and period, the
gateway's own ledger (localstripe) charged exactly the invoice totals, one license per
paid deal (in the ledger and at the provisioning endpoint), every email accepted once per
Message-ID by the SMTP server (the one exception is in sweep_kit.invariants), nothing
accepted lost (every deal at billing_active, no dead or stuck outbox message).

    .venv/bin/pytest tests/test_crash_sweep.py                               # 20 runs
    CLOSELOOP_SWEEP_RUNS=1000 .venv/bin/pytest tests/test_crash_sweep.py     # the full size
    CLOSELOOP_SWEEP_SEED=1234 …                                              # replay a sweep

It prints its figures: runs, crashes planned and fired per point, redeliveries,
duplicates at the servers, the invariants, and the elapsed times. The suite's size is
small because every deal renders three real PDFs (its quote, its invoice, the invoice
again for the email), a few seconds each on a busy 2-core machine."""
from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from tests.celery_kit import pg_settings  # noqa: F401 — fixture
from tests.conftest import _truncate_postgres
from tests.stripe_peer import LocalStripe
from tests.sweep_kit import POINTS, facts, fingerprint, invariants, plan, run_phase, specs, stop

RUNS = int(os.environ.get("CLOSELOOP_SWEEP_RUNS", "20"))


def test_crash_sweep_matches_the_run_without_crashes(pg_settings, private_broker, tmp_path, capsys):  # noqa: F811
    seed = int(os.environ.get("CLOSELOOP_SWEEP_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    deal_specs = specs(RUNS, rng)
    started = time.monotonic()

    sweep(pg_settings, private_broker, tmp_path, rng, seed, deal_specs, started, capsys)


def sweep(pg_settings, broker, tmp_path, rng, seed, deal_specs, started, capsys):  # noqa: F811
    timeout = 180 + len(deal_specs) * 6.0  # each settle; a deal renders three PDFs (quote, invoice twice)
    with fresh_gateway() as gateway:
        reference = run_phase("reference", pg_settings, broker, tmp_path / "reference", gateway.url, deal_specs,
                              timeout=timeout)
        expected = facts(reference, gateway.url)
        stop(reference)
    assert all(not v for v in invariants(expected, set()).values()), invariants(expected, set())

    crashes = plan(reference.deals, expected.messages, rng)
    _truncate_postgres(pg_settings.database_url)
    with fresh_gateway() as gateway:
        crashed = run_phase("crash", pg_settings, broker, tmp_path / "crash", gateway.url, deal_specs,
                            crash_plan=sorted(crashes.values()), timeout=timeout)
        found = facts(crashed, gateway.url)
        stop(crashed)
    assert crashed.deals == reference.deals, "the crash phase numbered its deals differently"

    fired = set(crashed.fired)
    smtp_crashed = {deal for deal, name in crashes.items() if name in fired and name.startswith("smtp.accepted")}
    results = invariants(found, smtp_crashed)
    want, got = fingerprint(expected), fingerprint(found)
    differing = {deal: (want[deal], got[deal]) for deal in want if want[deal] != got[deal]}

    with capsys.disabled():
        print(report(seed, crashes, fired, expected, found, results, differing,
                     reference, crashed, time.monotonic() - started))
    assert fired == set(crashes.values()), f"planned crashes that never fired: {sorted(set(crashes.values()) - fired)}"
    assert "signal 9" in crashed.logs or "WorkerLostError" in crashed.logs
    assert not any(results.values()), {name: v[:10] for name, v in results.items() if v}
    assert not differing, dict(list(differing.items())[:3])


@contextmanager
def fresh_gateway() -> Iterator[LocalStripe]:
    """A localstripe of the phase's own: it keeps every object in memory and slows as they
    pile up (one shared by both phases of the 1,000-run sweep answered charges in 30 s)."""
    gateway = LocalStripe().start()
    try:
        yield gateway
    finally:
        gateway.stop()


def report(seed, crashes, fired, expected, found, results, differing, reference, crashed, total_s) -> str:
    reference_s, crash_s = reference.elapsed, crashed.elapsed
    expected_marks = {k: round(v, 1) for k, v in reference.marks.items()}
    found_marks = {k: round(v, 1) for k, v in crashed.marks.items()}
    by_point = Counter()
    fired_by_point = Counter()
    for name in crashes.values():
        point, kind, _ = name.split(":")
        by_point[f"{point}:{kind}"] += 1
        fired_by_point[f"{point}:{kind}"] += name in fired
    smtp_twice = sum(1 for n in found.smtp.values() if n > 1)
    webhook_repeats = len(found.provisioned) - len({key for key, _ in found.provisioned})
    lines = [
        "", f"crash-point sweep: {len(crashes)} runs (one deal each), seed {seed}",
        f"  points ({len(POINTS)}), planned / fired:",
        *(f"    {step:<9} {point}:{kind:<18} {by_point[f'{point}:{kind}']:>5} / {fired_by_point[f'{point}:{kind}']}"
          for step, point, kind in POINTS),
        f"  crashes fired: {len(fired)} of {len(crashes)}",
        f"  messages redelivered (attempts > 1): {dict(found.redelivered)}",
        f"  emails: {len(found.smtp)} Message-IDs (reference {len(expected.smtp)}); accepted twice after a crash at "
        f"smtp.accepted, same Message-ID: {smtp_twice}",
        f"  provisioning requests: {len(found.provisioned)} (reference {len(expected.provisioned)}); repeats with the "
        f"same Idempotency-Key, de-duplicated by the product: {webhook_repeats}",
        f"  gateway: {sum(1 for i in found.intents if i.get('status') == 'succeeded')} succeeded PaymentIntents, "
        f"{sum(i['amount'] for i in found.intents if i.get('status') == 'succeeded')} charged; "
        f"invoices {len(found.invoices)}, total {sum(g for *_, g, _ in found.invoices)}",
        "  invariants:",
        *(f"    {'ok  ' if not v else 'FAIL'} {name}" + (f": {len(v)} violations, e.g. {v[:3]}" if v else "")
          for name, v in results.items()),
        f"  final state equals the reference for {len(crashes) - len(differing)} of {len(crashes)} deals",
        f"  milestones (s): reference {expected_marks}, crash run {found_marks}",
        f"  elapsed: reference {reference_s:.1f} s, crash run {crash_s:.1f} s, whole sweep {total_s:.1f} s",
    ]
    return "\n".join(lines)
