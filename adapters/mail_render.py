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

# Money, reminders and signing mail (billing-money's collections, gaps' buttons, esign's
# returned copies): one more table per language, merged into TEXTS below.
MORE_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "receipt.subject": "Receipt: {amount} received",
        "receipt.body": "Thank you: we received your payment of {amount} ({method}, reference {reference}) on "
                        "{received_at}.",
        "receipt.line": "{invoice}: {amount} paid, balance {balance}",
        "payment_reminder.subject": "Invoice {invoice}: {balance} due on {due_on}",
        "payment_reminder.body": "A friendly reminder: invoice {invoice} for {balance} is due on {due_on}, in "
                                 "{days_left} days.",
        "payment_overdue.subject": "Invoice {invoice}: {balance} overdue",
        "payment_overdue.body": "Invoice {invoice} for {balance} was due on {due_on} and is {days_late} days "
                                "overdue. Please pay it as soon as possible.",
        "open.heading": "Your open invoices:",
        "open.line": "{invoice}: {balance}, due on {due_on}",
        "bank.heading": "Bank details:",
        "attached": "The aging report and copies of the unpaid invoices are attached.",
        "payment_link.subject": "Pay {amount} for your open invoices",
        "payment_link.body": "You can pay {amount} for all your open invoices in one payment (reference "
                             "{reference}):",
        "quote_reminder.subject": "Reminder: quote {quote} awaits your signature",
        "quote_reminder.body": "A reminder that quote {quote} (version {version}) for {amount} is waiting for your "
                               "signature; it is valid until {valid_until}.",
        "check_in.subject": "How are things going at {customer}?",
        "check_in.body": "We have not heard from you for a while: is there anything we can help you with?",
        "statement.subject": "Statement of account {start} to {end}",
        "statement.body": "Your statement of account from {start} to {end} is attached: every invoice and payment in that time, with the balance.",
    },
    "he": {
        "receipt.subject": "קבלה: התקבלו {amount}",
        "receipt.body": "תודה: קיבלנו את התשלום שלכם על סך {amount} ({method}, אסמכתא {reference}) ב-{received_at}.",
        "receipt.line": "{invoice}: שולמו {amount}, יתרה {balance}",
        "payment_reminder.subject": "חשבונית {invoice}: {balance} לתשלום עד {due_on}",
        "payment_reminder.body": "תזכורת ידידותית: חשבונית {invoice} על סך {balance} לתשלום עד {due_on}, בעוד "
                                 "{days_left} ימים.",
        "payment_overdue.subject": "חשבונית {invoice}: {balance} באיחור",
        "payment_overdue.body": "חשבונית {invoice} על סך {balance} הייתה לתשלום עד {due_on} והיא באיחור של "
                                "{days_late} ימים. נא לשלם בהקדם האפשרי.",
        "open.heading": "החשבוניות הפתוחות שלכם:",
        "open.line": "{invoice}: {balance}, לתשלום עד {due_on}",
        "bank.heading": "פרטי הבנק:",
        "attached": "מצורפים דוח גיול החובות והעתקי החשבוניות שטרם שולמו.",
        "payment_link.subject": "תשלום {amount} עבור החשבוניות הפתוחות",
        "payment_link.body": "ניתן לשלם {amount} עבור כל החשבוניות הפתוחות בתשלום אחד (אסמכתא {reference}):",
        "quote_reminder.subject": "תזכורת: הצעת מחיר {quote} ממתינה לחתימתכם",
        "quote_reminder.body": "תזכורת: הצעת מחיר {quote} (גרסה {version}) על סך {amount} ממתינה לחתימתכם; היא "
                               "בתוקף עד {valid_until}.",
        "check_in.subject": "מה שלומכם ב-{customer}?",
        "check_in.body": "לא שמענו מכם זמן מה: האם נוכל לעזור במשהו?",
        "statement.subject": "דף חשבון {start} עד {end}",
        "statement.body": "מצורף דף החשבון שלכם מ-{start} עד {end}: כל החשבוניות והתשלומים בתקופה זו, עם היתרה.",
    },
    "pl": {
        "receipt.subject": "Potwierdzenie: otrzymaliśmy {amount}",
        "receipt.body": "Dziękujemy: {received_at} otrzymaliśmy Państwa płatność w kwocie {amount} ({method}, "
                        "tytuł {reference}).",
        "receipt.line": "{invoice}: zapłacono {amount}, pozostało {balance}",
        "payment_reminder.subject": "Faktura {invoice}: {balance} płatne do {due_on}",
        "payment_reminder.body": "Uprzejmie przypominamy: termin płatności faktury {invoice} na kwotę {balance} "
                                 "mija {due_on}, za {days_left} dni.",
        "payment_overdue.subject": "Faktura {invoice}: {balance} po terminie",
        "payment_overdue.body": "Termin płatności faktury {invoice} na kwotę {balance} minął {due_on}; zaległość "
                                "wynosi {days_late} dni. Prosimy o jak najszybszą zapłatę.",
        "open.heading": "Nieopłacone faktury:",
        "open.line": "{invoice}: {balance}, termin {due_on}",
        "bank.heading": "Dane do przelewu:",
        "attached": "W załączniku zestawienie wiekowania należności i kopie nieopłaconych faktur.",
        "payment_link.subject": "Zapłać {amount} za otwarte faktury",
        "payment_link.body": "Możesz zapłacić {amount} za wszystkie otwarte faktury jedną płatnością (tytuł "
                             "{reference}):",
        "quote_reminder.subject": "Przypomnienie: oferta {quote} czeka na podpis",
        "quote_reminder.body": "Przypominamy, że oferta {quote} (wersja {version}) na kwotę {amount} czeka na "
                               "Państwa podpis; jest ważna do {valid_until}.",
        "check_in.subject": "Co słychać w {customer}?",
        "check_in.body": "Dawno się nie odzywaliśmy: czy możemy w czymś pomóc?",
        "statement.subject": "Wyciąg z konta {start} – {end}",
        "statement.body": "W załączniku wyciąg z Państwa konta od {start} do {end}: wszystkie faktury i płatności z tego okresu wraz z saldem.",
    },
    "lt": {
        "receipt.subject": "Kvitas: gauta {amount}",
        "receipt.body": "Dėkojame: {received_at} gavome jūsų mokėjimą {amount} ({method}, nuoroda {reference}).",
        "receipt.line": "{invoice}: sumokėta {amount}, likutis {balance}",
        "payment_reminder.subject": "Sąskaita {invoice}: {balance} apmokėti iki {due_on}",
        "payment_reminder.body": "Primename: sąskaitą {invoice} ({balance}) reikia apmokėti iki {due_on}, liko "
                                 "{days_left} d.",
        "payment_overdue.subject": "Sąskaita {invoice}: {balance} vėluoja",
        "payment_overdue.body": "Sąskaitos {invoice} ({balance}) mokėjimo terminas buvo {due_on}; vėluojama "
                                "{days_late} d. Prašome apmokėti kuo greičiau.",
        "open.heading": "Neapmokėtos sąskaitos:",
        "open.line": "{invoice}: {balance}, terminas {due_on}",
        "bank.heading": "Banko rekvizitai:",
        "attached": "Pridedame skolų senėjimo ataskaitą ir neapmokėtų sąskaitų kopijas.",
        "payment_link.subject": "Sumokėkite {amount} už atviras sąskaitas",
        "payment_link.body": "Visas atviras sąskaitas galite apmokėti vienu mokėjimu – {amount} (nuoroda "
                             "{reference}):",
        "quote_reminder.subject": "Priminimas: pasiūlymas {quote} laukia jūsų parašo",
        "quote_reminder.body": "Primename, kad pasiūlymas {quote} ({version} versija) už {amount} laukia jūsų "
                               "parašo; jis galioja iki {valid_until}",
        "check_in.subject": "Kaip sekasi {customer}?",
        "check_in.body": "Seniai nesikalbėjome: ar galime kuo nors padėti?",
        "statement.subject": "Sąskaitos išrašas {start}–{end}",
        "statement.body": "Pridedame jūsų sąskaitos išrašą nuo {start} iki {end}: visos to laikotarpio sąskaitos ir mokėjimai bei likutis.",
    },
    "id": {
        "receipt.subject": "Kuitansi: {amount} diterima",
        "receipt.body": "Terima kasih: kami telah menerima pembayaran Anda sebesar {amount} ({method}, referensi "
                        "{reference}) pada {received_at}.",
        "receipt.line": "{invoice}: dibayar {amount}, sisa {balance}",
        "payment_reminder.subject": "Faktur {invoice}: {balance} jatuh tempo pada {due_on}",
        "payment_reminder.body": "Pengingat: faktur {invoice} sebesar {balance} jatuh tempo pada {due_on}, "
                                 "{days_left} hari lagi.",
        "payment_overdue.subject": "Faktur {invoice}: {balance} lewat jatuh tempo",
        "payment_overdue.body": "Faktur {invoice} sebesar {balance} jatuh tempo pada {due_on} dan telah terlambat "
                                "{days_late} hari. Mohon segera dibayar.",
        "open.heading": "Faktur Anda yang belum dibayar:",
        "open.line": "{invoice}: {balance}, jatuh tempo {due_on}",
        "bank.heading": "Rincian bank:",
        "attached": "Terlampir laporan umur piutang dan salinan faktur yang belum dibayar.",
        "payment_link.subject": "Bayar {amount} untuk faktur Anda yang terbuka",
        "payment_link.body": "Anda dapat membayar {amount} untuk semua faktur terbuka dalam satu pembayaran "
                             "(referensi {reference}):",
        "quote_reminder.subject": "Pengingat: penawaran {quote} menunggu tanda tangan Anda",
        "quote_reminder.body": "Pengingat bahwa penawaran {quote} (versi {version}) sebesar {amount} menunggu tanda "
                               "tangan Anda; berlaku hingga {valid_until}.",
        "check_in.subject": "Apa kabar di {customer}?",
        "check_in.body": "Sudah lama kami tidak mendengar kabar Anda: adakah yang bisa kami bantu?",
        "statement.subject": "Laporan rekening {start} sampai {end}",
        "statement.body": "Terlampir laporan rekening Anda dari {start} sampai {end}: setiap faktur dan pembayaran dalam periode itu, beserta saldonya.",
    },
}
for _lang, _more in MORE_TEXTS.items():
    TEXTS[_lang].update(_more)

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "mail_templates"),
                   autoescape=select_autoescape(["html", "html.j2"]), undefined=StrictUndefined,
                   keep_trailing_newline=True)


class UnknownTemplate(ValueError):
    """A template no one wrote: a permanent failure (the mailer dead-letters it), never a retry."""


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
    if template not in PARAGRAPHS:
        raise UnknownTemplate(f"no email template {template!r} (known: {', '.join(sorted(PARAGRAPHS))})")
    if "amount_minor" in context:
        fields["amount"] = money(context["amount_minor"], context["currency"], fmt)
    for key in ("amount", "balance"):  # the money flows' contexts: integer minor units beside "currency"
        if isinstance(context.get(key), int) and context.get("currency"):
            fields[key] = money(context[key], context["currency"], fmt)
    for key in ("valid_until", "due_on", "received_at", "start", "end"):
        if context.get(key):
            fields[key] = day(str(context[key])[:10], fmt)
    paragraphs = PARAGRAPHS[template](texts, fields, {**context, "_fmt": fmt})
    own = f"{template}.subject" in texts and template in LOCALIZED_SUBJECTS
    if template == "signature_rejected" and not subject:
        title = _signature_subject(fmt, context)
    else:
        title = texts[f"{template}.subject"].format(**fields) if own or not subject else subject
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


# --- money, reminders and signing ---------------------------------------------------

def _lines(texts: dict[str, str], context: dict[str, Any], key: str, rows: list[dict[str, Any]]) -> list[str]:
    fmt, out = context["_fmt"], []
    for row in rows:
        currency = row.get("currency") or context.get("currency") or "EUR"
        values = {"invoice": row.get("invoice") or row.get("number") or "",
                  "amount": money(int(row.get("amount") or 0), currency, fmt),
                  "balance": money(int(row.get("balance") or 0), currency, fmt),
                  "due_on": day(row["due_on"], fmt) if row.get("due_on") else "—"}
        out.append("• " + texts[key].format(**values))
    return out


def _receipt(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    lines = _lines(texts, context, "receipt.line", list(context.get("invoices") or []))
    return [texts["receipt.body"].format(**fields), *(["\n".join(lines)] if lines else []), texts["questions"]]


def _dunning(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    body = texts["payment_overdue.body" if context.get("days_late") else "payment_reminder.body"]
    out = [body.format(**fields)]
    rows = list(context.get("open_invoices") or [])
    if len(rows) > 1:
        out.append(texts["open.heading"] + "\n" + "\n".join(_lines(texts, context, "open.line", rows)))
    if context.get("bank_details"):
        out.append(texts["bank.heading"] + "\n" + str(context["bank_details"]))
    if context.get("days_late"):
        out.append(texts["attached"])
    return [*out, texts["questions"]]


def _payment_link(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    how = [str(v) for v in (context.get("url"), context.get("instructions")) if v]
    fmt = context["_fmt"]
    lines = [f"• {i.get('number')}: {money(int(i.get('amount') or 0), str(context.get('currency')), fmt)}"
             for i in context.get("invoices") or []]
    return [texts["payment_link.body"].format(**fields), *how, *(["\n".join(lines)] if lines else []),
            texts["questions"]]


def _quote_reminder(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    return [texts["quote_reminder.body"].format(**fields), texts["quote.sign"], texts["questions"]]


def _check_in(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    return [texts["check_in.body"].format(**fields), texts["questions"]]


def _statement(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    return [texts["statement.body"].format(**fields), texts["questions"]]


def _signature_rejected(texts: dict[str, str], fields: dict[str, Any], context: dict[str, Any]) -> list[str]:
    from adapters.email_signing import rejection_text  # esign's localized "what to fix" text
    _, body = rejection_text(context["_fmt"], str(context["quote"]), int(context["version"]),
                             [str(r) for r in context.get("reasons") or []])
    return [p.strip("\n") for p in body.split("\n\n") if p.strip()] + [texts["quote.sign"]]


def _signature_subject(locale: str, context: dict[str, Any]) -> str:
    from adapters.email_signing import rejection_text
    return rejection_text(locale, str(context["quote"]), int(context["version"]), [])[0]


PARAGRAPHS.update({"receipt": _receipt, "payment_reminder": _dunning, "payment_overdue": _dunning,
                   "payment_link": _payment_link, "quote_reminder": _quote_reminder, "check_in": _check_in,
                   "signature_rejected": _signature_rejected, "statement": _statement})
# The money flows write an English subject into the payload; the customer reads their own language.
LOCALIZED_SUBJECTS = {"receipt", "payment_reminder", "payment_overdue", "payment_link", "quote_reminder",
                      "check_in", "statement"}

