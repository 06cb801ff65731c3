"""Who may accept a quote or claim a payment by email (RELIABILITY #30), and what an
attachment may be before anything parses it (#31). Pure where the parsers decide;
through the ledger (SQLite and PostgreSQL) where the route decides."""
from __future__ import annotations

import io
import zipfile
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from closeloop.bootstrap import build
from flows.deals import Stage
from flows.mail import InboundMail, MailStatus, PaymentClaim, store_messages
from flows.outbox import OutboxMessage
from handlers.mail_read import ReadConfig, read_message
from parsers import email_attachments as policy_
from parsers.email_sender import check_sender, parse_from
from parsers.mail_token import deal_from_addresses, reply_address
from tests.factories import deal_at, seed
from tests.mail_samples import AUTHSERV, SECRET, reply, tiny_pdf

BASE = "sales@ourco.example"
OURS = f"{AUTHSERV}; dkim=pass header.d=acme.example header.s=s1"


def sender_of(raw: bytes):
    return check_sender(message_from_bytes(raw, policy=policy.default), raw, authserv_id=AUTHSERV)


# --- #30 spoofed senders -----------------------------------------------------------

SPOOFS = {
    "dkim_fail": dict(auth_results=[f"{AUTHSERV}; dkim=fail header.d=acme.example"]),
    "no_dkim": dict(auth_results=[f"{AUTHSERV}; spf=pass smtp.mailfrom=acme.example"]),
    "no_authentication_results": dict(auth_results=[]),
    "d_unaligned": dict(auth_results=[f"{AUTHSERV}; dkim=pass header.d=evil.example"]),
    # The attacker adds a passing result with our id BELOW the one our server put on top.
    "forged_extra_results": dict(auth_results=[f"{AUTHSERV}; dkim=none",
                                               OURS]),
    "foreign_authserv_on_top": dict(auth_results=["mx.evil.example; dkim=pass header.d=acme.example"]),
    "display_name_spoof": dict(sender='"billing@ourco.com" <attacker@evil.example>',
                               auth_results=[f"{AUTHSERV}; dkim=pass header.d=evil.example"]),
    "cve_2023_27043": dict(sender="alice@acme.example)<bob@evil.example>", auth_results=[OURS]),
}


@pytest.mark.parametrize("case", sorted(SPOOFS))
def test_a_spoofed_sender_is_not_authenticated_and_says_why(case):
    verdict = sender_of(reply(to=BASE, body="We accept.", **SPOOFS[case]))
    assert not verdict.authenticated
    assert verdict.reason


def test_two_from_headers_are_refused():
    raw = reply(to=BASE, body="x", auth_results=[OURS]).replace(b"From:", b"From: bob@evil.example\r\nFrom:", 1)
    verdict = sender_of(raw)
    assert not verdict.authenticated and "2 From headers" in verdict.reason


def test_the_cve_shape_never_yields_the_innocent_address():
    message = message_from_bytes(b"From: alice@example.org)<bob@evil.example>\r\n\r\nx", policy=policy.default)
    assert parse_from(message)[0] is None


def test_our_topmost_result_with_aligned_dkim_authenticates():
    verdict = sender_of(reply(to=BASE, body="x", auth_results=[OURS, "mx.evil.example; dkim=fail"]))
    assert verdict.authenticated and verdict.address == "ada@acme.example"


def test_the_deal_token_cannot_be_forged_or_moved_to_another_deal():
    good = reply_address(BASE, 12, SECRET)
    assert deal_from_addresses([good], SECRET) == 12
    assert deal_from_addresses([good.replace("+d12-", "+d13-")], SECRET) is None
    assert deal_from_addresses([reply_address(BASE, 12, "guess")], SECRET) is None


@pytest.fixture
def mail_services(settings, clock):
    built = build(settings.model_copy(update={"mail_secret": SECRET, "mail_authserv_id": AUTHSERV}), clock)
    yield built
    built.close()


def ingest(services, *raws: bytes) -> list[InboundMail]:
    config = ReadConfig(secret=SECRET, authserv_id=AUTHSERV)
    facts = [read_message(uid, raw, config) for uid, raw in enumerate(raws, 1)]
    services.ledger.run(store_messages, mailbox="sales:test", role="sales", uidvalidity=1,
                        last_uid=len(raws), messages=facts)
    return services.ledger.read(lambda s: list(s.scalars(select(InboundMail).order_by(InboundMail.id))))


def test_spoofed_acceptance_and_payment_claims_go_to_review_with_the_reason(mail_services):
    deal = deal_at(mail_services.ledger, seed(mail_services.ledger), Stage.SENT)
    to = reply_address(BASE, deal, SECRET)
    pdf = [("signed.pdf", "application/pdf", tiny_pdf())]
    raws = [reply(to=to, body="Signed, attached.", attachments=pdf, **SPOOFS[c]) for c in sorted(SPOOFS)]
    raws.append(reply(to=to, body="We have paid the invoice yesterday.", auth_results=[f"{AUTHSERV}; dkim=fail"]))
    raws.append(reply(to=to, body="Signed, attached.", attachments=pdf, sender="Eve <eve@acme.example>",
                      auth_results=[OURS]))  # authenticated, but not a contact of the customer
    stored = ingest(mail_services, *raws)
    for mail in stored:
        assert mail.status is MailStatus.REVIEW, (mail.subject, mail.reason)
        assert mail.reason
    assert "not a contact" in stored[-1].reason
    kinds = mail_services.ledger.read(lambda s: list(s.scalars(select(OutboxMessage.kind))))
    assert "mail.signed_return" not in kinds
    assert mail_services.ledger.read(lambda s: s.scalar(select(PaymentClaim.id))) is None


def test_a_payment_claim_from_the_contact_is_recorded_for_finance(mail_services):
    deal = deal_at(mail_services.ledger, seed(mail_services.ledger), Stage.INVOICED)
    [mail] = ingest(mail_services, reply(to=reply_address(BASE, deal, SECRET),
                                         body="We have paid the invoice today by bank transfer.",
                                         sender="Bob Billing <billing@acme.example>", auth_results=[OURS]))
    assert (mail.status, mail.intent) == (MailStatus.ROUTED, "payment_sent")
    claim = mail_services.ledger.read(lambda s: s.scalar(select(PaymentClaim)))
    assert claim.deal_id == deal and claim.from_address == "billing@acme.example"


def test_unsubscribe_flags_the_contact(mail_services):
    from flows.mail import contact_flags
    deal = deal_at(mail_services.ledger, seed(mail_services.ledger), Stage.SENT)
    ingest(mail_services, reply(to=reply_address(BASE, deal, SECRET), body="Please unsubscribe me."))
    assert mail_services.ledger.read(contact_flags, "ada@acme.example") == {"unsubscribed"}


def test_a_message_the_parsers_cannot_read_is_kept_for_a_person(mail_services):
    [mail] = ingest(mail_services, b"From: \xff\xfe\r\nContent-Type: multipart/mixed\r\n\r\n\x00\x00garbage")
    assert mail.status in (MailStatus.TRIAGE, MailStatus.REVIEW)
    assert mail.raw.endswith(b"garbage")


# --- #31 hostile attachments ---------------------------------------------------------

def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _bomb() -> bytes:
    """A zip whose directory declares 1 GiB uncompressed from a few kilobytes, as bombs do
    (the sizes are patched in: the test must not need 1 GiB of anything)."""
    import struct
    data = bytearray(_zip({"zeros.bin": bytes(1 << 20)}))
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 1 << 30)
    local = data.index(b"PK\x03\x04")
    data[local + 22:local + 26] = struct.pack("<I", 1 << 30)
    return bytes(data)


def _verdict(*attachments: tuple[str, str, bytes]) -> policy_.Verdict:
    raw = reply(to=BASE, body="see attached", attachments=list(attachments))
    return policy_.check_message(message_from_bytes(raw, policy=policy.default))


def _nested(depth: int) -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        inner = (b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n--" + boundary + b"\r\n"
                 + inner + b"\r\n--" + boundary + b"--\r\n")
    return b"From: ada@acme.example\r\nMIME-Version: 1.0\r\n" + inner


@pytest.mark.parametrize("name, kind, data, reason", [
    ("big.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(30 << 20), policy_.TOO_LARGE),
    ("invoice.pdf.exe", "application/octet-stream", b"MZ\x90\x00" + bytes(100), policy_.DOUBLE_EXTENSION),
    ("quote.pdf", "application/pdf", b"<!DOCTYPE html><html><script>x()</script></html>", policy_.TYPE_MISMATCH),
    ("docs.zip", "application/zip", _zip({"../../etc/cron.d/x": b"boom"}), policy_.ARCHIVE_TRAVERSAL),
    ("docs.zip", "application/zip", _zip({"quote.pdf": tiny_pdf()}), policy_.ARCHIVE),
    ("setup.exe", "application/octet-stream", b"MZ" + bytes(100), policy_.EXECUTABLE),
])
def test_a_hostile_attachment_is_refused_with_its_reason(name, kind, data, reason):
    [attachment] = _verdict((name, kind, data)).attachments
    assert attachment.refused == reason, attachment.detail
    assert attachment.detail


def test_a_zip_bomb_is_refused_from_its_directory_without_extracting():
    [attachment] = _verdict(("data.zip", "application/zip", _bomb())).attachments
    assert attachment.refused == policy_.ARCHIVE_BOMB and "1073741824" in attachment.detail


def test_too_many_parts_and_too_deep_nesting_refuse_the_message():
    many = _verdict(*[(f"n{i}.txt", "text/plain", b"x") for i in range(500)])
    assert many.refused == policy_.TOO_MANY_PARTS
    deep = policy_.check_message(message_from_bytes(_nested(100), policy=policy.default))
    assert deep.refused == policy_.TOO_DEEP


def test_a_real_pdf_passes():
    [attachment] = _verdict(("quote.pdf", "application/pdf", tiny_pdf())).attachments
    assert attachment.refused is None and attachment.content_type == "application/pdf"


def test_limits_are_configurable():
    raw = reply(to=BASE, body="x", attachments=[("q.pdf", "application/pdf", tiny_pdf())])
    verdict = policy_.check_message(message_from_bytes(raw, policy=policy.default),
                                    policy_.Limits(max_attachment_bytes=100))
    assert verdict.attachments[0].refused == policy_.TOO_LARGE


# --- DKIM verified here when no trusted Authentication-Results (dkimpy) ---------------

def _dkim_verdict(raw: bytes, dns):
    message = message_from_bytes(raw, policy=policy.default)
    return check_sender(message, raw, authserv_id=AUTHSERV, dns_txt=dns)


def test_a_valid_aligned_dkim_signature_authenticates_without_authentication_results():
    from tests.mail_samples import dkim_signed, dns_for
    raw = dkim_signed(reply(to=BASE, body="We accept.", auth_results=[]))
    verdict = _dkim_verdict(raw, dns_for())
    assert verdict.authenticated and "dkim verified d=acme.example" in verdict.reason


def test_a_body_changed_after_signing_or_an_unaligned_signer_does_not_authenticate():
    from tests.mail_samples import dkim_signed, dns_for
    tampered = dkim_signed(reply(to=BASE, body="We accept.", auth_results=[])).replace(b"We accept.", b"We paid!!")
    assert not _dkim_verdict(tampered, dns_for()).authenticated
    other = dkim_signed(reply(to=BASE, body="We accept.", auth_results=[]), domain="evil.example")
    verdict = _dkim_verdict(other, dns_for("evil.example"))
    assert not verdict.authenticated and "not aligned" in verdict.reason
    unsigned = reply(to=BASE, body="We accept.", auth_results=[])
    assert _dkim_verdict(unsigned, dns_for()).reason == "no DKIM signature"
