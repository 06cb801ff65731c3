"""The contract between the quote renderer (adapters/pdf_render) and the verifier of
returned quotes (parsers/signed_quote): where the boxes to sign are, what the QR code
and metadata say, and the hidden row markers. One place, so both sides agree.

Coordinates are PDF points on an A4 page, origin top-left (as pdfplumber reports them)."""
from __future__ import annotations

import re
from dataclasses import dataclass

PAGE_WIDTH, PAGE_HEIGHT = 595.28, 841.89
MARGIN = 42.0


@dataclass(frozen=True)
class Box:
    x0: float
    top: float
    x1: float
    bottom: float

    def inner(self, by: float = 3.0) -> Box:
        """The inside of the box, clear of its border lines."""
        return Box(self.x0 + by, self.top + by, self.x1 - by, self.bottom - by)

    def holds(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.top <= y <= self.bottom

    def overlaps(self, x0: float, top: float, x1: float, bottom: float) -> bool:
        return x0 < self.x1 and x1 > self.x0 and top < self.bottom and bottom > self.top


# Every page but the last: initials. The last page: signature, printed name, date.
INITIALS = Box(MARGIN, 728.0, MARGIN + 120.0, 764.0)
SIGNATURE = Box(MARGIN, 620.0, MARGIN + 240.0, 680.0)
NAME = Box(300.0, 620.0, PAGE_WIDTH - MARGIN, 644.0)
DATE = Box(300.0, 658.0, PAGE_WIDTH - MARGIN, 680.0)
QR = Box(PAGE_WIDTH - MARGIN - 64.0, 28.0, PAGE_WIDTH - MARGIN, 92.0)
CONTENT_BOTTOM = 700.0          # body text of every page ends above this
LAST_CONTENT_BOTTOM = 596.0     # and of the last page above the signature block

# Anchor texts for e-signature tabs (DocuSign "anchor tabs"), white and tiny inside the boxes.
ANCHOR_SIGNATURE, ANCHOR_NAME, ANCHOR_DATE, ANCHOR_INITIALS = "/sn1/", "/fn1/", "/dt1/", "/in1/"
ANCHORS = (ANCHOR_SIGNATURE, ANCHOR_NAME, ANCHOR_DATE, ANCHOR_INITIALS)

# Hidden markers at the start of each priced row, so a reader finds rows in any language.
# Letters and digits only: punctuation is mirrored or moved by the bidi algorithm on
# right-to-left pages.
ROW_MARKER = re.compile(r"^CLROW(L\d+|NET|TAX\d+|TOTAL)$")


def line_marker(position: int) -> str:
    return f"CLROWL{position}"


def tax_marker(rate_bp: int) -> str:
    return f"CLROWTAX{rate_bp}"


NET_MARKER, TOTAL_MARKER = "CLROWNET", "CLROWTOTAL"

# Metadata keys in the PDF's document information dictionary.
META_QUOTE, META_VERSION, META_HASH, META_PAGES = "/CloseloopQuote", "/CloseloopVersion", "/CloseloopHash", \
    "/CloseloopPages"

_QR = re.compile(r"^closeloop:quote:(?P<number>[^:]+):v(?P<version>\d+):(?P<hash>[0-9a-f]{64}):p(?P<page>\d+)/"
                 r"(?P<pages>\d+)$")
# The visible footer: "Q-2026-0042 · v3 · 1a2b…(64 hex)" somewhere in the page's text.
FOOTER = re.compile(r"(?P<number>[A-Z][A-Z0-9]*-[0-9A-Z-]+)\s*·\s*v(?P<version>\d+)\s*·\s*(?P<hash>[0-9a-f]{64})")


@dataclass(frozen=True)
class QrPayload:
    number: str
    version: int
    content_hash: str
    page: int
    pages: int


def qr_text(number: str, version: int, content_hash: str, page: int, pages: int) -> str:
    return f"closeloop:quote:{number}:v{version}:{content_hash}:p{page}/{pages}"


def read_qr_text(text: str) -> QrPayload | None:
    found = _QR.match(text.strip())
    if not found:
        return None
    return QrPayload(found["number"], int(found["version"]), found["hash"], int(found["page"]), int(found["pages"]))


def footer_text(number: str, version: int, content_hash: str) -> str:
    return f"{number} · v{version} · {content_hash}"
