"""The reconciler leaves DocuSign alone when it answers 429 or 5xx: exactly as long as
Retry-After says, else doubling from 30 s; a successful poll starts over. Against the
loopback DocuSign (the SDK's real requests), on both databases."""
from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from datetime import datetime, timezone

from adapters.docusign_esign import retry_after
from flows.deals import Stage
from flows.steps import send_quote
from tests.docusign_peer import envelope_of
from tests.factories import quoted_deal, seed, stage_of


def _signed_but_unannounced(services, docusign, clock) -> int:
    deal_id = quoted_deal(services.ledger, seed(services.ledger))
    services.ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")
    services.relay.drain()
    docusign.set_status(envelope_of(services, deal_id).external_id, "completed")  # no Connect notice comes
    clock.advance(timedelta(minutes=31))
    return deal_id


def _polls(docusign) -> int:
    return sum(1 for method, path in docusign.requests if method == "GET" and path.endswith("/envelopes"))


def test_a_429_is_waited_out_exactly_as_retry_after_says(esign, docusign, clock):
    deal_id = _signed_but_unannounced(esign, docusign, clock)
    docusign.busy_polls = [(429, "120")]
    assert esign.esign.reconcile() == {"polled": 0, "changed": 0, "deferred": 1, "retry_in": 120}
    polls = _polls(docusign)
    clock.advance(timedelta(seconds=119))
    assert esign.esign.reconcile() == {"polled": 0, "changed": 0, "deferred": 1, "retry_in": 1}
    assert _polls(docusign) == polls  # not asked again while it told us to wait
    assert stage_of(esign.ledger, deal_id) is Stage.SENT
    clock.advance(timedelta(seconds=1))
    assert esign.esign.reconcile() == {"polled": 1, "changed": 1}
    assert _polls(docusign) == polls + 1
    assert stage_of(esign.ledger, deal_id) is Stage.BILLING_ACTIVE


def test_5xx_backs_off_doubling_and_a_success_starts_over(esign, docusign, clock):
    deal_id = _signed_but_unannounced(esign, docusign, clock)
    docusign.busy_polls = [(503, None), (500, None), (502, None)]
    waits = []
    for _ in range(3):
        answer = esign.esign.reconcile()
        assert answer["deferred"] == 1 and answer["polled"] == 0
        waits.append(answer["retry_in"])
        assert esign.esign.reconcile()["retry_in"] == waits[-1]  # still waiting: DocuSign not asked
        clock.advance(timedelta(seconds=waits[-1]))
    assert waits == [30, 60, 120]
    assert esign.esign.reconcile() == {"polled": 1, "changed": 1}
    assert stage_of(esign.ledger, deal_id) is Stage.BILLING_ACTIVE
    deal_2 = _signed_but_unannounced(esign, docusign, clock)
    docusign.busy_polls = [(503, "7")]  # a 503 that says how long: that, not the doubling
    assert esign.esign.reconcile() == {"polled": 0, "changed": 0, "deferred": 1, "retry_in": 7}
    docusign.busy_polls = [(503, None)]
    clock.advance(timedelta(seconds=7))
    assert esign.esign.reconcile()["retry_in"] == 60  # the run of failures goes on: 7 s was the first
    clock.advance(timedelta(seconds=60))
    assert esign.esign.reconcile() == {"polled": 1, "changed": 1}
    assert stage_of(esign.ledger, deal_2) is Stage.BILLING_ACTIVE


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc).timestamp()
    assert retry_after("120", now) == 120.0
    assert retry_after(format_datetime(datetime(2026, 3, 10, 9, 2, 30, tzinfo=timezone.utc), usegmt=True), now) \
        == 150.0
    assert retry_after(format_datetime(datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc), usegmt=True), now) == 0.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None
