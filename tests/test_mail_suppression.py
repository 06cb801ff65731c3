"""No mail to an address that bounced for good or asked to stop: the flag comes from
the real inbound path (a DSN for our message, an "unsubscribe" reply), and the next
email.send through the outbox to a real SMTP server (aiosmtpd on loopback) skips that
recipient with the reason on the message, the outbox row and the deal's timeline;
finance is alerted when what was skipped is an invoice or a reminder."""
from __future__ import annotations

from sqlalchemy import select

from flows.deals import Stage
from flows.errors import InvalidInput
from flows.mail import OutboundMail, OutboundStatus, clear_contact_flags, contact_flags, store_messages
from flows.outbox import OutboxMessage, OutboxStatus
from flows.queries import timeline
from flows.timeline import Event
from handlers.mail_read import ReadConfig, read_message
from parsers.mail_token import reply_address
from tests.factories import deal_at, seed
from tests.mail_samples import AUTHSERV, SECRET, dsn, reply
from tests.test_mail_outbound import FROM, mail_services_for, queue, smtp  # noqa: F401 — smtp: the server fixture

import pytest

ADA = "ada@acme.example"


@pytest.fixture
def mailing(settings, clock, smtp):  # noqa: F811
    built = mail_services_for(settings, clock, smtp_port=smtp.port, mail_authserv_id=AUTHSERV)
    yield built
    built.close()


@pytest.fixture
def deal(mailing) -> int:
    return deal_at(mailing.ledger, seed(mailing.ledger), Stage.SENT)


def ingest(services, *raws: bytes) -> None:
    config = ReadConfig(secret=SECRET, authserv_id=AUTHSERV)
    services.ledger.run(store_messages, mailbox="sales:test", role="sales", uidvalidity=1, last_uid=len(raws),
                        messages=[read_message(uid, raw, config) for uid, raw in enumerate(raws, 1)])


def outbound(services, message_id: str) -> OutboundMail:
    return services.ledger.read(lambda s: s.scalar(select(OutboundMail).where(OutboundMail.message_id == message_id)))


def send_row(services, key: str) -> OutboxMessage:
    return services.ledger.read(lambda s: s.scalar(select(OutboxMessage).where(
        OutboxMessage.idempotency_key == f"email.send:{key}")))


def alerts(services) -> list[OutboxMessage]:
    return services.ledger.read(lambda s: list(s.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "slack.alert"))))


def bounce_ada(services, deal: int) -> None:
    """A first mail reaches the relay, then a permanent DSN for it comes back."""
    first = queue(services, deal, key="first")
    services.relay.drain()
    ingest(services, dsn(original_message_id=first, recipient=ADA, status="5.1.1"))
    assert services.ledger.read(contact_flags, ADA) == {"bouncing"}


def test_an_invoice_to_a_hard_bounced_address_is_not_sent_and_finance_is_alerted(mailing, smtp, deal):  # noqa: F811
    bounce_ada(mailing, deal)
    delivered = len(smtp.received)
    invoice = queue(mailing, deal, key="invoice", template="invoice", subject="Invoice INV-2026-0001",
                    context={"number": "INV-2026-0001", "customer": "Acme", "name": "Ada", "amount_minor": 1000,
                             "currency": "EUR", "due_on": "2026-04-09"})
    mailing.relay.drain()
    assert len(smtp.received) == delivered  # nothing reached the SMTP server
    mail = outbound(mailing, invoice)
    assert mail.status is OutboundStatus.SUPPRESSED
    assert mail.error.startswith(f"not sent to {ADA} is bouncing (a previous mail to it bounced permanently)")
    row = send_row(mailing, "invoice")
    assert row.status is OutboxStatus.DEAD and f"not sent: {ADA} is bouncing" in row.last_error
    [event] = [e for e in mailing.ledger.read(timeline, deal) if e.kind == "mail.suppressed"]
    assert event.data["template"] == "invoice" and event.data["skipped"] == {ADA: mail.error.split(" is ", 1)[1]}
    [alert] = alerts(mailing)
    assert alert.payload["owner"] == "finance" and ADA in alert.payload["text"]
    assert "Invoice INV-2026-0001" in alert.payload["text"]


def test_an_unsubscribed_contact_gets_no_more_mail_and_no_alert_for_a_sales_email(mailing, smtp, deal):  # noqa: F811
    ingest(mailing, reply(to=reply_address(FROM, deal, SECRET), body="Please unsubscribe me."))
    assert mailing.ledger.read(contact_flags, ADA) == {"unsubscribed"}
    reminder = queue(mailing, deal, key="reminder")
    mailing.relay.drain()
    assert smtp.received == []
    assert outbound(mailing, reminder).status is OutboundStatus.SUPPRESSED
    assert "is unsubscribed (it asked to stop receiving mail)" in outbound(mailing, reminder).error
    assert send_row(mailing, "reminder").status is OutboxStatus.DEAD
    assert "mail.suppressed" in [e.kind for e in mailing.ledger.read(timeline, deal)]
    assert alerts(mailing) == []  # a quote email is the rep's: the deal's thread is told, finance is not


def test_the_other_recipients_still_get_it_and_the_skip_is_noted_once(mailing, smtp, deal):  # noqa: F811
    bounce_ada(mailing, deal)
    delivered = len(smtp.received)
    both = queue(mailing, deal, key="both", to=(ADA, "bob@acme.example"))
    mailing.relay.drain()
    [got] = smtp.received[delivered:]
    assert got.rcpt_tos == ["bob@acme.example"] and ADA not in got.data.decode()
    mail = outbound(mailing, both)
    assert mail.status is OutboundStatus.SENT and mail.error == f"not sent to {ADA} is bouncing (a previous mail " \
        "to it bounced permanently)"
    skips = [e for e in mailing.ledger.read(timeline, deal) if e.kind == "mail.recipients_skipped"]
    assert len(skips) == 1 and list(skips[0].data["skipped"]) == [ADA]


def test_mail_to_unflagged_contacts_is_sent_as_before(mailing, smtp, deal):  # noqa: F811
    sent = queue(mailing, deal, key="plain")
    mailing.relay.drain()
    assert [m.rcpt_tos for m in smtp.received] == [[ADA]]
    assert outbound(mailing, sent).status is OutboundStatus.SENT and outbound(mailing, sent).error == ""


def test_a_lifted_flag_lets_the_next_mail_go_out_and_says_who_lifted_it(mailing, smtp, deal):  # noqa: F811
    bounce_ada(mailing, deal)
    ingest(mailing, reply(to=reply_address(FROM, deal, SECRET), body="Please unsubscribe me."))
    assert mailing.ledger.read(contact_flags, ADA) == {"bouncing", "unsubscribed"}
    with pytest.raises(InvalidInput, match="say why"):
        mailing.ledger.run(clear_contact_flags, ADA, actor="finance.lead", reason=" ")
    assert mailing.ledger.run(clear_contact_flags, ADA.upper(), flag="bouncing", actor="finance.lead",
                              reason="their mailbox is fixed") == ["bouncing"]
    assert mailing.ledger.read(contact_flags, ADA) == {"unsubscribed"}  # still asked to stop: still suppressed
    with pytest.raises(InvalidInput, match="is not flagged bouncing"):
        mailing.ledger.run(clear_contact_flags, ADA, flag="bouncing", actor="finance.lead", reason="again")
    mailing.ledger.run(clear_contact_flags, ADA, actor="rep", reason="she asked to be mailed again")
    delivered = len(smtp.received)
    sent = queue(mailing, deal, key="after")
    mailing.relay.drain()
    assert [m.rcpt_tos for m in smtp.received[delivered:]] == [[ADA]]
    assert outbound(mailing, sent).status is OutboundStatus.SENT
    cleared = mailing.ledger.read(lambda s: list(s.scalars(select(Event).where(Event.kind == "contact.flag_cleared")
                                                           .order_by(Event.id))))
    assert [(e.actor, e.data["flags"], e.data["reason"]) for e in cleared] == [
        ("finance.lead", ["bouncing"], "their mailbox is fixed"), ("rep", ["unsubscribed"], "she asked to be mailed again")]
