"""Connect notices into `closeloop web` (served by waitress on loopback): HMAC on the
raw body with rotated keys, duplicates and out-of-order deliveries, completion with
the signed documents verified, declined/expired reaching the deal, and the
reconciler closing a deal whose notice never came."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from flows.deals import EnvelopeStatus, Stage
from flows.esign import DocuSignEnvelope
from flows.inbox import InboundEvent
from flows.steps import send_quote
from flows.timeline import Event
from tests.docusign_peer import KEYS, envelope_of, post
from tests.factories import quoted_deal, row_counts, seed, stage_of


def _sent(services) -> tuple[int, str]:
    deal_id = quoted_deal(services.ledger, seed(services.ledger))
    services.ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")
    services.relay.drain()
    return deal_id, envelope_of(services, deal_id).external_id


def _kinds(services, deal_id: int) -> list[str]:
    return services.ledger.read(lambda s: list(s.scalars(
        select(Event.kind).where(Event.deal_id == deal_id).order_by(Event.id))))


def test_a_notice_without_a_valid_hmac_is_refused_with_nothing_stored(esign, docusign, connect_url):
    deal_id, envelope = _sent(esign)
    docusign.set_status(envelope, "completed")
    body = docusign.connect_body(envelope)
    at = body.index(b"completed")
    altered = body[:at] + b"C" + body[at + 1:]  # one byte changed, signature of the original
    cases = {"missing": (body, []), "wrong key": (body, [docusign.sign(body, "not-our-key")]),
             "one byte altered": (altered, [docusign.sign(body, KEYS[1])]),
             "signed for another body": (body, [docusign.sign(body + b" ", KEYS[0])])}
    before = row_counts(esign.ledger)
    answers = {case: post(connect_url, data, signatures) for case, (data, signatures) in cases.items()}
    assert answers == dict.fromkeys(cases, 401)
    assert row_counts(esign.ledger) == before
    esign.relay.drain()
    assert stage_of(esign.ledger, deal_id) is Stage.SENT


def test_completed_three_times_and_a_late_sent_close_the_deal_once(esign, docusign, connect_url, tmp_path):
    deal_id, envelope = _sent(esign)
    sent_notice = docusign.connect_body(envelope)
    docusign.set_status(envelope, "completed")
    completed = docusign.connect_body(envelope)
    # the old key first, then the new one: either active key passes (rotation)
    assert post(connect_url, completed, [docusign.sign(completed, "retired-key"), docusign.sign(completed, KEYS[1])]) \
        == 200
    assert post(connect_url, completed, [docusign.sign(completed, KEYS[0])]) == 200
    assert post(connect_url, completed, [docusign.sign(completed, KEYS[1])]) == 200
    assert post(connect_url, sent_notice, [docusign.sign(sent_notice, KEYS[0])]) == 200  # arrives after completed
    claimed = esign.ledger.read(lambda s: s.scalar(select(func.count()).select_from(Event).where(
        Event.kind == "esign.notice_ignored")))
    esign.relay.drain()
    assert claimed == 0
    assert stage_of(esign.ledger, deal_id) is Stage.BILLING_ACTIVE  # signed, won, invoiced, licensed, billing
    assert _kinds(esign, deal_id).count("quote.signed") == 1
    assert _kinds(esign, deal_id).count("deal.won") == 1
    row = esign.ledger.read(lambda s: s.scalars(select(DocuSignEnvelope)).one())
    assert row.verdict == "accepted" and row.provider_status == "completed"
    signed = Path(row.signed_pdf).read_bytes()
    assert signed.startswith(b"%PDF-") and signed != docusign.envelopes[envelope].document
    evidence = esign.ledger.read(lambda s: s.scalars(select(Event.data).where(Event.kind == "quote.signed")).one())
    details = evidence["evidence"]["details"]  # the real verifier read DocuSign's stamp and the filled tabs
    assert details["signature"] == "docusign" and details["codes"] == []
    assert f"completed in DocuSign (envelope {envelope.upper()})" in details["notes"]
    assert Path(row.certificate_pdf).read_bytes().startswith(b"%PDF-")
    assert envelope_of(esign, deal_id).status is EnvelopeStatus.COMPLETED


def test_a_signed_pdf_the_verifier_rejects_does_not_advance_the_deal(esign, docusign, connect_url):
    docusign.fill_tabs = False  # "completed", but nothing is signed on the document it hands back
    deal_id, envelope = _sent(esign)
    docusign.set_status(envelope, "completed")
    body = docusign.connect_body(envelope)
    assert post(connect_url, body, [docusign.sign(body, KEYS[0])]) == 200
    esign.relay.drain()
    assert stage_of(esign.ledger, deal_id) is Stage.SENT
    assert "esign.signature_not_accepted" in _kinds(esign, deal_id)
    told = esign.ledger.read(lambda s: s.scalars(select(Event.data).where(
        Event.kind == "esign.signature_not_accepted")).one())
    assert told["reasons"] == ["the quote is not signed"]
    assert esign.ledger.read(lambda s: s.scalars(select(DocuSignEnvelope.verdict)).one()) == "rejected"


def test_declined_expired_and_voided_envelopes_reach_the_deal_thread(esign, docusign, connect_url):
    ended = {"declined": Stage.DECLINED, "expired": Stage.SENT, "voided": Stage.VOID}
    deals = {status: _sent(esign) for status in ended}
    for status, (_, envelope) in deals.items():
        docusign.set_status(envelope, status)
        body = docusign.connect_body(envelope)
        assert post(connect_url, body, [docusign.sign(body, KEYS[1])]) == 200
    esign.relay.drain()
    for status, (deal_id, _) in deals.items():
        assert stage_of(esign.ledger, deal_id) is ended[status], status
        assert f"esign.{status}" in _kinds(esign, deal_id)
        assert envelope_of(esign, deal_id).status is EnvelopeStatus(status)
    assert docusign.invalid == []  # nothing tried to void an envelope DocuSign had ended


def test_a_notice_that_never_comes_is_found_by_the_reconciler(esign, docusign, clock):
    deal_id, envelope = _sent(esign)
    docusign.set_status(envelope, "completed")
    assert esign.esign.reconcile() == {"polled": 0, "changed": 0}  # too early: Connect may still come
    clock.advance(timedelta(minutes=31))
    assert esign.esign.reconcile() == {"polled": 1, "changed": 1}
    assert stage_of(esign.ledger, deal_id) is Stage.BILLING_ACTIVE
    assert esign.esign.reconcile() == {"polled": 0, "changed": 0}


def test_an_unknown_envelope_is_acknowledged_and_ignored(esign, docusign, connect_url):
    deal_id, envelope = _sent(esign)
    body = docusign.connect_body(envelope).replace(envelope.encode(), b"00000000-0000-0000-0000-000000000000")
    assert post(connect_url, body, [docusign.sign(body, KEYS[0])]) == 200
    esign.relay.drain()
    assert stage_of(esign.ledger, deal_id) is Stage.SENT


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the writer's own connection is PostgreSQL's
def test_a_lost_database_connection_does_not_lose_or_refuse_the_next_notice(esign, docusign, connect_url):
    deal_id, envelope = _sent(esign)
    sent_again = docusign.connect_body(envelope)
    assert post(connect_url, sent_again, [docusign.sign(sent_again, KEYS[0])]) == 200  # the writer is connected
    with esign.engine.connect() as connection:  # the server drops every other session, the writer's too
        killed = connection.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    assert killed >= 1
    docusign.set_status(envelope, "completed")
    completed = docusign.connect_body(envelope)
    assert post(connect_url, completed, [docusign.sign(completed, KEYS[1])]) == 200
    assert post(connect_url, completed, [docusign.sign(completed, KEYS[1])]) == 200  # a re-delivery: stored once
    stored = esign.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundEvent).where(
        InboundEvent.source == "docusign")))
    assert stored == 2
    esign.relay.drain()
    assert stage_of(esign.ledger, deal_id) is Stage.BILLING_ACTIVE
