"""The DocuSign email's subject and message in the customer's language. DocuSign
limits the subject to 100 characters and the message to 10,000."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Texts:
    subject: str
    message: str


_TEXTS = {
    "en": ("Please sign quote {quote} (version {version})",
           "Dear {customer},\n\nplease review and sign quote {quote}, version {version}. "
           "Reply to this email with any questions.\n\nThank you."),
    "he": ("נא לחתום על הצעת המחיר {quote} (גרסה {version})",
           "{customer} שלום,\n\nנא לעיין בהצעת המחיר {quote}, גרסה {version}, ולחתום עליה. "
           "לשאלות אפשר להשיב למייל זה.\n\nתודה."),
    "pl": ("Prosimy o podpisanie oferty {quote} (wersja {version})",
           "Szanowni Państwo ({customer}),\n\nprosimy o zapoznanie się z ofertą {quote}, wersja {version}, "
           "i jej podpisanie. W razie pytań prosimy odpowiedzieć na tę wiadomość.\n\nDziękujemy."),
    "lt": ("Prašome pasirašyti pasiūlymą {quote} (versija {version})",
           "Gerbiami {customer},\n\nprašome peržiūrėti ir pasirašyti pasiūlymą {quote}, versija {version}. "
           "Iškilus klausimams, atsakykite į šį laišką.\n\nDėkojame."),
    "id": ("Mohon tanda tangani penawaran {quote} (versi {version})",
           "Yth. {customer},\n\nmohon periksa dan tanda tangani penawaran {quote}, versi {version}. "
           "Balas email ini jika ada pertanyaan.\n\nTerima kasih."),
}


def envelope_texts(language: str, *, quote: str, version: int, customer: str) -> Texts:
    """Texts for a language code ("pl", "pl-PL", "he_IL"); English when we have none."""
    code = (language or "en").replace("_", "-").split("-")[0].lower()
    subject, message = _TEXTS.get(code, _TEXTS["en"])
    values = {"quote": quote, "version": version, "customer": customer}
    return Texts(subject.format(**values)[:100], message.format(**values)[:10_000])
