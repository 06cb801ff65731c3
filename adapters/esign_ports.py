"""What e-signature needs from the documents issue, as two small ports (wired to the
real quote renderer and signed-quote verifier in `closeloop/esign_wiring.py`):

* `QuoteDocument.render_quote_pdf(deal_id, version) -> bytes` — the quote PDF to sign, with the
  anchor texts `/sn1/` (sign here), `/dt1/` (date signed) and `/fn1/` (full name) on
  its signature block;
* `SignedQuoteCheck.verify(pdf, deal_id) -> SignatureVerdict` — accepted, rejected or
  needs_review, with reasons for the rep and the customer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SignatureVerdict:
    status: str                       # "accepted", "rejected" or "needs_review"
    reasons: tuple[str, ...] = ()
    signer: str | None = None
    details: dict[str, object] = field(default_factory=dict)


class QuoteDocument(Protocol):
    def render_quote_pdf(self, deal_id: int, version: int | None = None) -> bytes: ...


class SignedQuoteCheck(Protocol):
    def verify(self, pdf: bytes, deal_id: int) -> SignatureVerdict: ...
