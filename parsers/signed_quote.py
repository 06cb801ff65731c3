"""Is this returned PDF the quote we sent, unchanged, and signed? Pure: PDF bytes and
the record of what was issued in, a verdict with every reason out.

How it decides (parsers/quote_layout.py is the format it reads):
  1. Which quote and version: the PDF metadata, else the visible footer, else the QR
     code (decoded from the page image, for scans).
  2. The same content: every priced row is found by its hidden marker and its amounts
     read back and compared as numbers with what was issued (so locale formats and
     right-to-left reordering do not matter).
  3. Signed: a PAdES digital signature (pyHanko: intact, and nothing but signatures or
     form filling added after it), a DocuSign-completed document, or on every page a
     mark in its box: typed text, an image, a drawing, a filled form field; on a scan,
     ink in the box (pixel darkness).
A verdict is `accepted` only when all of that is certain; `rejected` names what is
wrong; `needs_review` says what a person must look at."""
from __future__ import annotations

import io
import logging
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.core import UnknownLocaleError
from babel.numbers import get_decimal_symbol

from parsers import quote_layout as L
from parsers.pdf_errors import PdfError, PdfErrorCode

ACCEPTED, REJECTED, NEEDS_REVIEW = "accepted", "rejected", "needs_review"

# Reason codes and what each does to the verdict (notes change nothing).
REJECTING = frozenset({
    "NOT_OUR_QUOTE", "OTHER_QUOTE", "OLD_VERSION", "UNKNOWN_VERSION", "CONTENT_HASH_MISMATCH", "LINE_CHANGED",
    "LINE_MISSING", "LINE_ADDED", "NET_CHANGED", "TAX_CHANGED", "TOTAL_CHANGED", "PAGE_MISSING",
    "PAGE_NOT_SIGNED", "NOT_SIGNED", "SIGNATURE_BROKEN", "MODIFIED_AFTER_SIGNING", "TEXT_COVERED"})
REVIEW = frozenset({"SCAN_CONTENT_NOT_COMPARED", "FAINT_MARK", "SIGNER_MISMATCH", "CONTENT_UNREADABLE",
                    "CHANGED_AFTER_SIGNING_ANNOTATIONS", "METADATA_MISMATCH"})

_DOCUSIGN = re.compile(r"docusign\s*envelope\s*id:?\s*([0-9A-F]{8}-(?:[0-9A-F]{4}-){3}[0-9A-F]{12})", re.I)
_CERTIFICATE = re.compile(r"certificate\s*of\s*completion", re.I)
_INK, _FAINT = 0.01, 0.002   # share of dark pixels inside a box: signed, or worth a look


@dataclass(frozen=True)
class IssuedLine:
    position: int
    description: str
    quantity: Decimal
    unit_amount: int            # minor units
    net: int


@dataclass(frozen=True)
class IssuedQuote:
    """What we sent: one version of a quote, and which version is the current one."""
    number: str
    version: int
    content_hash: str
    currency: str
    decimals: int               # the currency's minor-unit exponent (2 for EUR)
    language: str
    lines: tuple[IssuedLine, ...]
    net: int
    taxes: tuple[tuple[int, int], ...]   # (rate in basis points, tax)
    gross: int
    signer_name: str | None
    signer_email: str | None = None
    current_version: int | None = None   # None: this version is the current one

    def amount(self, minor: int) -> str:
        return _english(Decimal(minor).scaleb(-self.decimals), self.decimals, self.currency)


@dataclass(frozen=True)
class Reason:
    code: str
    text: str                   # for the customer and the rep, in English
    page: int | None = None


@dataclass(frozen=True)
class Identity:
    number: str | None
    version: int | None
    content_hash: str | None
    pages: int | None
    source: str                 # "metadata", "footer", "qr" or "none"


@dataclass(frozen=True)
class Verdict:
    status: str
    quote: str | None
    version: int | None
    signature: str | None       # how it was signed: pades, docusign, typed, image, drawing, field, ink
    signer: str | None
    reasons: tuple[Reason, ...]
    notes: tuple[Reason, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {"verdict": self.status, "quote": self.quote, "version": self.version, "signature": self.signature,
                "signer": self.signer, "reasons": [asdict(r) for r in self.reasons],
                "notes": [asdict(n) for n in self.notes]}


# --- reading the PDF ----------------------------------------------------------------

@dataclass
class _Page:
    index: int                                  # 1-based, in the returned file
    words: list[dict[str, Any]]                 # visible words
    hidden: list[dict[str, Any]]                # markers and anchors
    images: list[tuple[float, float, float, float]]
    drawings: list[tuple[float, float, float, float]]
    text: str
    scanned: bool = False
    covered: list[dict[str, Any]] = field(default_factory=list)  # words under a white box


@dataclass
class _Document:
    pages: list[_Page]
    metadata: dict[str, str]
    widgets: list[tuple[int, tuple[float, float, float, float], str, bool]]  # page, box, name, filled
    raw: bytes

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.pages)


def read(pdf: bytes) -> _Document:
    if not pdf.lstrip()[:5].startswith(b"%PDF"):
        raise PdfError(PdfErrorCode.NOT_A_PDF, "this file is not a PDF")
    import pypdfium2
    from pypdf import PdfReader
    try:
        reader = PdfReader(io.BytesIO(pdf))
        if reader.is_encrypted:
            raise PdfError(PdfErrorCode.ENCRYPTED, "the PDF is encrypted; send it without a password")
        metadata = {str(k): str(v) for k, v in (reader.metadata or {}).items()}
        widgets = _widgets(reader)
        # PDFium (C++) reads text with positions several times faster than pdfminer,
        # which keeps a 3-page verification well inside its time budget.
        document = pypdfium2.PdfDocument(pdf)
        try:
            pages = [_read_page(index, document[index - 1]) for index in range(1, len(document) + 1)]
        finally:
            document.close()
    except PdfError:
        raise
    except Exception as error:  # pypdf/PDFium raise many kinds for broken files
        raise PdfError(PdfErrorCode.MALFORMED, f"the PDF cannot be read: {error}") from None
    return _Document(pages, metadata, widgets, pdf)


def _read_page(index: int, page: Any) -> _Page:
    """Words (glyphs in page order, left to right, as pdfplumber gives them), images and
    drawings of one page, in points from the top-left."""
    import ctypes

    import pypdfium2.raw as pdfium
    width, height = page.get_size()
    # Drawing order of the page's objects: a white box hides only what was drawn before it.
    order = {_address(pdfium.FPDFPage_GetObject(page.raw, k)): k for k in range(pdfium.FPDFPage_CountObjects(page.raw))}
    red, green, blue, alpha = (ctypes.c_uint() for _ in range(4))
    images, drawings, covers = [], [], []
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    for obj in page.get_objects(filter=[pdfium.FPDF_PAGEOBJ_IMAGE, pdfium.FPDF_PAGEOBJ_PATH]):
        left, bottom, right, top = obj.get_bounds()
        rect = (left, height - top, right, height - bottom)
        if obj.type == pdfium.FPDF_PAGEOBJ_IMAGE:
            images.append(rect)
            continue
        pdfium.FPDFPath_GetDrawMode(obj.raw, fill, stroke)
        pdfium.FPDFPageObj_GetFillColor(obj.raw, red, green, blue, alpha)
        if fill.value and min(red.value, green.value, blue.value) >= 250 and alpha.value > 0 \
                and (right - left) * (top - bottom) < 0.5 * width * height and _address(obj.raw) in order:
            covers.append((*rect, order[_address(obj.raw)]))  # a white box: what hides a figure
        else:
            drawings.append(rect)
    textpage = page.get_textpage()
    chars = []
    for i in range(textpage.count_chars()):
        char = chr(pdfium.FPDFText_GetUnicode(textpage.raw, i))
        if not char.strip() or char in "\ufffe\uffff":
            continue
        left, bottom, right, top = textpage.get_charbox(i, loose=True)
        pdfium.FPDFText_GetFillColor(textpage.raw, i, red, green, blue, alpha)
        size = pdfium.FPDFText_GetFontSize(textpage.raw, i)
        x, y = (left + right) / 2, height - (top + bottom) / 2
        covered = False
        if covers:
            drawn = order.get(_address(pdfium.FPDFText_GetTextObject(textpage.raw, i)), -1)
            covered = any(x0 <= x <= x1 and y0 <= y <= y1 and 0 <= drawn < later for x0, y0, x1, y1, later in covers)
        chars.append((height - top, height - bottom, left, right, char, size, (red.value, green.value, blue.value),
                      covered))
    textpage.close()
    page.close()
    words, hidden, covered_words = [], [], []
    for word in _words(chars):
        (covered_words if word["covered"] else hidden if _is_hidden(word) else words).append(word)
    lines: dict[float, list[dict[str, Any]]] = {}
    for word in words:
        lines.setdefault(round(word["bottom"]), []).append(word)
    text = "\n".join(" ".join(w["text"] for w in sorted(line, key=lambda w: w["x0"]))
                     for _, line in sorted(lines.items()))
    page_area = width * height
    big_image = any((x1 - x0) * (bottom - top) > 0.6 * page_area for x0, top, x1, bottom in images)
    return _Page(index, words, hidden, images, drawings, text, scanned=big_image and len(words) < 5,
                 covered=covered_words)


def _words(chars: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Glyphs on one line that touch make a word (a space or a gap ends it)."""
    chars.sort(key=lambda c: (round((c[0] + c[1]) / 2), c[7], c[2]))  # line, covered or not, left to right
    words: list[dict[str, Any]] = []
    for top, bottom, left, right, char, size, color, covered in chars:
        last = words[-1] if words else None
        if (last is not None and abs((last["top"] + last["bottom"]) / 2 - (top + bottom) / 2) < 1.0
                and -0.5 < left - last["x1"] < max(0.8, size * 0.12) and abs(last["size"] - size) < 0.5
                and last["covered"] == covered):
            last["text"] += char
            last["x1"] = max(last["x1"], right)
            continue
        words.append({"text": char, "x0": left, "x1": right, "top": top, "bottom": bottom, "size": size,
                      "non_stroking_color": tuple(c / 255 for c in color), "covered": covered})
    return words


def _address(pointer: Any) -> int | None:
    import ctypes
    return ctypes.cast(pointer, ctypes.c_void_p).value


def _is_hidden(word: dict[str, Any]) -> bool:
    color = word.get("non_stroking_color")
    white = isinstance(color, (tuple, list)) and len(color) in (1, 3) and all(
        isinstance(c, (int, float)) and c >= 0.99 for c in color)
    return float(word.get("size") or 0) < 2.5 or white


def _widgets(reader: Any) -> list[tuple[int, tuple[float, float, float, float], str, bool]]:
    """Form fields on each page: where they are, their name, whether they hold a value."""
    found = []
    for number, page in enumerate(reader.pages, start=1):
        height = float(page.mediabox.height)
        for ref in page.get("/Annots") or []:
            annot = ref.get_object()
            if annot.get("/Subtype") != "/Widget":
                continue
            parent = annot.get("/Parent")
            field_ = parent.get_object() if parent is not None and "/FT" not in annot else annot
            value = annot.get("/V", field_.get("/V"))
            kind = annot.get("/FT", field_.get("/FT"))
            x0, y0, x1, y1 = (float(v) for v in annot.get("/Rect", [0, 0, 0, 0]))
            filled = value is not None and (kind == "/Sig" or str(value).strip() not in ("", "/Off"))
            found.append((number, (min(x0, x1), height - max(y0, y1), max(x0, x1), height - min(y0, y1)),
                          str(annot.get("/T", field_.get("/T", ""))), filled))
    return found


# --- which quote ---------------------------------------------------------------------

def identify(pdf: bytes) -> Identity:
    """Which quote and version a returned PDF says it is (no comparison yet)."""
    return _identify(read(pdf))


def _identify(doc: _Document) -> Identity:
    meta = doc.metadata
    if meta.get(L.META_QUOTE) and meta.get(L.META_VERSION, "").isdigit():
        pages = meta.get(L.META_PAGES, "")
        return Identity(meta[L.META_QUOTE], int(meta[L.META_VERSION]), meta.get(L.META_HASH),
                        int(pages) if pages.isdigit() else None, "metadata")
    for page in doc.pages:
        found = L.FOOTER.search(page.text.replace("\n", " "))
        if found:
            return Identity(found["number"], int(found["version"]), found["hash"], None, "footer")
    for page in doc.pages:
        payload = _qr_of(doc.raw, page.index)
        if payload is not None:
            return Identity(payload[0].number, payload[0].version, payload[0].content_hash, payload[0].pages, "qr")
    return Identity(None, None, None, None, "none")


# --- the verdict ---------------------------------------------------------------------

def verify(pdf: bytes, issued: IssuedQuote) -> Verdict:
    doc = read(pdf)
    reasons: list[Reason] = []
    notes: list[Reason] = []
    identity = _identify(doc)
    if identity.number is None:
        return _verdict(issued, None, None, None, [Reason(
            "NOT_OUR_QUOTE", f"this document is not a quote we sent: it carries no quote number, footer or QR "
                             f"code of ours (we expected {issued.number})")], [])
    if identity.number != issued.number:
        return _verdict(issued, None, None, None, [Reason(
            "OTHER_QUOTE", f"this is quote {identity.number}, not {issued.number}")], [])
    current = issued.current_version or issued.version
    if identity.version != issued.version:
        reasons.append(Reason("UNKNOWN_VERSION", f"this is version {identity.version}; we sent version "
                                                 f"{issued.version} for signature"))
    if identity.version is not None and identity.version < current:
        reasons.append(Reason("OLD_VERSION", f"this is version {identity.version}; version {current} is the "
                                             "current one"))
    if identity.content_hash and identity.content_hash != issued.content_hash:
        reasons.append(Reason("CONTENT_HASH_MISMATCH", f"this copy's fingerprint does not match version "
                                                       f"{issued.version} as we sent it"))
    _check_metadata_agrees(doc, identity, reasons)

    quote_pages = [p for p in doc.pages if not _CERTIFICATE.search(p.text)]
    docusign = next((m.group(1) for m in (_DOCUSIGN.search(p.text) for p in doc.pages) if m), None)
    scans = [p for p in quote_pages if p.scanned]
    expected_pages = identity.pages or len(quote_pages)
    if len(quote_pages) < expected_pages:
        reasons.append(Reason("PAGE_MISSING", f"the quote has {expected_pages} pages; this copy has "
                                              f"{len(quote_pages)}"))

    if scans and len(scans) == len(quote_pages):
        reasons.append(Reason("SCAN_CONTENT_NOT_COMPARED", "this is a scanned copy: it matches the quote by its QR "
                                                           "code, but the lines and totals on an image cannot be "
                                                           "compared automatically; a person should check them"))
    else:
        _compare_content(doc, issued, reasons)
    for page in quote_pages:
        if page.covered:
            hidden_text = " ".join(w["text"] for w in page.covered)
            reasons.append(Reason("TEXT_COVERED", f"on page {page.index} something was covered with a white box: "
                                                  f"“{hidden_text}”", page.index))

    digital = _digital_signatures(doc.raw, issued, reasons, notes)
    method = "pades" if digital else None
    if docusign:
        notes.append(Reason("DOCUSIGN", f"completed in DocuSign (envelope {docusign})"))
    signer = digital
    if not digital:
        method, signer = _page_marks(doc, quote_pages, expected_pages, issued, reasons, notes,
                                     docusign=docusign is not None)
    if docusign and method not in (None, "pades"):
        method = "docusign"
    return _verdict(issued, identity, method, signer, reasons, notes)


def _verdict(issued: IssuedQuote, identity: Identity | None, method: str | None, signer: str | None,
             reasons: list[Reason], notes: list[Reason]) -> Verdict:
    if any(r.code in REJECTING for r in reasons):
        status = REJECTED
    elif reasons:
        status = NEEDS_REVIEW
    else:
        status = ACCEPTED
    return Verdict(status, identity.number if identity else None, identity.version if identity else None,
                   method, signer, tuple(reasons), tuple(notes))


def _check_metadata_agrees(doc: _Document, identity: Identity, reasons: list[Reason]) -> None:
    if identity.source != "metadata":
        return
    for page in doc.pages:
        found = L.FOOTER.search(page.text.replace("\n", " "))
        if found and (found["number"], int(found["version"]), found["hash"]) != (
                identity.number, identity.version, identity.content_hash):
            reasons.append(Reason("METADATA_MISMATCH", f"page {page.index} says {found['number']} version "
                                                       f"{found['version']}, the file says {identity.number} "
                                                       f"version {identity.version}", page.index))
            return


# --- the content ---------------------------------------------------------------------

def _rows(doc: _Document, rtl: bool) -> dict[str, list[str]]:
    """Marker -> the cells of its row, in reading order (first cell first)."""
    rows: dict[str, list[str]] = {}
    for page in doc.pages:
        for marker in page.hidden:
            if not L.ROW_MARKER.match(marker["text"]):
                continue
            middle = (marker["top"] + marker["bottom"]) / 2
            row = sorted((w for w in page.words if abs((w["top"] + w["bottom"]) / 2 - middle) < 6),
                         key=lambda w: w["x0"])
            cells: list[list[dict[str, Any]]] = []
            for word in row:
                if cells and word["x0"] - cells[-1][-1]["x1"] < 5.0:
                    cells[-1].append(word)
                else:
                    cells.append([word])
            texts = [" ".join(w["text"] for w in cell) for cell in cells]
            rows[L.ROW_MARKER.match(marker["text"])[1]] = texts[::-1] if rtl else texts
    return rows


def _compare_content(doc: _Document, issued: IssuedQuote, reasons: list[Reason]) -> None:
    rtl = issued.language.split("_")[0] in ("he", "ar", "fa", "ur", "yi")
    rows = _rows(doc, rtl)
    if not rows:
        reasons.append(Reason("CONTENT_UNREADABLE", "the lines and totals of this copy cannot be read back; a "
                                                    "person should compare them with the quote"))
        return
    try:
        decimal = get_decimal_symbol(issued.language)
    except (ValueError, LookupError, UnknownLocaleError):  # unknown to Babel: the document is in English
        decimal = "."
    for line in issued.lines:
        cells = rows.pop(f"L{line.position}", None)
        what = f"line {line.position} ({line.description})"
        if cells is None or len(cells) < 4:
            reasons.append(Reason("LINE_MISSING", f"{what} is missing"))
            continue
        description, quantity, unit, net = " ".join(cells[:-3]), cells[-3], cells[-2], cells[-1]
        if _letters(description) != _letters(line.description):
            reasons.append(Reason("LINE_CHANGED", f"{what}: the description was changed to “{description}”"))
        found_quantity = _number(quantity, decimal)
        if found_quantity != line.quantity:
            reasons.append(Reason("LINE_CHANGED", f"{what}: the quantity was changed from "
                                                  f"{_plain(line.quantity)} to {quantity}"))
        for label, text, expected in (("unit price", unit, line.unit_amount), ("amount", net, line.net)):
            found = _number(text, decimal)
            if found is None or found != Decimal(expected).scaleb(-issued.decimals):
                reasons.append(Reason("LINE_CHANGED", f"{what}: the {label} was changed from "
                                                      f"{issued.amount(expected)} to {_shown(found, text, issued)}"))
    for key in sorted(k for k in rows if k.startswith("L")):
        reasons.append(Reason("LINE_ADDED", f"line {key[1:]} was added: “{' '.join(rows[key])}”"))
    expected_totals = [("NET", "NET_CHANGED", "the net amount", issued.net)]
    expected_totals += [(f"TAX{rate}", "TAX_CHANGED", f"the VAT at {_plain(Decimal(rate) / 100)} %", tax)
                        for rate, tax in issued.taxes]
    expected_totals.append(("TOTAL", "TOTAL_CHANGED", "the total", issued.gross))
    for key, code, label, expected in expected_totals:
        cells = rows.get(key)
        found = _number(cells[-1], decimal) if cells else None
        if found is None or found != Decimal(expected).scaleb(-issued.decimals):
            shown = _shown(found, cells[-1] if cells else "", issued)
            reasons.append(Reason(code, f"{label} was changed from {issued.amount(expected)} to {shown}"
                                  if cells else f"{label} ({issued.amount(expected)}) is missing"))


def _number(text: str, decimal: str) -> Decimal | None:
    kept = "".join(c for c in unicodedata.normalize("NFKC", text) if c.isdigit() or c in (decimal, "-", "−"))
    kept = kept.replace("−", "-").replace(decimal, ".")
    try:
        return Decimal(kept) if kept and kept not in ("-", ".") else None
    except InvalidOperation:
        return None


def _shown(found: Decimal | None, text: str, issued: IssuedQuote) -> str:
    if found is None:
        return f"“{text}”" if text else "nothing"
    return _english(found, issued.decimals, issued.currency)


def _english(value: Decimal, decimals: int, currency: str) -> str:
    return f"{value:,.{decimals}f} {currency}"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def _letters(text: str) -> list[str]:
    """The characters of a text in any order: right-to-left reordering keeps the same ones."""
    return sorted(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


# --- signatures ----------------------------------------------------------------------

def _digital_signatures(pdf: bytes, issued: IssuedQuote, reasons: list[Reason], notes: list[Reason]) -> str | None:
    """PAdES/CMS signatures: intact, and what was changed after each. Returns the signer
    of a good one, or None when there is none."""
    if b"/ByteRange" not in pdf:
        return None
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    # An untrusted (e.g. self-signed) certificate is an answer we report, not an error
    # for pyHanko to log with a traceback.
    logging.getLogger("pyhanko.sign.validation").setLevel(logging.CRITICAL)

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = list(reader.embedded_signatures)
    except Exception as error:
        reasons.append(Reason("SIGNATURE_BROKEN", f"the digital signature cannot be read: {error}"))
        return None
    signer = None
    for signature in signatures:
        context = ValidationContext(allow_fetching=False, trust_roots=[])  # no network: trust is reported
        try:
            status = validate_pdf_signature(signature, signer_validation_context=context)
        except Exception as error:
            reasons.append(Reason("SIGNATURE_BROKEN", f"the digital signature cannot be checked: {error}"))
            continue
        name = status.signing_cert.subject.native.get("common_name") if status.signing_cert else None
        if not status.intact:
            reasons.append(Reason("SIGNATURE_BROKEN", "the digital signature is broken: the signed content "
                                                      "was changed"))
            continue
        level = status.modification_level
        if level is ModificationLevel.OTHER:
            reasons.append(Reason("MODIFIED_AFTER_SIGNING", f"the document was changed after {name or 'the signer'} "
                                                            "signed it digitally"))
            continue
        if level is ModificationLevel.ANNOTATIONS:
            reasons.append(Reason("CHANGED_AFTER_SIGNING_ANNOTATIONS", "comments or stamps were added after the "
                                                                       "digital signature; a person should look"))
        if not status.trusted:
            notes.append(Reason("SIGNATURE_NOT_TRUSTED", f"digitally signed by {name or 'an unnamed signer'}; the "
                                                         "certificate is not from an authority we trust, so the "
                                                         "name is what the signer says it is"))
        if issued.signer_name and name and not _same_person(name, issued.signer_name):
            reasons.append(Reason("SIGNER_MISMATCH", f"digitally signed by {name}; we expected "
                                                     f"{issued.signer_name}"))
        signer = name or "digital signature"
    return signer


def _page_marks(doc: _Document, pages: list[_Page], expected_pages: int, issued: IssuedQuote,
                reasons: list[Reason], notes: list[Reason], *, docusign: bool) -> tuple[str | None, str | None]:
    """Each page's box: initials on every page but the last, the signature on the last."""
    methods: list[str] = []
    typed_name = None
    unsigned: list[int] = []
    last = min(len(pages), expected_pages)
    for number, page in enumerate(pages[:last], start=1):
        box = L.SIGNATURE if number == expected_pages else L.INITIALS
        if page.scanned:
            found, share = _ink(doc.raw, page.index, box)
            if found == "faint":
                reasons.append(Reason("FAINT_MARK", f"page {number} has only faint marks in its "
                                                    f"{'signature' if box is L.SIGNATURE else 'initials'} box "
                                                    f"({share:.1%} ink); a person should look", number))
            elif found == "ink":
                methods.append("ink")
            elif found == "no_qr":
                reasons.append(Reason("CONTENT_UNREADABLE", f"page {number} is a scan whose QR code cannot be read;"
                                                            " a person should check it", number))
            else:
                unsigned.append(number)
            continue
        mark = _mark(doc, page, box)
        if box is L.SIGNATURE:
            name = _text_in(page, L.NAME) or (_text_in(page, L.SIGNATURE) if mark == "typed" else None)
            if name:
                typed_name = name
            if mark is None and name and _text_in(page, L.DATE):
                mark = "typed"  # a typed name and date, as many accept by email
        if mark:
            methods.append(mark)
        elif docusign and box is L.INITIALS:
            continue  # DocuSign envelopes place one signature tab; the envelope covers every page
        else:
            unsigned.append(number)
    if unsigned == [expected_pages] and len(unsigned) == len(pages[:last]):
        reasons.append(Reason("NOT_SIGNED", "the quote is not signed"))
    elif len(unsigned) == len(pages[:last]) and unsigned:
        reasons.append(Reason("NOT_SIGNED", "the quote is not signed: no page carries a signature or initials"))
    else:
        for number in unsigned:
            what = "signed" if number == expected_pages else "initialled"
            reasons.append(Reason("PAGE_NOT_SIGNED", f"page {number} is not {what}", number))
    if typed_name and issued.signer_name and not _same_person(typed_name, issued.signer_name):
        reasons.append(Reason("SIGNER_MISMATCH", f"signed by “{typed_name}”; we expected {issued.signer_name}"))
    method = None
    if methods:
        order = ("field", "image", "drawing", "typed", "ink")
        method = next(m for m in order if m in methods)
    return method, typed_name


def _mark(doc: _Document, page: _Page, box: L.Box) -> str | None:
    inner = box.inner()
    for number, rect, _, filled in doc.widgets:
        if number == page.index and filled and inner.overlaps(*rect):
            return "field"
    if any(inner.overlaps(*r) for r in page.images):
        return "image"
    if any(inner.overlaps(*r) and not _is_box_border(r, box) for r in page.drawings):
        return "drawing"
    if _text_in(page, box):
        return "typed"
    return None


def _is_box_border(rect: tuple[float, float, float, float], box: L.Box) -> bool:
    x0, top, x1, bottom = rect
    return abs(x0 - box.x0) < 2 and abs(x1 - box.x1) < 2 and abs(top - box.top) < 2 and abs(bottom - box.bottom) < 2


def _text_in(page: _Page, box: L.Box) -> str | None:
    inner = box.inner()
    words = [w for w in page.words if inner.holds((w["x0"] + w["x1"]) / 2, (w["top"] + w["bottom"]) / 2)]
    return " ".join(w["text"] for w in sorted(words, key=lambda w: (round(w["top"]), w["x0"]))) or None


def _same_person(found: str, expected: str) -> bool:
    def words(text: str) -> set[str]:
        plain = unicodedata.normalize("NFKD", text.casefold())
        return {w for w in re.split(r"[^\w]+", "".join(c for c in plain if not unicodedata.combining(c))) if w}
    wanted = words(expected)
    return bool(wanted) and wanted <= words(found) | {"s"}


# --- scans ---------------------------------------------------------------------------

_SCALE = 2.0  # 144 dpi: enough for the QR code and for ink


def _page_image(pdf: bytes, index: int) -> Any:
    import pypdfium2
    document = pypdfium2.PdfDocument(pdf)
    try:
        return document[index - 1].render(scale=_SCALE, grayscale=True).to_pil().convert("L")
    finally:
        document.close()


def _qr_of(pdf: bytes, index: int, image: Any = None) -> tuple[L.QrPayload, Any] | None:
    """Our QR code on a page image, and where it is (its corners in pixels)."""
    import zxingcpp
    image = image if image is not None else _page_image(pdf, index)
    for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode):
        payload = L.read_qr_text(code.text)
        if payload is not None:
            return payload, code.position
    return None


def _ink(pdf: bytes, index: int, box: L.Box) -> tuple[str, float]:
    """'ink', 'faint', 'none', or 'no_qr' for a box on a scanned page. The QR code's
    corners map the page's points to the scan's pixels, whatever its scale or margins."""
    image = _page_image(pdf, index)
    found = _qr_of(pdf, index, image)
    if found is None:
        return "no_qr", 0.0
    _, position = found
    left, top = position.top_left.x, position.top_left.y
    scale_x = (position.top_right.x - left) / (L.QR.x1 - L.QR.x0)
    scale_y = (position.bottom_left.y - top) / (L.QR.bottom - L.QR.top)
    inner = box.inner(6.0)
    crop = image.crop((int(left + (inner.x0 - L.QR.x0) * scale_x), int(top + (inner.top - L.QR.top) * scale_y),
                       int(left + (inner.x1 - L.QR.x0) * scale_x), int(top + (inner.bottom - L.QR.top) * scale_y)))
    histogram = crop.histogram()
    total = sum(histogram) or 1
    share = sum(histogram[:128]) / total
    return ("ink" if share >= _INK else "faint" if share >= _FAINT else "none"), share
