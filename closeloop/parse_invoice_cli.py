"""`closeloop parse invoice FILE.pdf --json`: read an invoice PDF (embedded Factur-X/
ZUGFeRD/XRechnung/UBL XML first, else the page layout) through the PDF sandbox.

The JSON shape is documented in README ("Reading invoice PDFs") and stable: number,
issue_date, due_date (ISO 8601), seller, buyer, seller_vat_id, buyer_vat_id, currency
(ISO 4217), net, tax, total (decimal strings), iban, lines, source, confidence.
A typed PDF error prints {"error": CODE, "message": …} and exits 2."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from adapters.pdf_sandbox import run
from closeloop.config import load_settings
from closeloop.pdf_limits import pdf_limits
from parsers.pdf_errors import PdfError

EXIT_PDF_ERROR = 2


@click.command("invoice")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the documented JSON shape")
def invoice_command(file: Path, as_json: bool) -> None:
    """Extract number, dates, parties, amounts and lines from an invoice PDF."""
    try:
        settings = load_settings()
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None
    try:
        invoice = run("parsers.invoice_pdf:extract_invoice", file.read_bytes(), limits=pdf_limits(settings))
    except PdfError as error:
        click.echo(json.dumps(error.as_json(), ensure_ascii=False) if as_json else f"could not read this PDF: {error}",
                   err=not as_json)
        sys.exit(EXIT_PDF_ERROR)
    shape = invoice.as_json()
    if as_json:
        click.echo(json.dumps(shape, ensure_ascii=False, indent=2))
        return
    for key in ("number", "issue_date", "due_date", "seller", "buyer", "currency", "net", "tax", "total", "iban"):
        click.echo(f"{key:11} {shape[key] if shape[key] is not None else '-':40} "
                   f"(confidence {shape['confidence'].get(key, 0):.2f})")
    click.echo(f"{'lines':11} {len(shape['lines'])}   source: {shape['source']}")
