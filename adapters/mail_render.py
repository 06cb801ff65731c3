"""Customer mail from templates (Jinja2), localized: English, Hebrew (right to
left), Polish, Lithuanian, Indonesian; money and dates formatted by Babel for the
customer's locale. One layout (text and HTML); each kind of mail is its lines."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

RTL = {"he", "ar", "fa", "ur"}

# Every string a customer reads, per language; {name} fields are filled per message.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello {name},", "closing": "Kind regards,", "questions": "Questions? Just reply to this email.",
        "quote.subject": "Quote {number} from {company}",
        "quote.body": "Please find attached quote {number} (version {version}) for {amount}, valid until "
                      "{valid_until}.",
        "quote.sign": "To accept it, reply to this email with the signed PDF attached.",
        "invoice.subject": "Invoice {number}",
        "invoice.body": "Please find attached invoice {number} for {amount}, due on {due_on}.",
        "reply.subject": "Re: your message",
    },
    "he": {
        "greeting": "שלום {name},", "closing": "בברכה,", "questions": "שאלות? פשוט השיבו למייל זה.",
        "quote.subject": "הצעת מחיר {number} מאת {company}",
        "quote.body": "מצורפת הצעת מחיר {number} (גרסה {version}) על סך {amount}, בתוקף עד {valid_until}.",
        "quote.sign": "כדי לאשר אותה, השיבו למייל זה וצרפו את קובץ ה-PDF החתום.",
        "invoice.subject": "חשבונית {number}",
        "invoice.body": "מצורפת חשבונית {number} על סך {amount}, לתשלום עד {due_on}.",
        "reply.subject": "תשובה: ההודעה שלך",
    },
    "pl": {
        "greeting": "Dzień dobry {name},", "closing": "Z poważaniem,",
        "questions": "Pytania? Wystarczy odpowiedzieć na tę wiadomość.",
        "quote.subject": "Oferta {number} od {company}",
        "quote.body": "W załączniku przesyłamy ofertę {number} (wersja {version}) na kwotę {amount}, ważną do "
                      "{valid_until}.",
        "quote.sign": "Aby ją zaakceptować, prosimy odpowiedzieć na tę wiadomość, załączając podpisany plik PDF.",
        "invoice.subject": "Faktura {number}",
        "invoice.body": "W załączniku przesyłamy fakturę {number} na kwotę {amount}, płatną do {due_on}.",
        "reply.subject": "Odp.: Twoja wiadomość",
    },
    "lt": {
        "greeting": "Sveiki, {name},", "closing": "Pagarbiai,",
        "questions": "Turite klausimų? Tiesiog atsakykite į šį laišką.",
        "quote.subject": "Komercinis pasiūlymas {number} iš {company}",
        "quote.body": "Pridedame komercinį pasiūlymą {number} ({version} versija) už {amount}, galiojantį iki "
                      "{valid_until}",  # the long date ends with "d." already
        "quote.sign": "Norėdami jį priimti, atsakykite į šį laišką pridėdami pasirašytą PDF failą.",
        "invoice.subject": "Sąskaita faktūra {number}",
        "invoice.body": "Pridedame sąskaitą faktūrą {number} už {amount}, apmokėti iki {due_on}",
        "reply.subject": "Re: jūsų laiškas",
    },
    "id": {
        "greeting": "Halo {name},", "closing": "Hormat kami,", "questions": "Ada pertanyaan? Cukup balas email ini.",
        "quote.subject": "Penawaran {number} dari {company}",
        "quote.body": "Terlampir penawaran {number} (versi {version}) sebesar {amount}, berlaku hingga "
                      "{valid_until}.",
        "quote.sign": "Untuk menerimanya, balas email ini dengan melampirkan PDF yang telah ditandatangani.",
        "invoice.subject": "Faktur {number}",
        "invoice.body": "Terlampir faktur {number} sebesar {amount}, jatuh tempo pada {due_on}.",
        "reply.subject": "Balasan: pesan Anda",
    },
}

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "mail_templates"),
                   autoescape=select_autoescape(["html", "html.j2"]), undefined=StrictUndefined,
                   keep_trailing_newline=True)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    language: str


def money(minor: int, currency: str, locale: str) -> str:
    digits = get_currency_precision(currency)
    return format_currency(Decimal(int(minor)).scaleb(-digits), currency, locale=locale)


def day(value: str | date, locale: str) -> str:
    return format_date(date.fromisoformat(value) if isinstance(value, str) else value, format="long", locale=locale)


def render(template: str, locale: str, context: dict[str, Any], *, company: str, subject: str = "") -> Rendered:
    lang = (locale or "en").split("_")[0].split("-")[0].lower()
    texts = {**TEXTS["en"], **TEXTS.get(lang, {})}
    fmt = lang if lang in TEXTS else "en"
    fields = {k: v for k, v in context.items() if isinstance(v, str | int)}
    fields["company"] = company
    if "amount_minor" in context:
        fields["amount"] = money(context["amount_minor"], context["currency"], fmt)
    for key in ("valid_until", "due_on"):
        if context.get(key):
            fields[key] = day(context[key], fmt)
    paragraphs = PARAGRAPHS[template](texts, fields, context)
    title = subject or texts[f"{template}.subject"].format(**fields)
    values = {"greeting": texts["greeting"].format(name=context.get("name") or context.get("customer") or ""),
              "paragraphs": paragraphs, "closing": texts["closing"], "company": company, "subject": title,
              "lang": lang, "dir": "rtl" if lang in RTL else "ltr"}
    return Rendered(title, _ENV.get_template("message.txt.j2").render(values),
                    _ENV.get_template("message.html.j2").render(values), lang)


def _quote(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    return [texts["quote.body"].format(**fields), texts["quote.sign"], texts["questions"]]


def _invoice(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    return [texts["invoice.body"].format(**fields), texts["questions"]]


def _reply(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    return [p.strip() for p in str(context.get("text", "")).split("\n\n") if p.strip()]


# The kinds of mail we write, and the lines each is made of.
PARAGRAPHS = {"quote": _quote, "invoice": _invoice, "reply": _reply}


def _quote_rejected(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """A returned signed copy we could not accept: the localized opening line (from
    adapters/email_signing.py) and the verifier's reasons, one per paragraph."""
    return [str(context["intro"]), *(f"– {reason}" for reason in context.get("reasons") or ()), texts["questions"]]


PARAGRAPHS["quote_rejected"] = _quote_rejected  # the e-signature issue's mail (subject given by the sender)
