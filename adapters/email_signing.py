"""Signing by email, without DocuSign: the returned copy's check, and the text of the
email that tells the customer exactly what to fix.

The quote goes out as an `email.send` (flows/esign_email.py, Reply-To carrying the deal's
token); a returned signed PDF (`mail.signed_return`) is handed to
`EmailSigning.returned(deal_id, pdf, key)`, and `esign.rejection_email` becomes an
`email.send` of the "signature_rejected" mail (closeloop/mail_wiring.py)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapters.esign_ports import SignedQuoteCheck
from flows.esign import record_returned_copy
from flows.ledger import Ledger
from flows.steps import Done

_INTRO = {
    "en": ("Quote {quote}: please send the signed copy again", "Thank you for returning quote {quote} (version "
           "{version}). We could not accept the signed copy, because:"),
    "he": ("הצעת מחיר {quote}: נא לשלוח שוב את העותק החתום", "תודה ששלחתם את הצעת המחיר {quote} (גרסה {version}). "
           "לא יכולנו לקבל את העותק החתום, כי:"),
    "pl": ("Oferta {quote}: prosimy o ponowne przesłanie podpisanej kopii", "Dziękujemy za odesłanie oferty {quote} "
           "(wersja {version}). Nie możemy przyjąć podpisanej kopii, ponieważ:"),
    "lt": ("Pasiūlymas {quote}: prašome dar kartą atsiųsti pasirašytą kopiją", "Dėkojame, kad grąžinote pasiūlymą "
           "{quote} (versija {version}). Negalėjome priimti pasirašytos kopijos, nes:"),
    "id": ("Penawaran {quote}: mohon kirim ulang salinan yang ditandatangani", "Terima kasih telah mengirim kembali "
           "penawaran {quote} (versi {version}). Kami tidak dapat menerima salinan yang ditandatangani karena:"),
}


def rejection_intro(locale: str, quote: str, version: int) -> tuple[str, str]:
    """(subject, opening line) of the email listing what to fix, in the customer's language."""
    code = (locale or "en").replace("_", "-").split("-")[0].lower()
    subject, intro = _INTRO.get(code, _INTRO["en"])
    return subject.format(quote=quote), intro.format(quote=quote, version=version)


def rejection_text(locale: str, quote: str, version: int, reasons: list[str]) -> tuple[str, str]:
    """(subject, body) of the email listing what to fix; reasons come from the verifier."""
    subject, intro = rejection_intro(locale, quote, version)
    items = "\n".join(f"  - {reason}" for reason in reasons) or "  - (no reason given)"
    return subject, f"{intro}\n\n{items}\n"


@dataclass
class EmailSigning:
    ledger: Ledger
    check: SignedQuoteCheck

    def returned(self, deal_id: int, pdf: bytes, key: str | None = None, inbound_id: int | None = None) -> Done:
        """A signed PDF the customer emailed back: verify it and record the outcome
        (`inbound_id`: the message it came in, which the "what to fix" email answers)."""
        key = key or hashlib.sha256(pdf).hexdigest()
        verdict = self.check.verify(pdf, deal_id)
        return self.ledger.run(record_returned_copy, deal_id, key=key, verdict=verdict.status,
                               reasons=list(verdict.reasons), signer=verdict.signer,
                               evidence={"sha256": hashlib.sha256(pdf).hexdigest(), "details": verdict.details},
                               inbound_id=inbound_id)
