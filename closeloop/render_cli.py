"""`closeloop render …`: write a customer document as PDF (what the customer receives)."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import click


def _services():  # type: ignore[no-untyped-def]
    from closeloop.bootstrap import build
    from closeloop.config import load_settings
    try:
        return build(load_settings())
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None


def _write(pdf: bytes, out: Path | None, default: Path) -> None:
    target = out or default
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pdf)
    click.echo(f"{target} ({len(pdf):,} bytes)")


@click.group("render")
def render_group() -> None:
    """Render quotes, invoices, aging reports and statements as PDF."""


_OUT = click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                    help="the PDF to write (default: CLOSELOOP_DOCUMENTS_DIR/<name>.pdf)")


@render_group.command("quote")
@click.argument("number")
@click.option("--version", type=int, help="a version other than the current one")
@_OUT
def render_quote_command(number: str, version: int | None, out: Path | None) -> None:
    """A quote (its current version), in the customer's language."""
    from closeloop.documents import company_from, quote_pdf
    services = _services()
    try:
        pdf = quote_pdf(services.ledger, company_from(services.settings), number, version)
        name = f"{number}-v{version}.pdf" if version else f"{number}.pdf"
        _write(pdf, out, services.settings.documents_dir / name)
    finally:
        services.close()


@render_group.command("invoice")
@click.argument("number")
@_OUT
def render_invoice_command(number: str, out: Path | None) -> None:
    """An issued invoice with its Factur-X XML embedded."""
    from closeloop.documents import company_from, invoice_pdf
    services = _services()
    try:
        _write(invoice_pdf(services.ledger, company_from(services.settings), number), out,
               services.settings.documents_dir / f"{number}.pdf")
    finally:
        services.close()


@render_group.command("aging")
@click.argument("customer")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="the day (default: today)")
@_OUT
def render_aging_command(customer: str, as_of, out: Path | None) -> None:  # type: ignore[no-untyped-def]
    """A customer's open invoices by days past due (CUSTOMER: id or exact name)."""
    from closeloop.documents import aging_pdf, company_from
    from flows.documents import customer_named
    services = _services()
    try:
        customer_id = services.ledger.read(customer_named, customer)
        today = as_of.date() if as_of else services.ledger.clock.now().date()
        _write(aging_pdf(services.ledger, company_from(services.settings), customer_id, today), out,
               services.settings.documents_dir / f"aging-{customer_id}-{today.isoformat()}.pdf")
    finally:
        services.close()


@render_group.command("statement")
@click.argument("customer")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="inclusive (default: today)")
@_OUT
def render_statement_command(customer: str, start, end, out: Path | None) -> None:  # type: ignore[no-untyped-def]
    """A customer's statement of account: opening balance, invoices, payments, closing."""
    from closeloop.documents import company_from, statement_pdf
    from flows.documents import customer_named
    services = _services()
    try:
        customer_id = services.ledger.read(customer_named, customer)
        last: date = end.date() if end else services.ledger.clock.now().date()
        _write(statement_pdf(services.ledger, company_from(services.settings), customer_id, start.date(), last), out,
               services.settings.documents_dir / f"statement-{customer_id}-{last.isoformat()}.pdf")
    finally:
        services.close()
