"""What every customer document shares: the company's letterhead, fonts that ship with
the package (DejaVu Sans: Latin, Hebrew, Lithuanian and Polish diacritics), locale-correct
money and dates (Babel), right-to-left mirroring, and a paginated table.

Right-to-left: fpdf2 shapes and reorders each string (HarfBuzz + the Unicode bidi
algorithm); we mirror the page layout (columns and alignments) so Hebrew documents read
from the right. Identifiers and amounts stay in cells of their own, so they come back
in one piece when read (see TESTING.md on reordering)."""
from __future__ import annotations

import copy
import functools
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Sequence

from babel import Locale as BabelLocale
from babel.core import UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

from adapters.pdf_render.company import Company
from adapters.pdf_render.labels import RIGHT_TO_LEFT, label
from flows.money import Money
from parsers.quote_layout import MARGIN, PAGE_HEIGHT, PAGE_WIDTH

FONT = "DejaVu"
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
MARKER_X = 6.0  # row markers sit in the left page margin, clear of the text in any direction


@dataclass(frozen=True)
class Locale:
    """How one customer's documents write words, money and dates."""
    language: str

    def __post_init__(self) -> None:
        try:
            BabelLocale.parse(self.language.replace("-", "_"))
        except (ValueError, LookupError, UnknownLocaleError):  # unknown: English, rather than no document
            object.__setattr__(self, "language", "en")
        else:
            object.__setattr__(self, "language", self.language.replace("-", "_"))

    @property
    def rtl(self) -> bool:
        return self.language.split("_")[0] in RIGHT_TO_LEFT

    def t(self, key: str, **values: object) -> str:
        return label(key, self.language.split("_")[0], **values)

    def money(self, minor: int, currency: str) -> str:
        return plain(format_currency(Money(minor, currency).to_decimal(), currency, locale=self.language))

    def date(self, day: date | None) -> str:
        return plain(format_date(day, "medium", locale=self.language)) if day else ""

    def quantity(self, value: Decimal) -> str:
        return plain(format_decimal(value.normalize() if value == value.to_integral() else value,
                                    locale=self.language))

    def rate(self, basis_points: int) -> str:
        return plain(format_percent(Decimal(basis_points) / 10_000, "#,##0.##%", locale=self.language))


@functools.cache
def _parsed_font(style: str, filename: str) -> TTFFont:
    """The font parsed once per process, every table decompiled: fontTools reads 6,000
    glyphs' outlines, metrics and names in Python, about 0.1 s a font, twice a document."""
    fonts = resources.files("adapters.pdf_render").joinpath("fonts")
    with resources.as_file(fonts.joinpath(filename)) as path:
        scratch = FPDF(unit="pt")
        scratch.add_font(FONT, style, str(path))
        font = scratch.fonts[f"{FONT.lower()}{style}"]
        for tag in font.ttfont.keys():
            font.ttfont[tag]
        return font


def add_shared_font(pdf: FPDF, style: str, filename: str) -> None:
    """`pdf.add_font` from the parsed font: the metrics (read only) are shared, and what
    one document changes is its own — the widths cache, the glyphs it used, the font
    descriptor (`output()` gives it the document's object number and subset name) and
    the fontTools font that `output()` subsets in place (a copy of the parsed one)."""
    parsed = _parsed_font(style, filename)
    font = TTFFont.__new__(TTFFont)
    for name in TTFFont.__slots__:
        if hasattr(parsed, name):
            setattr(font, name, getattr(parsed, name))
    font.i = len(pdf.fonts) + 1
    font.cw = copy.copy(parsed.cw)  # a defaultdict: reading an unknown character adds it
    font.glyph_ids = dict(parsed.glyph_ids)
    font.desc = copy.copy(parsed.desc)
    font.missing_glyphs, font.biggest_size_pt, font._hbfont = [], 0, None
    font.ttfont = subsettable_copy(parsed.ttfont)
    font.subset = SubsetMap(font)
    pdf.fonts[font.fontkey] = font


def subsettable_copy(parsed: ttLib.TTFont) -> ttLib.TTFont:
    """A copy the fontTools subsetter may cut down in place, leaving `parsed` whole: it
    replaces the tables' glyph lists and maps (glyf, hmtx, post, cmap, loca, kern), it
    does not edit the glyphs it keeps. Copying those containers takes about 3 ms where
    parsing the file again takes 0.1 s; the subset comes out byte for byte the same
    (tests/test_documents_render.py compares it with a font read afresh)."""
    font = copy.copy(parsed)
    font.tables = {}
    for tag, table in parsed.tables.items():
        font.tables[tag] = twin = copy.copy(table)
        for name, value in vars(table).items():
            if isinstance(value, (dict, list)):
                setattr(twin, name, copy.copy(value))
    if hasattr(parsed, "glyphOrder"):
        font.glyphOrder = list(parsed.glyphOrder)
    cmap = font.tables.get("cmap")
    if cmap is not None:
        cmap.tables = [copy.copy(sub) for sub in cmap.tables]
        for sub in cmap.tables:
            if isinstance(getattr(sub, "cmap", None), dict):
                sub.cmap = dict(sub.cmap)
    return font


def plain(text: str) -> str:
    """Without bidi control marks: the layout and the bidi algorithm place the text, and
    the marks have no glyph in the font."""
    return text.translate(_BIDI_CONTROLS)


@dataclass(frozen=True)
class Column:
    key: str
    width: float
    align: str = "L"          # for left-to-right pages; mirrored for right-to-left


@dataclass
class Table:
    columns: Sequence[Column]
    header: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    markers: list[str | None] = field(default_factory=list)   # hidden marker per row (quote rows)


class DocumentPdf(FPDF):
    """An A4 page in points, fonts loaded, shaping on, our own page breaks."""

    ROW = 16.0

    def __init__(self, locale: Locale, company: Company) -> None:
        super().__init__(orientation="P", unit="pt", format="A4")
        self.loc, self.company = locale, company
        add_shared_font(self, "", "DejaVuSans.ttf")
        add_shared_font(self, "B", "DejaVuSans-Bold.ttf")
        if locale.rtl:  # HarfBuzz shaping for scripts that need it; Latin pages stay lean and fast to read
            self.set_text_shaping(True)
        self.set_auto_page_break(False)
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_creator("closeloop")
        self.set_lang(locale.language)

    # --- text placed at absolute positions, mirrored for right-to-left ---------------

    def put(self, x: float, y: float, w: float, h: float, text: str, *, align: str = "L", size: float = 9,
            bold: bool = False, color: tuple[int, int, int] = (0, 0, 0), border: int = 0,
            mirror: bool = True, fit: bool = True) -> None:
        if self.loc.rtl and mirror:
            x = PAGE_WIDTH - x - w
            align = {"L": "R", "R": "L"}.get(align, align)
        self.set_font(FONT, "B" if bold else "", size)
        while fit and size > 5 and self.get_string_width(text) > w - 2:
            size -= 0.5  # shrink rather than cut: every word of a line must stay readable
            self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*color)
        self.set_xy(x, y)
        self.cell(w, h, text, border=border, align=align)
        self.set_text_color(0, 0, 0)

    def hidden(self, x: float, y: float, text: str) -> None:
        """White 1 pt text: anchors for e-signature tabs and row markers for the verifier."""
        self.set_font(FONT, "", 1)
        self.set_text_color(255, 255, 255)
        self.set_xy(x, y)
        self.cell(self.get_string_width(text) + 1, 2, text)
        self.set_text_color(0, 0, 0)

    def rule(self, y: float) -> None:
        self.set_draw_color(180, 180, 180)
        self.line(MARGIN, y, PAGE_WIDTH - MARGIN, y)
        self.set_draw_color(0, 0, 0)

    # --- the letterhead --------------------------------------------------------------

    def letterhead(self, right_edge: float = PAGE_WIDTH - MARGIN) -> float:
        """Logo, company name, address and VAT id at the top; returns the y below them."""
        c, x, y = self.company, MARGIN, 28.0
        if c.logo is not None and c.logo.exists():
            self.image(str(c.logo), x=x if not self.loc.rtl else right_edge - 48, y=y, h=36)
            x += 56
        width = right_edge - x - 8
        align = "R" if self.loc.rtl else "L"
        self.put(x, y, width, 16, c.name, size=13, bold=True, align=align, mirror=False)
        y += 17
        details = [*c.address, *([f"{self.loc.t('vat_id')}: {c.vat_id}"] if c.vat_id else []),
                   *([c.email] if c.email else [])]
        for text in details[:4]:
            self.put(x, y, width, 11, text, size=8, color=(70, 70, 70), align=align, mirror=False)
            y += 11
        return max(y, 96.0) + 8

    def pairs(self, x: float, y: float, w: float, rows: Sequence[tuple[str, str]], *, label_w: float = 95) -> float:
        """Label: value rows (values in their own cells so identifiers stay whole)."""
        for key, value in rows:
            self.put(x, y, label_w, 13, key, size=8, color=(90, 90, 90))
            self.put(x + label_w, y, w - label_w, 13, value, size=9)
            y += 13
        return y

    # --- a table that breaks across pages -------------------------------------------

    def table(self, table: Table, y: float, *, bottom: float, new_page) -> float:  # type: ignore[no-untyped-def]
        """Draw the rows from y; when a row would pass `bottom`, `new_page()` starts the
        next page and returns where the table continues. Returns the y after the last row."""
        y = self._table_header(table, y)
        for index, row in enumerate(table.rows):
            if y + self.ROW > bottom:
                y = self._table_header(table, new_page())
            x = MARGIN
            marker = table.markers[index] if index < len(table.markers) else None
            if marker:
                self.hidden(MARKER_X, y + 6, marker)
            for column, text in zip(table.columns, row):
                self.put(x + 4, y, column.width - 8, self.ROW, text, align=column.align, size=9)
                x += column.width
            y += self.ROW
        self.rule(y + 1)
        return y + 4

    def _table_header(self, table: Table, y: float) -> float:
        x = MARGIN
        for column, text in zip(table.columns, table.header):
            self.put(x + 4, y, column.width - 8, self.ROW, text, align=column.align, size=8, bold=True,
                     color=(60, 60, 60))
            x += column.width
        self.rule(y + self.ROW)
        return y + self.ROW + 2

    def totals(self, rows: Sequence[tuple[str | None, str, str, bool]], y: float) -> float:
        """(marker, label, amount, bold) rows, right-aligned under the table."""
        x_label, x_amount = MARGIN + CONTENT_WIDTH - 300, MARGIN + CONTENT_WIDTH - 130
        for marker, text, amount, strong in rows:
            if marker:
                self.hidden(MARKER_X, y + 6, marker)
            self.put(x_label, y, 166, self.ROW, text, align="R", size=9, bold=strong)
            self.put(x_amount + 4, y, 122, self.ROW, amount, align="R", size=10 if strong else 9, bold=strong)
            y += self.ROW
        return y

    def page_footer(self, page: int, pages: int, extra: str = "") -> None:
        text = self.loc.t("page", page=page, pages=pages)
        self.put(MARGIN, PAGE_HEIGHT - 34, 120, 10, text, size=7, color=(110, 110, 110))
        if extra:
            self.put(MARGIN + 120, PAGE_HEIGHT - 34, CONTENT_WIDTH - 120, 10, extra, size=6.5, color=(110, 110, 110),
                     align="R", fit=True)

    def to_bytes(self) -> bytes:
        return bytes(self.output())


def image_stream(png: bytes) -> io.BytesIO:
    return io.BytesIO(png)
