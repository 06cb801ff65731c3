"""`closeloop parse …`: run the pure readers of parsers/ on a file and print what they
read: a customer's email (`reply`), an invoice PDF (`invoice`), a returned quote (`quote`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from closeloop.parse_invoice_cli import invoice_command
from closeloop.parse_quote_cli import parse_quote_command
from parsers.email_understanding import UnreadableMessage, understand_message


@click.group("parse")
def parse() -> None:
    """Read a message or document the way closeloop does, and print what it understood."""


@parse.command("reply")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON (the README's shape)")
def parse_reply(file: Path, as_json: bool) -> None:
    """A customer's email (.eml, or plain text): new text, signature, language, intent,
    auto-reply, bounce."""
    try:
        result = understand_message(file.read_bytes())
    except OSError as error:
        _fail("unreadable", f"cannot read {file}: {error.strerror or error}", as_json)
    except UnreadableMessage as error:
        _fail(error.code, f"{file}: {error}", as_json)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for key in ("language", "intent", "auto_reply"):
        click.echo(f"{key}: {result[key]}")
    if result["bounce"]:
        click.echo("bounce: " + ", ".join(f"{k}={v}" for k, v in result["bounce"].items()))
    click.echo("--- body\n" + result["body"])
    if result["signature"]:
        click.echo("--- signature\n" + result["signature"])


def _fail(code: str, message: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": code, "message": message}, ensure_ascii=False))
    else:
        click.echo(f"error ({code}): {message}", err=True)
    sys.exit(1)


parse.add_command(invoice_command)
parse.add_command(parse_quote_command)
