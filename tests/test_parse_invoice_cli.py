"""`closeloop parse invoice FILE.pdf --json` as a real process: the documented shape,
and a typed error as {"error": CODE, "message": …} with a non-zero exit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from adapters.pdf_sandbox import Limits
from closeloop.config import load_settings
from closeloop.pdf_limits import pdf_limits
from tests import pdf_fixtures
from tests.invoice_fixtures import invoice

CLOSELOOP = str(Path(sys.executable).with_name("closeloop"))
KEYS = {"number", "issue_date", "due_date", "seller", "buyer", "seller_vat_id", "buyer_vat_id", "currency", "net",
        "tax", "total", "iban", "lines", "source", "confidence"}


def parse(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLOSELOOP, "parse", "invoice", str(path), "--json"], capture_output=True, text=True,
                          timeout=120, cwd=path.parent)


def test_an_invoice_prints_the_documented_json(tmp_path):
    pdf, expected = invoice("fr", "columns")
    (tmp_path / "facture.pdf").write_bytes(pdf)
    done = parse(tmp_path / "facture.pdf")
    assert done.returncode == 0, done.stderr
    shape = json.loads(done.stdout)
    assert set(shape) == KEYS
    assert (shape["number"], shape["issue_date"], shape["due_date"]) == (expected.number, "2026-03-09", "2026-04-08")
    assert (shape["currency"], shape["net"], shape["tax"], shape["total"]) == (
        "EUR", str(expected.net), str(expected.tax), str(expected.total))
    assert shape["source"] == "layout" and set(shape["confidence"]) == KEYS - {"lines", "source", "confidence"}
    assert shape["lines"][1] == {"description": "Annual licence renewal", "quantity": "1", "unit_price": "1250.00",
                                 "amount": "1250.00"}


def test_a_typed_error_prints_its_code_and_exits_non_zero(tmp_path):
    (tmp_path / "evil.pdf").write_bytes(pdf_fixtures.javascript_open_action())
    done = parse(tmp_path / "evil.pdf")
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["error"] == "PDF_ACTIVE_CONTENT" and "JavaScript" in error["message"]


def test_the_limits_come_from_configuration():
    limits = pdf_limits(load_settings(CLOSELOOP_PDF_MAX_BYTES=2000, CLOSELOOP_PDF_TIMEOUT_SECONDS=3,
                                      CLOSELOOP_PDF_MEMORY_MB=256))
    assert (limits.max_file_bytes, limits.seconds, limits.memory_bytes) == (2000, 3.0, 256 << 20)
    assert pdf_limits(load_settings()) == Limits()     # the defaults are the sandbox's: 20 s, 1 GiB, 50 MB
