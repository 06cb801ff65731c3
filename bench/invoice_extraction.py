"""Invoice extraction, in one run on the same files: closeloop against invoice2data (with
its own 200+ issuer templates) for accuracy, and against the bare text extractors
(pdftotext, pdfplumber extract_text) as the floor for speed.

    .venv/bin/pip install -e '.[bench]'     # invoice2data; pdftotext comes from poppler-utils
    .venv/bin/python -m bench.invoice_extraction ../shared/corpus/invoices [--limit N]

Corpora: invoice2data/ (that project's own test set, read as it is) and facturx/ with
the XML stripped (so both readers see only the page; the truth is the XML's). Times are
medians per document, in this process, interleaved per file:
  * closeloop parser: parsers.invoice_pdf.extract_invoice in-process (the work itself);
  * closeloop sandboxed: the same through adapters.pdf_sandbox.run (fork, limits, checks);
  * pdfplumber: extract_text() of every page; pdftotext: the poppler binary, -layout;
  * invoice2data: extract_data(path, templates) (pdftotext + template matching).
Ratio reported: closeloop per-document time / bare pdfplumber per-document time."""
from __future__ import annotations

import argparse
import io
import logging
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import pdfplumber

from adapters.pdf_sandbox import Limits, run
from bench.invoice_truth import WHOLE, cases, score, strip_xml, table, whole_rate
from parsers.invoice_pdf import extract_invoice


def timed(function):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        result = function()
    except Exception as error:  # noqa: BLE001 - a reader failing on a file is a result here
        result = error
    return result, time.perf_counter() - started


def plumber_text(pdf: bytes) -> str:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return "\n".join(page.extract_text() or "" for page in document.pages)


def pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True).stdout.decode()


def invoice2data_shape(found: object) -> dict | None:
    """invoice2data's output in closeloop's JSON shape (the fields both have)."""
    if not isinstance(found, dict):
        return None

    def iso(value: object) -> object:
        return value.date().isoformat() if isinstance(value, datetime) else (
            value.isoformat() if isinstance(value, date) else value)
    return {"number": found.get("invoice_number"), "issue_date": iso(found.get("date")),
            "due_date": iso(found.get("date_due")), "currency": found.get("currency"),
            "net": found.get("amount_untaxed"), "tax": found.get("amount_tax"), "total": found.get("amount"),
            "seller": found.get("issuer"), "buyer": None, "lines": found.get("lines") or []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="at most this many Factur-X files (0: all)")
    args = parser.parse_args()
    logging.getLogger("invoice2data").setLevel(logging.CRITICAL)   # it logs every regex that misses
    try:
        from invoice2data import extract_data
        from invoice2data.extract.loader import read_templates
        templates = read_templates()
    except ImportError:
        extract_data, templates = None, []
        print("invoice2data is not installed (pip install -e '.[bench]'): its columns stay empty")
    has_pdftotext = shutil.which("pdftotext") is not None
    every = cases(args.corpus)
    facturx = [c for c in every if c.corpus == "facturx"]
    chosen = [c for c in every if c.corpus == "invoice2data"] + (facturx[:args.limit] if args.limit else facturx)
    times: dict[str, dict[str, list[float]]] = {}
    rows: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for case in chosen:
            pdf = case.pdf.read_bytes()
            if case.corpus == "facturx":
                pdf = strip_xml(pdf)
            path = Path(scratch) / f"{case.name}.pdf"
            path.write_bytes(pdf)
            corpus_times = times.setdefault(case.corpus, {})
            corpus_rows = rows.setdefault(case.corpus, {})
            got, spent = timed(lambda: extract_invoice(pdf))  # noqa: B023
            corpus_times.setdefault("closeloop parser", []).append(spent)
            corpus_rows.setdefault("closeloop", []).append((case, score(case, _shape(got))))
            _, spent = timed(lambda: run("parsers.invoice_pdf:extract_invoice", pdf, limits=Limits()))  # noqa: B023
            corpus_times.setdefault("closeloop sandboxed", []).append(spent)
            _, spent = timed(lambda: plumber_text(pdf))  # noqa: B023
            corpus_times.setdefault("pdfplumber extract_text", []).append(spent)
            if has_pdftotext:
                _, spent = timed(lambda: pdftotext(path))  # noqa: B023
                corpus_times.setdefault("pdftotext", []).append(spent)
            if extract_data is not None:
                found, spent = timed(lambda: extract_data(str(path), templates=templates))  # noqa: B023
                corpus_times.setdefault("invoice2data", []).append(spent)
                corpus_rows.setdefault("invoice2data", []).append((case, score(case, invoice2data_shape(found))))
    print(f"whole invoice = {', '.join(WHOLE)} all exact (fields the truth has)\n")
    for corpus in rows:
        label = "invoice2data/ (as published)" if corpus == "invoice2data" else "facturx/ (XML stripped: layout only)"
        print(f"== {label}")
        for reader, marks in rows[corpus].items():
            print(table(marks, f"{reader}"))
        medians = {name: statistics.median(values) for name, values in times[corpus].items()}
        for name, median in medians.items():
            print(f"  {name:24} {1000 * median:7.1f} ms/doc  {1 / median:7.1f} docs/s")
        base = medians["pdfplumber extract_text"]
        print(f"  ratio closeloop parser / pdfplumber extract_text:    {medians['closeloop parser'] / base:.2f}x "
              f"(target <= 2x)")
        print(f"  ratio closeloop sandboxed / pdfplumber extract_text: {medians['closeloop sandboxed'] / base:.2f}x")
        if "pdftotext" in medians:
            print(f"  ratio pdfplumber / pdftotext:                        {base / medians['pdftotext']:.2f}x")
        if "invoice2data" in rows[corpus]:
            ours, theirs = whole_rate(rows[corpus]["closeloop"]), whole_rate(rows[corpus]["invoice2data"])
            print(f"  whole-invoice accuracy: closeloop {100 * ours:.1f}% vs invoice2data {100 * theirs:.1f}%")
        print()


def _shape(got: object) -> dict | None:
    return got.as_json() if hasattr(got, "as_json") else None


if __name__ == "__main__":
    main()
