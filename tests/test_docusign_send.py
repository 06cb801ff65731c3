"""Sending quotes through DocuSign with the real SDK against the loopback DocuSign:
JWT grant, envelope bodies valid against the official spec, one envelope per send
even when the create's answer is lost, void, and the token cache."""
from __future__ import annotations

import base64
from decimal import Decimal
from datetime import datetime, timedelta, timezone

import pytest

from flows.deals import EnvelopeStatus, Stage
from flows.outbox import OutboxMessage, OutboxStatus
from flows.parties import Customer
from flows.steps import revise_quote, send_quote, void_quote
from tests.docusign_peer import envelope_of
from tests.factories import LineRequest, quoted_deal, seed, stage_of


def _sent(services, language: str = "pl") -> int:
    customer_id = seed(services.ledger)
    services.ledger.run(lambda tx: setattr(tx.get(Customer, customer_id), "language", language))
    deal_id = quoted_deal(services.ledger, customer_id)
    services.ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")
    services.relay.drain()
    return deal_id


def test_a_sent_quote_becomes_one_envelope_valid_against_the_spec(esign, docusign):
    deal_id = _sent(esign, language="pl")
    assert docusign.invalid == []
    [stored] = docusign.envelopes.values()
    definition = stored.definition
    assert definition["emailSubject"].startswith("Prosimy o podpisanie oferty Q-2026-0001")
    signer = definition["recipients"]["signers"][0]
    assert signer["email"] == "ada@acme.example" and signer["name"] == "Ada Signer"
    tabs = signer["tabs"]
    assert [t["anchorString"] for t in tabs["signHereTabs"] + tabs["dateSignedTabs"] + tabs["fullNameTabs"]] == \
        ["/sn1/", "/dt1/", "/fn1/"]
    assert stored.custom_fields == {"closeloop_key": "Q-2026-0001:v1"}
    assert definition["notification"]["expirations"]["expireAfter"] == "30"
    assert base64.b64decode(definition["documents"][0]["documentBase64"]).startswith(b"%PDF-")
    envelope = envelope_of(esign, deal_id)
    assert envelope.external_id == stored.envelope_id and envelope.status is EnvelopeStatus.SENT
    assert docusign.token_grants == 1


def test_an_answer_lost_after_the_create_does_not_make_a_second_envelope(esign, docusign, clock):
    docusign.drop_after_create = 1
    deal_id = _sent(esign)
    assert len(docusign.envelopes) == 1  # created, but we never heard
    assert envelope_of(esign, deal_id).external_id is None
    failed = esign.ledger.read(lambda s: s.query(OutboxMessage).filter_by(kind="esign.send").one())
    assert failed.status is OutboxStatus.PENDING and failed.attempts == 1
    clock.advance(timedelta(minutes=5))
    esign.relay.drain()
    [stored] = docusign.envelopes.values()
    assert envelope_of(esign, deal_id).external_id == stored.envelope_id
    assert [m for m, p in docusign.requests if m == "POST" and p.endswith("/envelopes")] == ["POST"]


def test_a_voided_quote_voids_its_envelope(esign, docusign):
    deal_id = _sent(esign)
    esign.ledger.run(void_quote, deal_id, reason="customer chose another plan", actor="U_REP")
    esign.relay.drain()
    [stored] = docusign.envelopes.values()
    assert stored.status == "voided" and stored.voided_reason == "customer chose another plan"
    assert docusign.invalid == []


def test_a_revised_quote_voids_the_old_envelope_and_the_new_version_gets_its_own(esign, docusign):
    deal_id = _sent(esign)
    esign.ledger.run(revise_quote, deal_id, key="rev-1", lines=[LineRequest("SEAT", Decimal(12))], actor="U_REP")
    esign.ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")
    esign.relay.drain()
    keys = sorted((e.custom_fields["closeloop_key"], e.status) for e in docusign.envelopes.values())
    assert keys == [("Q-2026-0001:v1", "voided"), ("Q-2026-0001:v2", "sent")]
    assert stage_of(esign.ledger, deal_id) is Stage.SENT
    assert docusign.token_grants == 1  # the token is cached across calls


def test_without_docusign_the_send_stays_on_the_file_sink(services):
    customer_id = seed(services.ledger)
    deal_id = quoted_deal(services.ledger, customer_id)
    services.ledger.run(send_quote, deal_id, provider="docusign", actor="U_REP")
    services.relay.drain()
    assert [r["payload"]["deal_id"] for r in services.sink.read("esign.send")] == [deal_id]


def test_the_token_is_cached_renewed_before_expiry_and_after_a_revocation(jwt_key, docusign):
    from docusign_esign.client.api_exception import ApiException

    from adapters.docusign_esign import DocuSign, DocuSignConfig
    from closeloop.demo.loopback_docusign import INTEGRATION_KEY, USER
    now = [1_000_000.0]
    client = DocuSign(DocuSignConfig(INTEGRATION_KEY, USER, jwt_key, docusign.host, ca_cert=docusign.cert_path),
                      clock=lambda: now[0])
    since = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert client.find_by_key("Q-none:v1", since) is None
    now[0] += 3000  # 10 minutes before the hour-long token expires: still used
    client.find_by_key("Q-none:v1", since)
    assert docusign.token_grants == 1
    now[0] += 400  # within 5 minutes of expiry: renewed first
    client.find_by_key("Q-none:v1", since)
    assert docusign.token_grants == 2
    docusign.tokens.clear()  # revoked at DocuSign
    with pytest.raises(ApiException):
        client.find_by_key("Q-none:v1", since)
    client.find_by_key("Q-none:v1", since)  # the relay's retry gets a fresh token
    assert docusign.token_grants == 3
    assert [p for m, p in docusign.requests if p == "/oauth/userinfo"] == ["/oauth/userinfo"]  # account cached
