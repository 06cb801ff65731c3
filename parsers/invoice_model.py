"""What an invoice PDF was read as. Money stays Decimal (the exact digits printed or in
the XML); dates are dates; every field has a confidence in 0..1."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal

FIELDS = ("number", "issue_date", "due_date", "seller", "buyer", "seller_vat_id", "buyer_vat_id",
          "currency", "net", "tax", "total", "iban")


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    amount: Decimal | None = None


@dataclass
class ExtractedInvoice:
    source: str                          # "xml" (embedded Factur-X/ZUGFeRD/XRechnung/UBL) or "layout"
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    seller: str | None = None
    buyer: str | None = None
    seller_vat_id: str | None = None
    buyer_vat_id: str | None = None
    currency: str | None = None          # ISO 4217
    net: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    iban: str | None = None
    lines: list[InvoiceLine] = field(default_factory=list)
    confidence: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        """The CLI's documented, stable shape (README: "Reading invoice PDFs")."""
        def text(value: object) -> str | None:
            return None if value is None else (value.isoformat() if isinstance(value, date) else str(value))
        out: dict = {name: text(getattr(self, name)) for name in FIELDS}
        out["lines"] = [{k: text(v) for k, v in asdict(line).items()} for line in self.lines]
        out["source"] = self.source
        out["confidence"] = {name: round(self.confidence.get(name, 0.0), 2) for name in FIELDS}
        return out
