"""Signing by email without DocuSign: a returned signed copy the verifier accepts signs
the quote and closes the deal; one it rejects leaves the deal waiting, tells the deal
thread, and queues an email to the customer listing exactly what to fix (once)."""
from __future__ import annotations

from adapters.email_signing import rejection_text
from adapters.esign_ports import SignatureVerdict
from flows.deals import Stage
from flows.outbox import OutboxMessage
from flows.steps import Done, send_quote
from tests.factories import quoted_deal, seed, stage_of


class Verdicts:
    def __init__(self, verdict: SignatureVerdict) -> None:
        self.verdict = verdict

    def verify(self, pdf: bytes, deal_id: int) -> SignatureVerdict:
        return self.verdict


def _sent_by_email(services) -> int:
    deal_id = quoted_deal(services.ledger, seed(services.ledger))
    services.ledger.run(send_quote, deal_id, provider="email", actor="U_REP")
    return deal_id


def test_an_accepted_copy_closes_the_deal_and_a_rejected_one_asks_the_customer_to_fix_it(services):
    signed, wrong = _sent_by_email(services), _sent_by_email(services)
    services.signed_quote_check = Verdicts(SignatureVerdict("accepted", signer="ada@acme.example"))
    assert services.email_signing.returned(signed, b"%PDF-1.7 signed", key="att-1") is Done.ACTED
    assert stage_of(services.ledger, signed) is Stage.BILLING_ACTIVE

    reasons = ("line 2: quantity 12 differs from the quote (10)", "no signature on page 2")
    services.signed_quote_check = Verdicts(SignatureVerdict("rejected", reasons))
    assert services.email_signing.returned(wrong, b"%PDF-1.7 altered", key="att-2") is Done.ACTED
    assert services.email_signing.returned(wrong, b"%PDF-1.7 altered", key="att-2") is Done.ALREADY
    assert stage_of(services.ledger, wrong) is Stage.SENT
    [mail] = services.ledger.read(lambda s: s.query(OutboxMessage).filter_by(kind="esign.rejection_email").all())
    assert mail.payload["to"] == "ada@acme.example" and mail.payload["reasons"] == list(reasons)
    thread = services.ledger.read(lambda s: s.query(OutboxMessage).filter_by(kind="slack.deal_thread").all())
    assert any("no signature on page 2" in m.payload["text"] for m in thread if m.deal_id == wrong)
    subject, body = rejection_text(mail.payload["locale"], mail.payload["quote"], 1, mail.payload["reasons"])
    assert "Q-2026-0002" in subject and "  - no signature on page 2" in body


def test_the_what_to_fix_email_is_in_the_customers_language():
    subject, body = rejection_text("pl-PL", "Q-2026-0042", 3, ["brak podpisu na stronie 2"])
    assert subject.startswith("Oferta Q-2026-0042") and "(wersja 3)" in body and "  - brak podpisu" in body
    assert rejection_text("xx", "Q-1", 1, [])[0].startswith("Quote Q-1")
