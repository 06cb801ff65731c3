"""Documents from the ledger (SQLite and PostgreSQL): the invoice PDF the relay renders
for `invoice.deliver`, a quote round trip through the verifier, the aging report and the
statement, and the `closeloop render` / `closeloop parse quote` commands."""
from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import facturx
import pdfplumber
from click.testing import CliRunner
from sqlalchemy import select

from closeloop.cli import main
from closeloop.documents import company_from, issued_quote, quote_pdf, verify_returned_quote
from flows.deals import Deal, Stage
from flows.documents import aging_document, customer_named, quote_document, statement_document
from flows.finance import record_payment
from flows.invoices import Invoice
from flows.steps import LineRequest, revise_quote
from parsers.signed_quote import ACCEPTED, REJECTED
from tests import documents_kit as kit
from tests.factories import deal_at, seed


def _invoice_number(ledger, deal_id: int) -> str:  # type: ignore[no-untyped-def]
    return ledger.read(lambda s: s.scalar(select(Invoice.number).where(Invoice.deal_id == deal_id)))


def test_an_issued_invoice_is_rendered_with_factur_x_into_the_documents_folder(services) -> None:  # type: ignore[no-untyped-def]
    ledger = services.ledger
    deal_id = deal_at(ledger, seed(ledger), Stage.INVOICED)
    services.relay.drain()
    number = _invoice_number(ledger, deal_id)
    pdf = (services.settings.documents_dir / f"{number}.pdf").read_bytes()
    invoice = ledger.read(lambda s: s.scalar(select(Invoice).where(Invoice.number == number)))
    _, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    gross = f"{Decimal(invoice.gross) / 100:.2f}"
    assert f"<ram:GrandTotalAmount>{gross}</ram:GrandTotalAmount>".encode() in xml
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        text = document.pages[0].extract_text()
    assert number in text and "Rechnung" not in text  # German has no catalog: English labels, German numbers
    assert f"{Decimal(invoice.gross) / 100:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".") in text
    # then its email (no SMTP configured here: kept in the sink), with the invoice attached, once
    [record] = [m for m in services.sink.read("email.send") if m["payload"]["template"] == "invoice"]
    assert [a["invoice"] for a in record["payload"]["attachments"]] == [number]
    services.relay.drain()
    assert len(services.sink.read("email.send")) == 1


def test_a_quote_from_the_ledger_signed_and_returned_is_accepted_and_an_old_version_is_not(services) -> None:  # type: ignore[no-untyped-def]
    ledger = services.ledger
    customer = seed(ledger)
    deal_id = deal_at(ledger, customer, Stage.QUOTED)
    number = ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
    company = company_from(services.settings)
    first = quote_pdf(ledger, company, number)
    signed_v1 = kit.sign_typed(first, 1, name="Ada Signer")
    verdict = verify_returned_quote(signed_v1, issued_quote(ledger.read(quote_document, number)))
    assert verdict.status == ACCEPTED, verdict.reasons

    ledger.run(revise_quote, deal_id, key="test:revise", lines=[LineRequest("SEAT", Decimal(12))], actor="U_REP")
    v1_now = issued_quote(ledger.read(quote_document, number, 1))
    verdict = verify_returned_quote(signed_v1, v1_now)
    assert verdict.status == REJECTED
    assert [r.text for r in verdict.reasons] == ["this is version 1; version 2 is the current one"]


def test_aging_and_statement_come_from_the_ledger(services, clock) -> None:  # type: ignore[no-untyped-def]
    ledger = services.ledger
    customer = seed(ledger)
    first = _invoice_number(ledger, deal_at(ledger, customer, Stage.INVOICED))
    clock.advance(timedelta(days=40))
    second = _invoice_number(ledger, deal_at(ledger, customer, Stage.INVOICED))
    gross = ledger.read(lambda s: s.scalar(select(Invoice.net + Invoice.tax).where(Invoice.number == first)))
    ledger.run(record_payment, invoice_number=first, amount=10_000, method="bank_transfer", reference="BANK-1",
               actor="U_FIN")
    clock.advance(timedelta(days=35))
    today = clock.now().date()

    report = ledger.read(aging_document, customer, today)
    assert [(r.number, r.bucket) for r in report.rows] == [(first, "31-60"), (second, "0-30")]
    assert report.rows[0].balance == gross - 10_000
    assert ("31-60", "EUR", gross - 10_000) in report.totals

    start = (clock.now() - timedelta(days=60)).date()
    statement = ledger.read(statement_document, customer, start, today)
    assert statement.opening == gross  # the first invoice was issued before the period
    assert [(e.kind, e.credit) for e in statement.entries] == [("invoice", 0), ("payment", 10_000)]
    assert statement.closing == 2 * gross - 10_000
    assert ledger.read(customer_named, "acme gmbh") == customer


def test_the_cli_renders_a_quote_and_verifies_it_returned(services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = services.ledger
    deal_id = deal_at(ledger, seed(ledger), Stage.SENT)
    number = ledger.read(lambda s: s.get(Deal, deal_id).quote.number)
    env = {"DATABASE_URL": services.settings.database_url, "CLOSELOOP_DOCUMENTS_DIR": str(tmp_path / "docs"),
           "CLOSELOOP_COMPANY_NAME": "Nordlicht Software GmbH"}
    runner = CliRunner()
    rendered = runner.invoke(main, ["render", "quote", number], env=env)
    assert rendered.exit_code == 0, rendered.output
    sent = (tmp_path / "docs" / f"{number}.pdf").read_bytes()
    assert b"Nordlicht Software GmbH" in sent or "Nordlicht" in pdfplumber.open(io.BytesIO(sent)).pages[0].extract_text()

    signed = tmp_path / "signed.pdf"
    signed.write_bytes(kit.sign_typed(sent, 1, name="Ada Signer"))
    result = runner.invoke(main, ["parse", "quote", str(signed), "--json"], env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert (answer["verdict"], answer["quote"], answer["signature"], answer["reasons"]) == \
        ("accepted", number, "typed", [])

    unsigned = runner.invoke(main, ["parse", "quote", str(tmp_path / "docs" / f"{number}.pdf"), "--json",
                                    "--quote", number], env=env)
    assert unsigned.exit_code == 3 and json.loads(unsigned.output)["reasons"][0]["code"] == "NOT_SIGNED"

    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"not a pdf at all")
    error = runner.invoke(main, ["parse", "quote", str(junk), "--json"], env=env)
    assert error.exit_code == 1
    refusal = json.loads(error.output)
    assert refusal["error"] == "PDF_NOT_A_PDF" and "PDF" in refusal["message"]

    missing = runner.invoke(main, ["render", "quote", "Q-1999-0001"], env=env)
    assert missing.exit_code == 1 and "Q-1999-0001" in missing.output


def test_parse_quote_compares_with_an_issued_json_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adapters.pdf_render.quote import render_quote
    document = kit.quote()
    pdf = tmp_path / "back.pdf"
    pdf.write_bytes(kit.sign_typed(render_quote(kit.with_total(document, 900_000), kit.COMPANY), 1))
    issued = tmp_path / "issued.json"
    issued.write_text(json.dumps({
        "number": document.number, "version": 2, "content_hash": kit.HASH, "currency": "EUR", "decimals": 2,
        "language": "en", "net": document.net, "gross": document.gross,
        "taxes": [[t.rate_bp, t.tax] for t in document.taxes], "signer_name": kit.SIGNER,
        "lines": [{"position": l.position, "description": l.description, "quantity": str(l.quantity),
                   "unit_amount": l.unit_amount, "net": l.net} for l in document.lines]}))
    result = CliRunner().invoke(main, ["parse", "quote", str(pdf), "--json", "--issued", str(issued)])
    assert result.exit_code == 3, result.output
    assert json.loads(result.output)["reasons"] == [
        {"code": "TOTAL_CHANGED", "text": "the total was changed from 2,767.50 EUR to 9,000.00 EUR", "page": None}]
    issued.write_text('{"number": "Q-1", "net": 12.5}')
    bad = CliRunner().invoke(main, ["parse", "quote", str(pdf), "--json", "--issued", str(issued)])
    assert bad.exit_code == 1 and json.loads(bad.output)["error"] == "ISSUED_INVALID"
