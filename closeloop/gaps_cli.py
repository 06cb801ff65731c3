"""`closeloop gaps` (the open gaps as a table, --json or --csv; rules; snooze; the
digest) and `closeloop usage import` (a vendor's usage bill). Registered from cli.py."""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from adapters.gap_files import gap_dicts, gaps_csv
from closeloop.bootstrap import Services, build
from closeloop.config import load_settings
from closeloop.gaps_wiring import digest_poster, digest_tick, gap_policy
from flows import finance_views as views
from flows.errors import InvalidInput
from flows.gap_digest import digest_data
from flows.gap_states import evaluate_gaps, list_gaps, snooze_gap
from flows.gaps import RULES, RULES_BY_NAME
from flows.money import exponent, round_half_up
from flows.usage import UsageLine, record_vendor_usage
from parsers.usage_csv import UsageCsvError, parse_usage_csv


def _services() -> Services:
    try:
        return build(load_settings())
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None


def register(main: click.Group) -> None:
    main.add_command(gaps)
    main.add_command(usage)


@click.group(invoke_without_command=True)
@click.option("--rule", type=click.Choice(list(RULES_BY_NAME)), help="only this rule's gaps")
@click.option("--customer", help="only this customer's (name, exactly or a unique part of it)")
@click.option("--owner", help="only this owner's: a Slack user id, finance or admin")
@click.option("--snoozed", is_flag=True, help="the snoozed gaps instead of the open ones")
@click.option("--json", "as_json", is_flag=True, help="a JSON array")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row")
@click.option("--no-check", is_flag=True, help="list what the last check found, without checking again")
@click.pass_context
def gaps(ctx: click.Context, rule: str | None, customer: str | None, owner: str | None, snoozed: bool,
         as_json: bool, as_csv: bool, no_check: bool) -> None:
    """Completeness gaps: every step that should have happened and did not."""
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    services = _services()
    ledger, now = services.ledger, services.ledger.clock.now()
    if not no_check:
        found = ledger.run(evaluate_gaps, gap_policy(services.settings))
        click.echo(f"checked {found.queries} rules: {found.open} open, {found.opened} new, "
                   f"{found.resolved} resolved", err=True)
    customer_id = _customer(services, customer) if customer else None
    page = ledger.read(list_gaps, now, owners=[owner] if owner else None, rule=rule, customer_id=customer_id,
                       snoozed=snoozed, limit=None)
    if as_csv:
        sys.stdout.write(gaps_csv(page.items))
    elif as_json:
        click.echo(json.dumps(gap_dicts(page.items), indent=2, ensure_ascii=False))
    else:
        _table(page.items)


def _table(items: Any) -> None:
    if not items:
        click.echo("no open gaps")
        return
    rows = [("GAP", "RULE", "ABOUT", "CUSTOMER", "AT STAKE", "AGE", "OWNER", "DETAIL")]
    for g in items:
        rows.append((str(g.id), g.rule, g.label, g.customer or "", str(g.amount) if g.amount else "",
                     f"{g.age_days}d", g.owner, g.detail or ""))
    widths = [min(32, max(len(r[i]) for r in rows)) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _customer(services: Services, name: str) -> int:
    known = services.ledger.read(views.customers)
    exact = [c for c in known if c.name.lower() == name.lower()]
    partial = exact or [c for c in known if name.lower() in c.name.lower()]
    if len(partial) != 1:
        shown = ", ".join(c.name for c in partial[:5]) or "none"
        raise click.ClickException(f"'{name}' names {len(partial)} customers ({shown}); be more precise")
    return partial[0].id


@gaps.command("rules")
def gaps_rules() -> None:
    """The rules, their owners and thresholds (CLOSELOOP_GAP_THRESHOLDS overrides them)."""
    policy = gap_policy(load_settings())
    for rule in RULES:
        threshold = policy.threshold(rule)
        click.echo(f"{rule.name:<26} {rule.owner:<8} N={threshold} {rule.unit:<9} {rule.explain(threshold)}")


@gaps.command("snooze")
@click.argument("gap_id", type=int)
@click.option("--until", "until", required=True, type=click.DateTime(["%Y-%m-%d"]), help="comes back on this day")
@click.option("--reason", required=True, help="why, for the timeline")
@click.option("--by", "actor", default="cli", show_default=True, help="who snoozes it")
def gaps_snooze(gap_id: int, until: Any, reason: str, actor: str) -> None:
    """Hide a gap until a day, for a reason (audited on the timeline)."""
    services = _services()
    done = services.ledger.run(snooze_gap, gap_id, until=until.date(), reason=reason, actor=actor)
    click.echo(f"gap {gap_id} snoozed until {until:%Y-%m-%d}" if done.value == "acted"
               else f"gap {gap_id} was already snoozed so; nothing changed")


@gaps.command("digest")
@click.option("--preview", type=click.Path(file_okay=False, path_type=Path),
              help="write today's digest (blocks JSON, chart PNG, CSV) to this folder instead; claims nothing")
def gaps_digest(preview: Path | None) -> None:
    """One tick of the digest schedule: queue today's digest if it is due and not yet queued."""
    services = _services()
    if preview is None:
        day = digest_tick(services)
        click.echo(f"digest for {day} queued (the relay posts it)" if day else "no digest due (not yet time, or "
                   "today's was queued already)")
        return
    written = preview_digest(services, preview)
    click.echo("wrote " + ", ".join(str(p) for p in written))


def preview_digest(services: Services, folder: Path) -> list[Path]:
    policy, now = gap_policy(services.settings), services.ledger.clock.now()
    services.ledger.run(evaluate_gaps, policy)
    digest = services.ledger.read(digest_data, policy.today(now), now - timedelta(days=1), now, policy)
    poster = digest_poster(services, folder, slack=False)  # with the aging report PDF
    return poster.write(poster.rendered(digest))


@click.group()
def usage() -> None:
    """Vendors' usage bills, compared with the usage charged to customers."""


@usage.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vendor", required=True, help="who billed us, e.g. 'Blob Storage Inc'")
@click.option("--sku", "sku", required=True, help="the usage SKU we resell it as, e.g. STORAGE-GB")
@click.option("--period", help="YYYY-MM the bill covers (for a PDF; a CSV says it per row)")
def usage_import(path: Path, vendor: str, sku: str, period: str | None) -> None:
    """Import a usage bill: a CSV (period, quantity[, amount, currency]) or the vendor's invoice PDF."""
    data = path.read_bytes()
    if data[:5] == b"%PDF-":
        lines = _pdf_lines(data, period)
    else:
        try:
            rows = parse_usage_csv(data.decode("utf-8"))
        except (UsageCsvError, UnicodeDecodeError) as error:
            problems = getattr(error, "problems", [str(error)])
            raise click.ClickException(f"{path}: nothing imported:\n"
                                       + "\n".join(f"  - {p}" for p in problems)) from None
        lines = [UsageLine(r.period_start, r.period_end, r.quantity, _minor(r.amount, r.currency), r.currency)
                 for r in rows]
    services = _services()
    counts = services.ledger.run(record_vendor_usage, vendor=vendor, sku_code=sku, lines=lines,
                                 source=f"{'pdf' if data[:5] == b'%PDF-' else 'csv'}:{path.name}", actor="cli")
    click.echo(f"{path}: {counts['added']} periods added, {counts['updated']} updated, "
               f"{counts['unchanged']} unchanged; `closeloop gaps --rule usage-unbilled` compares them")


def _minor(amount: Decimal | None, currency: str | None) -> int | None:
    if amount is None or currency is None:
        return None
    try:
        return round_half_up(amount.scaleb(exponent(currency)))
    except InvalidInput as error:
        raise click.ClickException(str(error)) from None


def _pdf_lines(data: bytes, period: str | None) -> list[UsageLine]:
    """The vendor's invoice PDF through the invoice extractor (in the PDF sandbox)."""
    try:
        import parsers.invoice_pdf  # noqa: F401 — the documents issue's extractor
    except ImportError:
        raise click.ClickException(
            "reading a vendor's invoice PDF needs the invoice extractor (parsers/invoice_pdf.py, from the "
            "documents issue), which is not available in this build; import the bill as CSV instead") from None
    if not period:
        raise click.ClickException("say which month the PDF bills with --period YYYY-MM")
    rows = parse_usage_csv(f"period,quantity\n{period},0\n")  # validates the period the same way
    from adapters.pdf_sandbox import run
    from parsers.pdf_errors import PdfError
    try:
        invoice = run("parsers.invoice_pdf:extract_invoice", data)
    except PdfError as error:
        raise click.ClickException(f"could not read this PDF: {error}") from None
    quantities = [line.quantity for line in getattr(invoice, "lines", []) if getattr(line, "quantity", None)]
    if not quantities:
        raise click.ClickException("the PDF's invoice lines carry no quantities; import the bill as CSV instead")
    currency = getattr(invoice, "currency", None)
    total = getattr(invoice, "total", None)
    return [UsageLine(rows[0].period_start, rows[0].period_end, sum(quantities, Decimal(0)),
                      _minor(total, currency), currency)]

