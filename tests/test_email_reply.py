"""Reply extraction, language and intent: our own multilingual fixtures (sample in,
expected text out), no shared corpus."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.reply_extraction import case_passes, closeloop_extractor, load_cases
from parsers.email_reply import Intent, classify_intent, extract_reply

FIXTURES = Path(__file__).parent / "fixtures" / "email"
CASES = load_cases(FIXTURES)
# The share of our own fixture cases closeloop passes, as recorded when they were written.
RECORDED_FIXTURE_ACCURACY = 1.0


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_fixture_case(case):
    output = closeloop_extractor()(case)
    assert case_passes(output, case["expect"]), f"{case['id']}: got {output!r}, expected {case['expect']}"


def test_fixture_accuracy_does_not_regress_below_the_recorded_figure():
    run = closeloop_extractor()
    passed = sum(case_passes(run(case), case["expect"]) for case in CASES)
    assert len(CASES) >= 150
    assert passed / len(CASES) >= RECORDED_FIXTURE_ACCURACY


def test_every_required_language_has_header_block_and_separator_cases():
    by_kind: dict[str, set[str]] = {}
    for case in CASES:
        kind = case["id"].rsplit("-", 1)[0]
        by_kind.setdefault(kind, set()).add(case["lang"])
    required = {"en", "he", "pl", "lt", "id", "ru", "de", "fr", "es"}
    for kind in ("gmail-header", "outlook-block", "original-message", "signoff", "mobile-footer", "html-gmail",
                 "html-outlook"):
        assert required <= by_kind[kind], kind


def test_reply_keeps_the_signature_body_drops_it():
    reply = extract_reply("Please send 12 licences.\n\nBest regards,\nAnn Lee\n+1 555 0100\n\n"
                          "On Tue, 5 Dec 2023 at 10:00, Sales <sales@example.com> wrote:\n> Your quote\n")
    assert reply.reply == "Please send 12 licences.\n\nBest regards,\nAnn Lee\n+1 555 0100"
    assert reply.body == "Please send 12 licences."
    assert reply.signature == "Best regards,\nAnn Lee\n+1 555 0100"
    assert reply.language == "en"


def test_html_is_used_when_there_is_no_plain_text():
    html = ('<div dir="ltr">Fine, go ahead.</div><div class="gmail_quote"><div class="gmail_attr">'
            'On Tue, 5 Dec 2023 at 10:00, Sales &lt;s@example.com&gt; wrote:</div>'
            '<blockquote class="gmail_quote">Old text</blockquote></div>')
    assert extract_reply("", html).reply == "Fine, go ahead."
    assert extract_reply("Plain wins.", html).reply == "Plain wins."


def test_a_message_that_is_all_signature_keeps_its_words():
    reply = extract_reply("Thanks,\nAnn")
    assert reply.body == "Thanks,\nAnn"
    assert reply.signature == ""


def test_empty_text_is_an_empty_reply_of_unknown_language():
    reply = extract_reply("")
    assert (reply.reply, reply.body, reply.signature, reply.language) == ("", "", "", "und")


@pytest.mark.parametrize("text, language", [
    ("Could you please send the invoice to our accounts department?", "en"),
    ("Czy mogą Państwo wysłać fakturę na adres działu księgowości?", "pl"),
    ("Ar galite atsiųsti sąskaitą faktūrą mūsų buhalterijai?", "lt"),
    ("Apakah Anda bisa mengirimkan faktur ke bagian keuangan kami?", "id"),
    ("Не могли бы вы отправить счёт в нашу бухгалтерию?", "ru"),
    ("האם תוכלו לשלוח את החשבונית למחלקת הנהלת החשבונות?", "he"),
    ("Könnten Sie die Rechnung bitte an unsere Buchhaltung senden?", "de"),
    ("Pourriez-vous envoyer la facture à notre service comptable ?", "fr"),
    ("¿Podrían enviar la factura a nuestro departamento de contabilidad?", "es"),
    ("Potreste inviare la fattura al nostro ufficio contabilità?", "it"),
    ("Kunt u de factuur naar onze boekhouding sturen?", "nl"),
])
def test_language_of_the_new_text(text, language):
    assert extract_reply(text).language == language


INTENTS = [
    # signed document
    ("Please find attached the signed quote.", "", (), Intent.SIGNED_DOCUMENT),
    ("Here you go.", "Re: Quote Q-1", ("Q-1_signed.pdf",), Intent.SIGNED_DOCUMENT),
    ("W załączniku podpisana oferta.", "", (), Intent.SIGNED_DOCUMENT),
    ("Anbei das unterschriebene Angebot.", "", (), Intent.SIGNED_DOCUMENT),
    ("Ci-joint le devis signé.", "", (), Intent.SIGNED_DOCUMENT),
    ("Adjunto la cotización firmada.", "", (), Intent.SIGNED_DOCUMENT),
    ("Pridedu pasirašytą sutartį.", "", (), Intent.SIGNED_DOCUMENT),
    ("Terlampir penawaran yang sudah ditandatangani.", "", (), Intent.SIGNED_DOCUMENT),
    ("Во вложении подписанный договор.", "", (), Intent.SIGNED_DOCUMENT),
    ("מצורפת ההצעה החתומה.", "", (), Intent.SIGNED_DOCUMENT),
    ("See attached.", "", ("oferta_podpisana.pdf",), Intent.SIGNED_DOCUMENT),
    # question
    ("Can you send the invoice again?", "", (), Intent.QUESTION),
    ("Czy możemy dostać fakturę w euro?", "", (), Intent.QUESTION),
    ("Ar galite atsiųsti sąskaitą?", "", (), Intent.QUESTION),
    ("Apakah harga sudah termasuk pajak?", "", (), Intent.QUESTION),
    ("Когда можно начать?", "", (), Intent.QUESTION),
    ("האם המחיר כולל מע\"מ?", "", (), Intent.QUESTION),
    ("Wann können wir starten?", "", (), Intent.QUESTION),
    # change request
    ("Could you change the quantity to 12 seats?", "", (), Intent.CHANGE_REQUEST),
    ("Proszę zmienić ilość na 12.", "", (), Intent.CHANGE_REQUEST),
    ("Bitte ändern Sie die Menge auf 12.", "", (), Intent.CHANGE_REQUEST),
    ("Pouvez-vous modifier la durée à 24 mois ?", "", (), Intent.CHANGE_REQUEST),
    ("¿Pueden cambiar el plan a anual?", "", (), Intent.CHANGE_REQUEST),
    ("Prašome pakeisti kiekį į 12.", "", (), Intent.CHANGE_REQUEST),
    ("Mohon ubah jumlahnya menjadi 12.", "", (), Intent.CHANGE_REQUEST),
    ("Прошу изменить количество на 12.", "", (), Intent.CHANGE_REQUEST),
    ("אפשר לשנות את הכמות ל-12?", "", (), Intent.CHANGE_REQUEST),
    # payment sent
    ("We have paid the invoice today, remittance attached.", "", (), Intent.PAYMENT_SENT),
    ("Przelew został wykonany.", "", (), Intent.PAYMENT_SENT),
    ("Kami sudah transfer kemarin.", "", (), Intent.PAYMENT_SENT),
    ("Мы оплатили счёт.", "", (), Intent.PAYMENT_SENT),
    ("Der Betrag wurde heute überwiesen.", "", (), Intent.PAYMENT_SENT),
    ("Sumokėjome sąskaitą vakar.", "", (), Intent.PAYMENT_SENT),
    ("התשלום בוצע היום.", "", (), Intent.PAYMENT_SENT),
    ("Hemos pagado la factura.", "", (), Intent.PAYMENT_SENT),
    ("Please see attached.", "", ("Remittance_Advice_0042.pdf",), Intent.PAYMENT_SENT),
    # purchase order
    ("Attached is our PO.", "", ("PO-1042.pdf",), Intent.PURCHASE_ORDER),
    ("Please see attached.", "", ("purchase_order_77.pdf",), Intent.PURCHASE_ORDER),
    ("W załączniku zamówienie.", "", ("zamowienie_77.pdf",), Intent.PURCHASE_ORDER),
    ("Anbei unsere Bestellung.", "", ("Bestellung_4711.pdf",), Intent.PURCHASE_ORDER),
    ("Ci-joint notre bon de commande.", "", (), Intent.PURCHASE_ORDER),
    # unsubscribe
    ("Please unsubscribe me.", "", (), Intent.UNSUBSCRIBE),
    ("Proszę mnie wypisać z listy.", "", (), Intent.UNSUBSCRIBE),
    ("Bitte keine E-Mails mehr.", "", (), Intent.UNSUBSCRIBE),
    ("Отпишите меня, пожалуйста.", "", (), Intent.UNSUBSCRIBE),
    ("Stop sending me these emails.", "", (), Intent.UNSUBSCRIBE),
    # negated claims are not claims
    ("We have not paid yet, can we pay in two parts?", "", (), Intent.QUESTION),
    ("Nie zapłaciliśmy jeszcze, czy można w ratach?", "", (), Intent.QUESTION),
    ("Wir haben noch nicht bezahlt.", "", (), Intent.OTHER),
    ("We have not signed the contract yet.", "", (), Intent.OTHER),
    ("Kami belum bayar, apakah bisa dicicil?", "", (), Intent.QUESTION),
    # other
    ("Thanks, all good.", "", (), Intent.OTHER),
    ("Dziękuję, po rozmowie wszystko jasne.", "", (), Intent.OTHER),
    ("Sounds good.", "Re: Quote Q-1", ("logo.png",), Intent.OTHER),
]


@pytest.mark.parametrize("body, subject, attachments, intent", INTENTS, ids=[i[0][:40] for i in INTENTS])
def test_intent(body, subject, attachments, intent):
    assert classify_intent(body, subject, attachments) is intent


def test_fixture_file_is_valid_jsonl():
    for line in (FIXTURES / "replies.jsonl").read_text(encoding="utf-8").splitlines():
        assert {"id", "input", "expect", "lang"} <= json.loads(line).keys()


def test_hostile_or_random_text_never_raises_and_stays_within_the_input():
    import random
    import string
    rng = random.Random(20231205)
    alphabet = string.printable + "ąęłשדж\u202b\u200f>-_*:<>@"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        reply = extract_reply(text)
        assert len(reply.reply) <= len(text)
        extract_reply("", text)  # the same bytes read as HTML
        classify_intent(text, text[:40], (text[:20],))


def test_a_huge_quoted_history_is_cut_in_linear_time():
    quoted = "\n".join(f"> line {n} of the quoted history, on 5 Dec 2023 someone wrote" for n in range(20000))
    reply = extract_reply(f"Short answer.\n\nOn Tue, 5 Dec 2023 at 10:00, Ann <a@example.com> wrote:\n{quoted}\n")
    assert reply.reply == "Short answer."


def test_nul_characters_cannot_pose_as_the_html_readers_markers():
    assert extract_reply("Keep this.\n\x00CUT\nand this.").reply == "Keep this.\nCUT\nand this."
