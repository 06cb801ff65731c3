"""How long does verifying a returned, signed quote take, against merely reading it?

Renders a 3-page quote (adapters/pdf_render), signs it the way customers do (initials
on pages 1-2, a signature image, typed name and date on page 3), then times, interleaved
in one process on the same bytes:

  * closeloop's verification: parsers.signed_quote.verify (identify, compare every row,
    find the marks) — the figure held against the issue's target (< 300 ms);
  * the same through adapters.pdf_sandbox.run (the worker process, once it lands);
  * the same quote also signed digitally (PAdES, self-signed), validated by pyHanko;
  * the baseline: bare pdfplumber, open + extract_text of every page.

    .venv/bin/python -m bench.quote_verify [--runs 30]

Not a test: it asserts nothing about speed; it exits non-zero only if a verdict is wrong."""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

import pdfplumber

from adapters.pdf_render.layout import Company
from adapters.pdf_render.quote import render_quote
from adapters.pdf_render.stamp import Mark, stamp
from adapters.pdf_sandbox import run
from closeloop.documents import issued_quote
from flows.documents import DocumentLine, Party, QuoteDocument
from flows.money import document_totals
from parsers import quote_layout as L
from parsers.signed_quote import ACCEPTED, identify, verify

TARGET_MS = 300.0


def three_page_quote() -> QuoteDocument:
    lines = tuple(DocumentLine(n, f"Consulting day {n}: architecture review", Decimal(2), 95000, 2300, 190000)
                  for n in range(1, 61))
    totals = document_totals("EUR", ((l.net, l.tax_rate_bp) for l in lines))
    return QuoteDocument("Q-2026-0042", 1, 1, "5e" * 32, "EUR", "pl", Party("Kowalski Logistics", "PL", None),
                         Party("Anna Kowalska", "PL", None, "Anna Kowalska", "anna@kowalski.example"), lines,
                         totals.taxes, totals.net, totals.tax, 0, date(2026, 3, 2), date(2026, 4, 1), 30)


def pades(pdf: bytes) -> bytes:
    from asn1crypto import keys, x509
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Anna Kowalska")])
    now = datetime.now(timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=9))
            .sign(key, hashes.SHA256()))
    certificate = x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer = signers.SimpleSigner(
        signing_cert=certificate, cert_registry=SimpleCertificateStore.from_certs([certificate]),
        signing_key=keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    box = L.SIGNATURE
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), signers.PdfSignatureMetadata(field_name="Sig"),
                     signer=signer, output=out, new_field_spec=fields.SigFieldSpec(
                         "Sig", on_page=-1, box=(int(box.x0), int(L.PAGE_HEIGHT - box.bottom), int(box.x1),
                                                 int(L.PAGE_HEIGHT - box.top))))
    return out.getvalue()


def bare_pdfplumber(pdf: bytes) -> int:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return sum(len(page.extract_text() or "") for page in document.pages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    document = three_page_quote()
    sent = render_quote(document, Company(name="Nordlicht Software GmbH"))
    pages = identify(sent).pages or 0
    signed = stamp(sent, [Mark(1, L.INITIALS, "AK"), Mark(2, L.INITIALS, "AK"), Mark(3, L.SIGNATURE),
                          Mark(3, L.NAME, "Anna Kowalska"), Mark(3, L.DATE, "2026-03-04")])
    digital = pades(sent)
    issued = issued_quote(document)
    for name, pdf in (("signed", signed), ("pades", digital)):
        verdict = verify(pdf, issued)
        if verdict.status != ACCEPTED:
            print(f"wrong verdict for the {name} quote: {verdict.as_json()}", file=sys.stderr)
            return 1
    print(f"quote: {pages} pages, {len(document.lines)} lines; signed copy {len(signed):,} bytes, "
          f"PAdES copy {len(digital):,} bytes; {args.runs} runs each, interleaved, after one warm-up")

    cases: dict[str, Callable[[], object]] = {
        "bare pdfplumber open + extract_text (baseline)": lambda: bare_pdfplumber(signed),
        "verify (typed + image signature)": lambda: verify(signed, issued),
        "verify through pdf_sandbox.run": lambda: run("parsers.signed_quote:verify", signed, issued),
        "verify (PAdES, pyHanko validation)": lambda: verify(digital, issued),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for action in cases.values():
        action()
    for _ in range(args.runs):
        for name, action in cases.items():
            began = time.perf_counter()
            action()
            times[name].append((time.perf_counter() - began) * 1000)
    baseline = statistics.median(times["bare pdfplumber open + extract_text (baseline)"])
    print(f"{'':52} {'median ms':>10} {'p95 ms':>8} {'x baseline':>11}")
    for name, samples in times.items():
        median = statistics.median(samples)
        p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
        print(f"{name:52} {median:10.1f} {p95:8.1f} {median / baseline:11.2f}")
    headline = statistics.median(times["verify (typed + image signature)"])
    print(f"target: verification of a 3-page signed quote < {TARGET_MS:.0f} ms -> {headline:.1f} ms "
          f"({'met' if headline < TARGET_MS else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
