"""Message kinds from sample .eml files: auto-replies (and people who only look like
them), RFC 3464 delivery reports and the non-standard bounce notices."""
from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from parsers.email_kind import Bounce, MessageKind, classify_message

FIXTURES = Path(__file__).parent / "fixtures" / "email"


def kind_of(name: str):
    return classify_message(BytesParser(policy=policy.default).parsebytes((FIXTURES / name).read_bytes()))


@pytest.mark.parametrize("name, reason_start", [
    ("ooo_auto_submitted.eml", "Auto-Submitted: auto-replied"),
    ("ooo_subject_de.eml", "out-of-office subject"),
    ("ooo_outlook_en.eml", "out-of-office subject"),
    ("ooo_body_pl.eml", "out-of-office text"),
    ("read_receipt.eml", "multipart/report; report-type=disposition-notification"),
    ("dsn_delivered.eml", "multipart/report: delivery report, Action: delivered"),
])
def test_auto_replies(name, reason_start):
    kind = kind_of(name)
    assert kind.kind is MessageKind.AUTO_REPLY
    assert kind.reason.startswith(reason_start)
    assert kind.bounce is None


@pytest.mark.parametrize("name", ["human_outlook_reply.eml", "human_quotes_ooo.eml", "signed_reply.eml"])
def test_people_are_not_auto_replies(name):
    """Outlook's X-Auto-Response-Suppress on a person's reply, and an out-of-office notice
    in the quoted history, do not make a message automatic."""
    assert kind_of(name).kind is MessageKind.REPLY


@pytest.mark.parametrize("header", ["X-Autoreply: yes", "X-Autorespond: vacation", "Precedence: auto_reply",
                                    "Precedence: bulk", "Precedence: junk", "Auto-Submitted: auto-generated"])
def test_auto_reply_headers(header):
    raw = f"From: a@example.com\nSubject: Re: Quote\n{header}\n\nThanks for your mail.\n".encode()
    assert classify_message(BytesParser(policy=policy.default).parsebytes(raw)).kind is MessageKind.AUTO_REPLY


@pytest.mark.parametrize("header", ["Auto-Submitted: no", "Precedence: list", "X-Auto-Response-Suppress: All"])
def test_headers_that_do_not_make_an_auto_reply(header):
    raw = f"From: a@example.com\nSubject: Re: Quote\n{header}\n\nWhen can we start?\n".encode()
    assert classify_message(BytesParser(policy=policy.default).parsebytes(raw)).kind is MessageKind.REPLY


def test_a_person_mentioning_vacation_in_the_subject_is_a_person():
    raw = "From: a@example.com\nSubject: Re: Vacation days in the contract\n\nCan we add 5 days?\n".encode()
    assert classify_message(BytesParser(policy=policy.default).parsebytes(raw)).kind is MessageKind.REPLY


def test_dsn_permanent_failure_5_1_1():
    kind = kind_of("dsn_5_1_1.eml")
    assert kind.kind is MessageKind.BOUNCE
    assert kind.reason == "multipart/report; report-type=delivery-status"
    assert kind.bounce == Bounce(
        original_message_id="<quote-q1001.42@closeloop.example>", recipient="ann@customer.example",
        status="5.1.1", permanent=True,
        diagnostic="550 5.1.1 <ann@customer.example>: Recipient address rejected: User unknown in virtual "
                   "mailbox table")


def test_dsn_delay_4_4_1_is_not_permanent_and_finds_the_id_in_rfc822_headers():
    bounce = kind_of("dsn_delay_4_4_1.eml").bounce
    assert bounce is not None
    assert (bounce.original_message_id, bounce.recipient, bounce.status, bounce.permanent) == (
        "<invoice-7.99@closeloop.example>", "bob@slow.example", "4.4.1", False)
    assert "Connection timed out" in bounce.diagnostic


@pytest.mark.parametrize("name, message_id, recipient, diagnostic_part", [
    ("bounce_exim_inline.eml", "<quote-q1002.7@closeloop.example>", "carol@gone.example", "does not exist"),
    ("bounce_qmail.eml", "<quote-q1003.1@closeloop.example>", "dave@mailbox.example", "no mailbox here"),
])
def test_non_standard_bounces_with_inline_headers(name, message_id, recipient, diagnostic_part):
    kind = kind_of(name)
    assert kind.kind is MessageKind.BOUNCE
    assert kind.bounce is not None
    assert kind.bounce.original_message_id == message_id
    assert kind.bounce.recipient == recipient
    assert kind.bounce.status == "5.1.1"
    assert kind.bounce.permanent is True
    assert diagnostic_part in kind.bounce.diagnostic


def test_a_delay_notice_without_status_code_is_temporary():
    raw = ("From: Mail Delivery Subsystem <mailer-daemon@example.net>\nSubject: Warning: message delayed\n\n"
           "Your message to eve@example.org has not yet been delivered. We will retry for 4 more days.\n").encode()
    bounce = classify_message(BytesParser(policy=policy.default).parsebytes(raw)).bounce
    assert bounce is not None and bounce.permanent is False and bounce.recipient == "eve@example.org"


def test_legacy_policy_messages_are_read_too():
    from email import message_from_bytes
    message = message_from_bytes((FIXTURES / "dsn_5_1_1.eml").read_bytes())
    assert classify_message(message).bounce.status == "5.1.1"  # type: ignore[union-attr]


def test_damaged_messages_are_read_or_refused_plainly():
    """Truncated and bit-flipped copies of the fixtures: a reading or UnreadableMessage, never a crash."""
    import random

    from parsers.email_understanding import UnreadableMessage, understand_message
    rng = random.Random(42)
    for path in sorted(FIXTURES.glob("*.eml")):
        raw = path.read_bytes()
        for _ in range(15):
            damaged = bytearray(raw[:rng.randint(0, len(raw))])
            for _ in range(rng.randint(0, 8)):
                if damaged:
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            try:
                result = understand_message(bytes(damaged))
            except UnreadableMessage as error:
                assert error.code in {"empty", "not_text", "bad_message", "too_large"}
            else:
                assert isinstance(result["reply"], str) and isinstance(result["auto_reply"], bool)


def _plain(subject: str, body: str):
    raw = f"From: a@example.com\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n".encode()
    return classify_message(BytesParser(policy=policy.default).parsebytes(raw))


OOO_SUBJECTS = [
    "Out of Office: Your quote", "Automatic reply: Your quote", "[Out of Office] quote",
    "Abwesenheitsnotiz: Ihr Angebot", "Automatische Antwort: Ihr Angebot", "Réponse automatique : Votre devis",
    "Absent du bureau : devis", "Respuesta automática: Su cotización", "Fuera de la oficina: cotización",
    "Automatyczna odpowiedź: Oferta", "Poza biurem: Oferta", "Automatinis atsakymas: Pasiūlymas",
    "Balasan otomatis: Penawaran", "Di luar kantor: Penawaran", "מענה אוטומטי: הצעת מחיר",
    "Автоматический ответ: Предложение", "Risposta automatica: Preventivo", "Fuori sede: Preventivo",
    "Automatisch antwoord: Offerte", "Afwezig: Offerte",
]


@pytest.mark.parametrize("subject", OOO_SUBJECTS)
def test_out_of_office_subjects(subject):
    assert _plain(subject, "Thank you for your message.").kind is MessageKind.AUTO_REPLY


OOO_BODIES = {
    "en": "I am currently out of the office until 12 December with limited access to email.",
    "de": "Ich bin bis zum 12.12. nicht im Büro. In dringenden Fällen wenden Sie sich an info@x.de.",
    "fr": "Je suis absent jusqu'au 12 décembre. Pour toute urgence, contactez info@x.fr.",
    "es": "Estoy fuera de la oficina hasta el 12 de diciembre.",
    "pl": "Jestem na urlopie do 12 grudnia.",
    "lt": "Šiuo metu esu atostogose iki gruodžio 12 d.",
    "id": "Saya sedang cuti sampai tanggal 12 Desember.",
    "he": "אני מחוץ למשרד עד ה-12 בדצמבר.",
    "ru": "Я в отпуске до 12 декабря.",
    "it": "Sono fuori ufficio fino al 12 dicembre.",
    "nl": "Ik ben afwezig tot en met 12 december.",
}


@pytest.mark.parametrize("language", sorted(OOO_BODIES))
def test_out_of_office_wording_under_a_plain_reply_subject(language):
    kind = _plain("Re: Your quote Q-1001", OOO_BODIES[language])
    assert kind.kind is MessageKind.AUTO_REPLY, language
    assert kind.reason.startswith("out-of-office text")


@pytest.mark.parametrize("body", [
    "I'll be out of the office next week, so please send the signed copy to my colleague.",
    "I'm out of the office until Monday, but here is the signed quote.",
    "Jestem na urlopie, ale podpisałem ofertę — w załączniku.",
    "Thanks!\n\nOn Tue, 5 Dec 2023 at 10:00, Ann <a@example.com> wrote:\n> I am out of the office until Monday.\n",
])
def test_people_who_mention_being_away_are_people(body):
    assert _plain("Re: Your quote Q-1001", body).kind is MessageKind.REPLY
