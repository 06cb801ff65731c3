"""The seller printed on every document. Its own small module: the wiring builds it from
settings without loading the PDF machinery."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Company:
    """The seller, as printed on every document (CLOSELOOP_COMPANY_* settings)."""
    name: str = "closeloop demo company"
    address: tuple[str, ...] = ()
    country: str = "DE"
    vat_id: str | None = None
    iban: str | None = None
    bic: str | None = None
    email: str | None = None
    logo: Path | None = None
