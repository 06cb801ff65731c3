"""The invoice corpus and its truth, and how an extraction is scored against it.
Shared by scripts/score_invoices.py and bench/invoice_extraction.py.

Corpus layout (../shared/corpus/invoices/): facturx/<id>.pdf + <id>.json (truth read
from the embedded XML, kept where the page shows the same values) and invoice2data/
<name>.pdf + <name>.json (that project's expected output).

"Whole invoice" = number, issue date, currency, net, tax and total ALL exact (the
fields that book an invoice). Names, due date, line count are scored per field only:
names are printed with line breaks, titles and legal forms that the truth spells
differently, and many files print no due date."""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

WHOLE = ("number", "issue_date", "currency", "net", "tax", "total")
FIELDS = WHOLE + ("due_date", "seller", "buyer", "n_lines")

FACTURX_KEYS = {"invoice_number": "number", "issue_date": "issue_date", "due_date": "due_date",
                "seller_name": "seller", "buyer_name": "buyer", "currency": "currency",
                "net_total": "net", "tax_total": "tax", "grand_total": "total", "n_line_items": "n_lines"}
INVOICE2DATA_KEYS = {"invoice_number": "number", "date": "issue_date", "date_due": "due_date",
                     "currency": "currency", "amount_untaxed": "net", "amount_tax": "tax", "amount": "total"}


@dataclass
class Case:
    corpus: str      # "facturx" or "invoice2data"
    source: str      # the file-name prefix (who published it)
    name: str
    pdf: Path
    truth: dict


def cases(root: Path) -> list[Case]:
    out = []
    for pdf in sorted((root / "facturx").glob("*.pdf")):
        raw = json.loads(pdf.with_suffix(".json").read_text())
        truth = {ours: raw[theirs] for theirs, ours in FACTURX_KEYS.items() if raw.get(theirs) is not None}
        out.append(Case("facturx", pdf.name.split("__")[0], pdf.stem, pdf, truth))
    for pdf in sorted((root / "invoice2data").glob("*.pdf")):
        raw = json.loads(pdf.with_suffix(".json").read_text())
        raw = raw[0] if isinstance(raw, list) else raw
        truth = {ours: raw[theirs] for theirs, ours in INVOICE2DATA_KEYS.items() if raw.get(theirs) is not None}
        out.append(Case("invoice2data", "invoice2data", pdf.stem, pdf, truth))
    return out


def strip_xml(pdf: bytes) -> bytes:
    """The PDF without its embedded XML and XMP (as the corpus's strip_xml.py does)."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    root = writer._root_object
    names = root.get("/Names")
    if names is not None and "/EmbeddedFiles" in names.get_object():
        del names.get_object()[NameObject("/EmbeddedFiles")]
    for key in ("/AF", "/Metadata"):
        if key in root:
            del root[NameObject(key)]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _name(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().casefold()


def field_ok(field: str, truth: object, got: dict) -> bool:
    """got: the CLI JSON shape (ExtractedInvoice.as_json())."""
    if field == "n_lines":
        return len(got.get("lines") or []) == int(truth)  # type: ignore[call-overload]
    value = got.get(field)
    if value is None:
        return False
    if field in ("net", "tax", "total"):
        try:
            return Decimal(str(value)) == Decimal(str(truth))
        except ArithmeticError:
            return False
    if field in ("seller", "buyer"):
        return _name(value) == _name(truth)
    if field == "number":
        return str(value).strip() == str(truth).strip()
    return str(value) == str(truth)


def score(case: Case, got: dict | None) -> dict[str, bool]:
    """Per field present in the truth: right or not; plus 'whole' (all WHOLE fields
    the truth has are right)."""
    marks = {f: got is not None and field_ok(f, case.truth[f], got) for f in FIELDS if f in case.truth}
    marks["whole"] = all(marks[f] for f in WHOLE if f in marks)
    return marks


def table(rows: list[tuple[Case, dict[str, bool]]], title: str) -> str:
    lines = [f"{title}: {len(rows)} documents"]
    if not rows:
        return lines[0]
    for f in FIELDS + ("whole",):
        marks = [m[f] for _, m in rows if f in m]
        if marks:
            lines.append(f"  {f:11} {sum(marks):4}/{len(marks):<4} {100 * sum(marks) / len(marks):6.1f}%")
    return "\n".join(lines)


def whole_rate(rows: list[tuple[Case, dict[str, bool]]]) -> float:
    return sum(m["whole"] for _, m in rows) / len(rows) if rows else 0.0
