"""`closeloop parse quote FILE.pdf`: is a returned quote the one we sent, unchanged and
signed? Prints the verdict and every reason; `--json` prints the stable shape:

    {"verdict": "accepted" | "rejected" | "needs_review", "quote": "Q-2026-0042", "version": 2,
     "signature": "pades" | "docusign" | "typed" | "image" | "drawing" | "field" | "ink" | null,
     "signer": "Anna Kowalska" | null,
     "reasons": [{"code": "TOTAL_CHANGED", "text": "the total was changed from …", "page": null}, …],
     "notes": [{"code": "SIGNATURE_NOT_TRUSTED", "text": "…", "page": null}, …]}

What was issued comes from the database (the quote the PDF names, or `--quote`), or from
`--issued ISSUED.json` (the IssuedQuote fields; amounts in minor units, quantities as
strings). Exit status: 0 accepted, 3 rejected, 4 needs review; a typed error prints
{"error": CODE, "message": …} and exits 1."""
from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

import click

from parsers.pdf_errors import PdfError
from parsers.signed_quote import ACCEPTED, REJECTED, IssuedLine, IssuedQuote, Verdict

EXIT = {ACCEPTED: 0, REJECTED: 3}
NEEDS_REVIEW_EXIT = 4


@click.command("quote")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
@click.option("--issued", "issued_path", type=click.Path(dir_okay=False, path_type=Path),
              help="what was issued, as JSON (instead of the database)")
@click.option("--quote", "number", help="the quote this should be (default: the one the PDF names)")
def parse_quote_command(path: Path, as_json: bool, issued_path: Path | None, number: str | None) -> None:
    """Verify a returned, signed quote PDF."""
    from adapters.pdf_sandbox import run
    try:
        pdf = path.read_bytes()
    except OSError as error:
        _fail(as_json, "FILE_UNREADABLE", f"cannot read {path}: {error.strerror}")
    try:
        issued = _issued_from_file(issued_path) if issued_path else _issued_from_database(pdf, number)
        verdict: Verdict = run("parsers.signed_quote:verify", pdf, issued)
    except PdfError as error:
        _fail(as_json, error.code.value, error.message)
    except _Refused as error:
        _fail(as_json, error.code, str(error))
    if as_json:
        click.echo(json.dumps(verdict.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{verdict.status.replace('_', ' ')}: {verdict.quote or '?'} v{verdict.version or '?'}"
                   + (f", signed ({verdict.signature}) by {verdict.signer}" if verdict.signer
                      else f", signed ({verdict.signature})" if verdict.signature else ""))
        for reason in verdict.reasons:
            click.echo(f"  ✗ {reason.text}  [{reason.code}]")
        for note in verdict.notes:
            click.echo(f"  · {note.text}  [{note.code}]")
    sys.exit(EXIT.get(verdict.status, NEEDS_REVIEW_EXIT))


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _fail(as_json: bool, code: str, message: str) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": code, "message": message}, ensure_ascii=False))
    else:
        click.echo(f"error: {message} [{code}]", err=True)
    sys.exit(1)


def _issued_from_file(path: Path) -> IssuedQuote:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        lines = tuple(IssuedLine(int(l["position"]), str(l["description"]), Decimal(str(l["quantity"])),
                                 _minor(l["unit_amount"]), _minor(l["net"])) for l in data["lines"])
        return IssuedQuote(
            number=str(data["number"]), version=int(data["version"]), content_hash=str(data["content_hash"]),
            currency=str(data["currency"]), decimals=int(data.get("decimals", 2)),
            language=str(data.get("language", "en")), lines=lines, net=_minor(data["net"]),
            taxes=tuple((int(rate), _minor(tax)) for rate, tax in data.get("taxes", [])), gross=_minor(data["gross"]),
            signer_name=data.get("signer_name"), signer_email=data.get("signer_email"),
            current_version=int(data["current_version"]) if data.get("current_version") is not None else None)
    except OSError as error:
        raise _Refused("ISSUED_UNREADABLE", f"cannot read {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, InvalidOperation) as error:
        raise _Refused("ISSUED_INVALID", f"{path} is not an issued quote: {error!r}") from None


def _minor(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"amounts are integer minor units, not {value!r}")
    return value


def _issued_from_database(pdf: bytes, number: str | None) -> IssuedQuote:
    from adapters.pdf_sandbox import run
    from closeloop.bootstrap import build
    from closeloop.config import load_settings
    from closeloop.documents import issued_quote
    from flows.documents import quote_document
    from flows.errors import NotFound

    identity = run("parsers.signed_quote:identify", pdf)
    wanted = number or identity.number
    if wanted is None:
        raise _Refused("NOT_OUR_QUOTE", "this PDF names no quote of ours; say which with --quote Q-…")
    try:
        services = build(load_settings())
    except ValueError as error:
        raise _Refused("CONFIGURATION", str(error)) from None
    try:
        version = identity.version if identity.number == wanted else None
        try:
            document = services.ledger.read(quote_document, wanted, version)
        except NotFound:
            document = services.ledger.read(quote_document, wanted)  # a version we never issued: compare with ours
        return issued_quote(document)
    except NotFound as error:
        raise _Refused("QUOTE_NOT_FOUND", str(error)) from None
    except Exception as error:  # the database is missing or unreachable
        from sqlalchemy.exc import DBAPIError
        if isinstance(error, DBAPIError):
            raise _Refused("DATABASE", str(error.orig or error).strip().splitlines()[0]) from None
        raise
    finally:
        services.close()
