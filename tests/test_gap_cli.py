"""`closeloop gaps` and `closeloop usage import` as a user runs them (real processes,
real files), and the usage CSV reader on its own."""
from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from click.testing import CliRunner

from closeloop.cli import main
from flows.gaps import RULES
from parsers.usage_csv import UsageCsvError, parse_usage_csv
from tests.test_cli import closeloop as closeloop_process

CATALOG = Path(__file__).parents[1] / "closeloop" / "demo" / "catalog.toml"


class Ran:
    def __init__(self, result) -> None:
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def closeloop(*args: str, cwd: Path, database: Path) -> Ran:
    """In-process (fast); one test below runs the real `closeloop` executable."""
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    env = {"DATABASE_URL": f"sqlite:///{database}", "CLOSELOOP_OUTBOX_DIR": str(cwd / "outbox")}
    return Ran(runner.invoke(main, list(args), env=env, catch_exceptions=False))


def test_usage_import_then_gaps_as_table_json_and_csv(tmp_path):
    db = tmp_path / "gaps.db"
    assert closeloop("db", "upgrade", cwd=tmp_path, database=db).returncode == 0
    assert closeloop("catalog", "load", str(CATALOG), cwd=tmp_path, database=db).returncode == 0
    bill = tmp_path / "blob.csv"
    bill.write_text("Period,Quantity,Amount,Currency\n2026-11,1250,150.00,EUR\n2026-12,900.5,108.06,EUR\n")
    imported = closeloop("usage", "import", str(bill), "--vendor", "Blob Storage Inc", "--sku", "STORAGE-GB",
                         cwd=tmp_path, database=db)
    assert imported.returncode == 0, imported.stderr
    assert "2 periods added" in imported.stdout
    again = closeloop("usage", "import", str(bill), "--vendor", "Blob Storage Inc", "--sku", "STORAGE-GB",
                      cwd=tmp_path, database=db)
    assert "0 periods added, 0 updated, 2 unchanged" in again.stdout

    listed = json.loads(closeloop_process("gaps", "--json", cwd=tmp_path, database=db).stdout)
    assert [(g["rule"], g["about"], g["amount"], g["currency"]) for g in listed] == [
        ("usage-unbilled", "Blob Storage Inc", "150.00", "EUR"), ("usage-unbilled", "Blob Storage Inc", "108.06", "EUR")]
    assert listed[0]["detail"] == "vendor billed 1250 gb, customers charged 0 gb"
    rows = list(csv.DictReader(io.StringIO(closeloop("gaps", "--csv", "--no-check", cwd=tmp_path, database=db).stdout)))
    assert [r["gap"] for r in rows] == ["usage-unbilled:1", "usage-unbilled:2"]
    table = closeloop("gaps", "--rule", "usage-unbilled", cwd=tmp_path, database=db)
    assert table.stdout.splitlines()[0].split()[:3] == ["GAP", "RULE", "ABOUT"] and "150.00 EUR" in table.stdout
    assert f"checked {len(RULES)} rules: 2 open, 0 new, 0 resolved" in table.stderr
    assert "no open gaps" in closeloop("gaps", "--owner", "admin", cwd=tmp_path, database=db).stdout
    assert "quote-unsigned" in closeloop("gaps", "rules", cwd=tmp_path, database=db).stdout


def test_a_bad_bill_imports_nothing_and_says_why(tmp_path):
    db = tmp_path / "gaps.db"
    closeloop("db", "upgrade", cwd=tmp_path, database=db)
    closeloop("catalog", "load", str(CATALOG), cwd=tmp_path, database=db)
    bad = tmp_path / "bad.csv"
    bad.write_text("period,quantity\n2026-13,10\n2026-11,1e3\n")
    result = closeloop("usage", "import", str(bad), "--vendor", "V", "--sku", "STORAGE-GB", cwd=tmp_path, database=db)
    assert result.returncode == 1
    assert "line 2: period '2026-13' has no month 13" in result.stderr
    assert "line 3: quantity '1e3' must be a plain decimal" in result.stderr
    seats = tmp_path / "ok.csv"
    seats.write_text("period,quantity\n2026-11,10\n")
    wrong_sku = closeloop("usage", "import", str(seats), "--vendor", "V", "--sku", "PRO-SEAT", cwd=tmp_path, database=db)
    assert "PRO-SEAT is a recurring SKU; vendor usage is compared with usage SKUs only" in wrong_sku.stderr
    pdf = tmp_path / "bill.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    result = closeloop("usage", "import", str(pdf), "--vendor", "V", "--sku", "STORAGE-GB", "--period", "2026-11",
                       cwd=tmp_path, database=db)
    assert result.returncode == 1
    assert ("not available in this build" in result.stderr or "could not read this PDF" in result.stderr
            or "carry no quantities" in result.stderr)


def test_the_usage_csv_reader():
    rows = parse_usage_csv("\ufeffperiod_start,period_end,quantity\n2026-03-15,2026-04-15,12.5\n")
    assert [(r.period_start, r.period_end, r.quantity) for r in rows] == [
        (date(2026, 3, 15), date(2026, 4, 15), Decimal("12.5"))]
    assert parse_usage_csv("period,quantity\n2026-12,1\n")[0].period_end == date(2027, 1, 1)
    for text, problem in [("", "empty"), ("when,qty\n", "no 'quantity' column"),
                          ("period,quantity\n2026-11,-1\n", "must be a number >= 0"),
                          ("period,quantity,amount\n2026-11,1,2.00\n", "an amount needs a currency"),
                          ("period,quantity\n2026-11,1\n2026-11,2\n", "the same period appears twice")]:
        with pytest.raises(UsageCsvError, match=problem):
            parse_usage_csv(text)
