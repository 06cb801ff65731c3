"""`closeloop parse …`: run the pure readers of parsers/ on a file and print what they
read."""
from __future__ import annotations

import click

from closeloop.parse_invoice_cli import invoice_command
from closeloop.parse_quote_cli import parse_quote_command


@click.group("parse")
def parse() -> None:
    """Read a message or document the way closeloop does, and print what it understood."""


parse.add_command(invoice_command)
parse.add_command(parse_quote_command)
