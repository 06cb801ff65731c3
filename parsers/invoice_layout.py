"""Template-free invoice extraction from the page layout.

pdfplumber gives words with positions; words are grouped into lines and lines into
cells (runs of words without a column-sized gap). Field labels (parsers/invoice_labels)
are found in the cells — overlapping labels compete and the longest wins, so
"Total HT" is net, not total. A label's value is looked for to its right in the same
cell, in the next cell of the line, or in the cells just below it that overlap it
horizontally (table headers with values underneath). Net, tax and total are chosen
together: a triple where net + tax = total wins and raises confidence. No issuer
templates: nothing here knows any particular invoice."""
from __future__ import annotations

import io
import itertools
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pdfplumber

from parsers import invoice_labels as L
from parsers.invoice_model import ExtractedInvoice, InvoiceLine
from parsers.invoice_values import amounts_in, currencies_in, dates_in, fold, ibans_in, vat_ids_in
from parsers.pdf_errors import PdfError, PdfErrorCode

MAX_PAGES = 20          # invoices longer than this are read on their first 20 pages
LINES_BELOW = 3         # how far below a label its value may sit


@dataclass
class Cell:
    text: str
    folded: str
    page: int
    line: int           # index of its line in the document
    x0: float
    x1: float
    top: float
    bottom: float
    size: float
    starts: list[int]   # character offset of each word in text
    words: list[dict]

    def x_at(self, offset: int, end: bool = False) -> float:
        index = max(i for i, start in enumerate(self.starts) if start <= max(offset, 0)) if self.starts else 0
        word = self.words[min(index, len(self.words) - 1)]
        return word["x1"] if end else word["x0"]


@dataclass
class Hit:
    field: str
    weight: float
    cell: Cell
    start: int
    end: int

    @property
    def x0(self) -> float:
        return self.cell.x_at(self.start)

    @property
    def x1(self) -> float:
        return self.cell.x_at(self.end - 1, end=True)


@dataclass
class Document:
    cells: list[Cell]
    lines: list[list[Cell]]
    hits: list[Hit] = field(default_factory=list)
    hits_by_cell: dict[int, list[Hit]] = field(default_factory=dict)
    month_first: bool = False

    @property
    def text(self) -> str:
        return "\n".join("   ".join(c.text for c in line) for line in self.lines)


def _cells(pdf: bytes) -> tuple[list[Cell], list[list[Cell]]]:
    cells: list[Cell] = []
    lines: list[list[Cell]] = []
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        for page_no, page in enumerate(document.pages[:MAX_PAGES]):
            words = page.extract_words(x_tolerance=3, y_tolerance=3, extra_attrs=["size"])
            words.sort(key=lambda w: (round(w["top"]), w["x0"]))
            rows: list[list[dict]] = []
            for word in sorted(words, key=lambda w: w["top"]):
                middle = (word["top"] + word["bottom"]) / 2
                for row in rows[-3:]:
                    if abs((row[0]["top"] + row[0]["bottom"]) / 2 - middle) < max(2.0, 0.35 * word["size"]):
                        row.append(word)
                        break
                else:
                    rows.append([word])
            for row in rows:
                row.sort(key=lambda w: w["x0"])
                row = _join_touching(row)
                line_cells: list[Cell] = []
                group: list[dict] = []
                for word in row:
                    gap_limit = max(8.0, 1.6 * word["size"])
                    if group and word["x0"] - group[-1]["x1"] > gap_limit:
                        line_cells.append(_cell(group, page_no, len(lines)))
                        group = []
                    group.append(word)
                if group:
                    line_cells.append(_cell(group, page_no, len(lines)))
                lines.append(line_cells)
                cells.extend(line_cells)
    return cells, lines


def _join_touching(row: list[dict]) -> list[dict]:
    """Words that touch are one word: some generators draw a space glyph over a letter,
    which splits "9314110911" into "9" and "314110911"."""
    out: list[dict] = []
    for word in row:
        if out and 0 <= word["x0"] - out[-1]["x1"] < 0.5:
            out[-1] = {**out[-1], "text": out[-1]["text"] + word["text"], "x1": word["x1"]}
        else:
            out.append(word)
    return out


def _cell(words: list[dict], page: int, line: int) -> Cell:
    starts, parts, offset = [], [], 0
    for word in words:
        starts.append(offset)
        parts.append(word["text"])
        offset += len(word["text"]) + 1
    text = " ".join(parts)
    return Cell(text, fold(text), page, line, words[0]["x0"], max(w["x1"] for w in words),
                min(w["top"] for w in words), max(w["bottom"] for w in words),
                max(w.get("size", 10) for w in words), starts, words)


FIELD_LABELS = {"number": L.NUMBER, "issue_date": L.ISSUE_DATE, "due_date": L.DUE_DATE, "net": L.NET,
                "tax": L.TAX, "total": L.TOTAL, "seller": L.SELLER, "buyer": L.BUYER, "currency": L.CURRENCY}


def _find_labels(document: Document) -> None:
    for cell in document.cells:
        found = []
        for name, labels in FIELD_LABELS.items():
            for pattern, weight in labels:
                for match in pattern.finditer(cell.folded):
                    if match.end() > match.start():
                        found.append(Hit(name, weight, cell, match.start(), match.end()))
        # overlapping labels compete: the longest wins ("total HT" over "total")
        found.sort(key=lambda h: (-(h.end - h.start), -h.weight))
        kept: list[Hit] = []
        for hit in found:
            if not any(hit.start < k.end and k.start < hit.end for k in kept):
                kept.append(hit)
        document.hits.extend(sorted(kept, key=lambda h: h.start))


def _after(hit: Hit) -> list[tuple[str, float, Cell, int]]:
    """Where a label's value may be: (text, position weight, cell, offset of text in cell)."""
    cell = hit.cell
    # the rest of the cell up to the next label in it
    later = [h.start for h in _hits_in(cell) if h.start >= hit.end]
    stop = min(later) if later else len(cell.text)
    places = [(cell.text[hit.end:stop], 1.0, cell, hit.end)]
    line = _doc().lines[cell.line]
    index = line.index(cell)
    for nxt in line[index + 1:]:   # the next cells of the line, past a lone "EUR" or "€"
        labelled = [h.start for h in _hits_in(nxt)]
        cut = min(labelled) if labelled else len(nxt.text)
        if cut:
            places.append((nxt.text[:cut], 0.9, nxt, 0))
        if labelled or re.search(r"\d", nxt.text[:cut]):
            break
    # a value set beside a label that wraps onto two lines sits a half line up or down
    for near in _doc().lines[max(0, cell.line - 1): cell.line + 2]:
        for other in near:
            if (other.page == cell.page and other.line != cell.line and other.x0 >= hit.x1 - 1
                    and other.top < cell.bottom and other.bottom > cell.top):
                places.append((other.text, 0.85, other, 0))
    x0, x1 = hit.x0, hit.x1
    for below in _doc().lines[cell.line + 1: cell.line + 1 + LINES_BELOW]:
        for other in below:
            if other.page == cell.page and other.x0 <= x1 + 6 and other.x1 >= x0 - 6:
                labelled = [h.start for h in _hits_in(other)]
                cut = min(labelled) if labelled else len(other.text)
                places.append((other.text[:cut], 0.8 - 0.05 * (other.line - cell.line - 1), other, 0))
    return places


# The document being read: set by extract_from_layout for the helpers below (a context
# variable, so concurrent reads in threads do not see each other's document).
_current: ContextVar[Document] = ContextVar("invoice_layout_document")


def _doc() -> Document:
    return _current.get()


def _hits_in(cell: Cell) -> list[Hit]:
    return _doc().hits_by_cell.get(id(cell), [])


def _labelled(name: str) -> list[Hit]:
    return [h for h in _doc().hits if h.field == name]


# --- fields ---------------------------------------------------------------------------

_NUMBER_TOKEN = re.compile(r"^[:#.\s]*(?:n[°ºo]\.?\s*)?[:#\s]*([A-Za-z0-9][A-Za-z0-9\-/_.]*[A-Za-z0-9]|\d)")


def _number_candidates() -> list[tuple[str, float]]:
    out = []
    for hit in _labelled("number"):
        for text, where, _cell, _ in _after(hit):
            heading = hit.start == 0 and not hit.cell.text[hit.end:].strip(" :")
            if hit.weight < 1.0 and not heading and (where < 0.9 or where < 1.0 and hit.cell.text[hit.end:].strip()):
                continue   # a bare "invoice"/"N°" only counts with its value right after it (or under it, as a column head)
            match = _NUMBER_TOKEN.match(text)
            if not match:
                continue
            token = match.group(1).rstrip(".")
            if not re.search(r"\d", token) or dates_in(token) or len(token) > 32:
                continue
            if re.fullmatch(r"\d{1,3}(?:[.,]\d{2})", token):
                continue   # an amount, not a number
            out.append((token, hit.weight * where))
    return out


def _date_candidates(name: str) -> list[tuple[date, float]]:
    out = []
    numbered = {id(h.cell) for h in _labelled("number") if h.weight >= 1.0}
    for hit in _labelled(name):
        for text, where, cell, _ in _after(hit):
            found = dates_in(text, _doc().month_first)
            if found:
                # a date right after the label is its value; later ones in the text less so
                first, start, _ = found[0]
                if hit.weight < 1.0 and where == 1.0 and not re.fullmatch(r"[\s:.\-]*", text[:start]):
                    continue   # "date de livraison 28/01": a bare "date" qualified by other words
                score = hit.weight * where * (1.0 if start < 25 else 0.7)
                if name == "issue_date":
                    score *= _early(cell)
                    if id(cell) in numbered:
                        score += 0.3    # "Invoice No. 123 dated 2026-01-31": the number's own date
                    line_text = " ".join(c.folded for c in _doc().lines[cell.line])
                    if re.search(r"version|stylesheet|gedruckt|printed", line_text):
                        score *= 0.3    # the date of a template or a print run, not of the invoice
                out.append((first, score))
    return out


def _early(cell: Cell) -> float:
    """Header fields sit at the top of the first page; later mentions are weaker."""
    return 1.0 if cell.page == 0 else 0.8


def _amount_candidates(name: str) -> list[tuple[Decimal, float]]:
    out = []
    for hit in _labelled(name):
        for text, where, _cell, _ in _after(hit):
            found = amounts_in(text)
            if not found:
                continue
            decimals = [f for f in found if f[3]]
            pool = decimals or found
            penalty = 1.0 if decimals else 0.5
            first, last = pool[0], pool[-1]
            out.append((first[0], hit.weight * where * penalty))
            if last is not first:
                out.append((last[0], hit.weight * where * penalty * 0.8))
            if where < 1.0:
                break   # the nearest place that has an amount is the value
    return out


def _best(candidates: list[tuple[object, float]]) -> tuple[object, float] | tuple[None, float]:
    merged: dict[object, float] = {}
    for value, score in candidates:
        merged[value] = max(merged.get(value, 0.0), score) + 0.05 * (value in merged)
    if not merged:
        return None, 0.0
    value = max(merged, key=lambda v: merged[v])
    return value, min(1.0, merged[value])


def _top(candidates: list[tuple[Decimal, float]], k: int = 6) -> list[tuple[Decimal | None, float]]:
    merged: dict[Decimal, float] = {}
    for value, score in candidates:
        merged[value] = max(merged.get(value, 0.0), score)
    ranked = sorted(merged.items(), key=lambda item: -item[1])[:k]
    return ranked + [(None, 0.0)]


def _money(_document: Document) -> tuple[dict[str, Decimal | None], dict[str, float]]:
    nets, taxes, totals = (_top(_amount_candidates(n)) for n in ("net", "tax", "total"))
    best, best_score, consistent = (None, None, None), -1.0, False
    for (net, sn), (tax, st), (total, sg) in itertools.product(nets, taxes, totals):
        score = sn + st + sg
        ok = net is not None and tax is not None and total is not None and net + tax == total
        if ok:
            score += 1.5
        elif net is not None and total is not None and tax is None and net == total:
            score += 0.3
        if score > best_score:
            best, best_score, consistent = (net, tax, total), score, ok
    net, tax, total = best
    scores = {"net": dict(nets).get(net, 0.0), "tax": dict(taxes).get(tax, 0.0), "total": dict(totals).get(total, 0.0)}
    if net is not None and total is not None and tax is None:
        tax, scores["tax"] = total - net, 0.5
    elif tax is not None and total is not None and net is None:
        net, scores["net"] = total - tax, 0.5
    elif net is not None and tax is not None and total is None:
        total, scores["total"] = net + tax, 0.5
    # three labelled amounts that add up rarely do so by chance: agreement is strong evidence
    return {"net": net, "tax": tax, "total": total}, {k: min(1.0, 0.6 + 0.4 * v) if consistent else 0.7 * v
                                                      for k, v in scores.items()}


_NOT_A_NAME = re.compile(r"^\s*(?:(?:nummer|number|no|nr|id|gln|kunden-?nr|customer\s*(?:no|id)|tel|telefon|"
                         r"phone|e-?mail|fax|ust|vat|steuer|tax|siret|siren)(?![^\W\d_])|www\.|http|\d)", re.I)


_QUALIFIER = re.compile(r"^(?:trade\s*name|name|details|info\w*|address|adresse|data|dane|duomenys)?$")
_NUMBERED = re.compile(r"(?:nummer|number|nr\.?|no\.?|gln|duns|id)\b.*\d")


def _party(name: str) -> tuple[str | None, float]:
    """The name under (or after) a seller/buyer label; "Name: X" lines preferred."""
    hits = sorted(_labelled(name), key=lambda h: (h.cell.text[h.end:].strip(" :-") != "", h.cell.line))
    for hit in hits:
        cell = hit.cell
        rest = cell.text[hit.end:].strip(" :-–/")
        if hit.start == 0 and len(re.sub(r"[^\w]", "", rest)) >= 3 and not _QUALIFIER.match(fold(rest)) \
                and not _NOT_A_NAME.match(rest) and len(_hits_in(cell)) == 1:
            return _clean_name(rest), 0.7
        if hit.start > 0:
            continue   # "LOGO LE FOURNISSEUR": the word in a line, not a heading
        below = [c for line in _doc().lines[cell.line + 1: cell.line + 7] for c in line
                 if c.page == cell.page and c.x0 <= hit.x1 + 20 and c.x1 >= hit.x0 - 4]
        for c in below:
            text, score = c.text, 0.6
            if re.match(r"^\s*name\s*:", c.folded):
                text, score = re.sub(r"^\s*name\s*:\s*", "", c.text, flags=re.I), 0.8
                if not text.strip():
                    line = _doc().lines[c.line]
                    following = line[line.index(c) + 1:]
                    text = following[0].text if following else ""
            folded = fold(text)
            if any(h.start == 0 and (h.end >= len(c.folded.rstrip(" :")) or h.field in ("seller", "buyer"))
                   for h in _hits_in(c)):
                continue   # another heading ("Rechnungsempfänger", "SELLER TRADE NAME")
            if score < 0.8 and text.rstrip().endswith(":"):
                continue   # the label of a row ("Globale Nummer:"), its value in the next column
            if _NOT_A_NAME.match(text) or _NUMBERED.search(folded) or len(re.sub(r"[^\w]", "", text)) < 3:
                continue
            return _clean_name(text), score
    return None, 0.0


def _clean_name(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" :,;-")


def _header_seller() -> tuple[str | None, float]:
    """No seller label: the biggest text near the top of page one is usually the issuer."""
    top = [c for c in _doc().cells if c.page == 0 and not _hits_in(c) and len(re.sub(r"[^\w]", "", c.text)) >= 3
           and not _NOT_A_NAME.match(c.text)]
    if not top:
        return None, 0.0
    height = max(c.bottom for c in top)
    top = [c for c in top if c.top < height * 0.3] or top
    biggest = max(top, key=lambda c: (round(c.size), -c.top))
    return _clean_name(biggest.text), 0.3


def _currency() -> tuple[str | None, float]:
    for hit in _labelled("currency"):
        for text, where, _cell, _ in _after(hit):
            codes = currencies_in(text)
            if codes:
                return codes[0], 0.95 * where
    codes = currencies_in(_doc().text)
    if not codes:
        return None, 0.0
    winner = max(set(codes), key=codes.count)
    return winner, 0.6 if codes.count(winner) > 1 else 0.4


def _month_first(text: str) -> bool:
    """US-style 03/31/2026 dates: evidence from numeric dates whose first part is > 12."""
    day_first = month_first = 0
    for a, b in re.findall(r"(?<!\d)(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}(?!\d)", text):
        day_first += int(a) > 12
        month_first += int(b) > 12
    return month_first > day_first


def _line_items() -> list[InvoiceLine]:
    """Rows between a table header (description + amount columns) and the totals, that
    end in amounts: description, then quantity / unit price / amount from the right."""
    header = re.compile(r"(?<!\w)(description|beschreibung|bezeichnung|designation|artikel|opis|nazwa|aprasymas|"
                        r"pavadinimas|deskripsi|uraian|descripcion|concepto|descrizione|omschrijving|תיאור|פריט)")
    items: list[InvoiceLine] = []
    start = next((i for i, line in enumerate(_doc().lines) if any(header.search(c.folded) for c in line)), None)
    if start is None:
        return items
    end_lines = {h.cell.line for h in _doc().hits if h.field in ("net", "total", "tax") and h.weight >= 1.0}
    stop = min([i for i in end_lines if i > start] or [len(_doc().lines)])
    for line in _doc().lines[start + 1: stop]:
        text = "   ".join(c.text for c in line)
        found = [f for f in amounts_in(text) if f[3]]
        words = re.sub(r"[\d.,%€$£\s\-]+", " ", text).strip()
        if len(found) < 1 or len(re.sub(r"[^\w]", "", words)) < 3 or dates_in(text):
            continue
        first_amount = min(f[1] for f in amounts_in(text))
        description = text[:first_amount].strip(" -") or words
        numbers = amounts_in(text[first_amount:])
        quantity = numbers[0][0] if len(numbers) >= 3 else None
        unit = [n for n in numbers if n[3]]
        items.append(InvoiceLine(description=_clean_name(description), quantity=quantity,
                                 unit_price=unit[-2][0] if len(unit) >= 2 else None, amount=found[-1][0]))
    return items


def extract_from_layout(pdf: bytes) -> ExtractedInvoice:
    cells, lines = _cells(pdf)
    if not any(c.text.strip() for c in cells):
        raise PdfError(PdfErrorCode.NO_TEXT, "the PDF has no readable text (an image or a scan?): needs review")
    document = Document(cells, lines)
    _find_labels(document)
    for hit in document.hits:
        document.hits_by_cell.setdefault(id(hit.cell), []).append(hit)
    document.month_first = _month_first(document.text)
    token = _current.set(document)
    try:
        return _read(document)
    finally:
        _current.reset(token)


def _read(document: Document) -> ExtractedInvoice:

    confidence: dict[str, float] = {}
    number, confidence["number"] = _best(_number_candidates())
    issue, confidence["issue_date"] = _best(_date_candidates("issue_date"))
    if issue is None:
        dated = dates_in(_doc().text, _doc().month_first)
        if dated:
            issue, confidence["issue_date"] = dated[0][0], 0.3
    due, confidence["due_date"] = _best(_date_candidates("due_date"))
    if due is not None and issue is not None and due < issue:
        due, confidence["due_date"] = None, 0.0
    money, money_confidence = _money(document)
    confidence.update(money_confidence)
    currency, confidence["currency"] = _currency()
    seller, confidence["seller"] = _party("seller")
    if seller is None:
        seller, confidence["seller"] = _header_seller()
    buyer, confidence["buyer"] = _party("buyer")
    ibans = ibans_in(_doc().text)
    confidence["iban"] = 0.95 if ibans else 0.0
    vats = [v for v, valid in vat_ids_in(_doc().text) if valid]
    distinct = list(dict.fromkeys(vats))
    confidence["seller_vat_id"] = 0.6 if distinct else 0.0
    confidence["buyer_vat_id"] = 0.5 if len(distinct) > 1 else 0.0
    return ExtractedInvoice(
        source="layout", number=number, issue_date=issue, due_date=due, seller=seller, buyer=buyer,  # type: ignore[arg-type]
        seller_vat_id=distinct[0] if distinct else None, buyer_vat_id=distinct[1] if len(distinct) > 1 else None,
        currency=currency, net=money["net"], tax=money["tax"], total=money["total"],
        iban=ibans[0] if ibans else None, lines=_line_items(), confidence=confidence)
