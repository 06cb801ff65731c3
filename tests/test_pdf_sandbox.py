"""The PDF sandbox: every hostile shape ends in a typed error within the limits, and the
caller survives children that hang, eat memory or crash."""
from __future__ import annotations

import time

import pytest

from adapters.pdf_sandbox import Limits, run, run_measured
from parsers import pdf_structure
from parsers.pdf_errors import PdfError, PdfErrorCode
from tests import pdf_fixtures as fx

QUICK = Limits(seconds=10, memory_bytes=512 << 20, max_file_bytes=5 << 20)


def code_of(pdf: bytes, function: str = "parsers.pdf_text:read_text", limits: Limits = QUICK) -> str:
    with pytest.raises(PdfError) as caught:
        run(function, pdf, limits=limits)
    return caught.value.code.value


def test_a_good_pdf_is_read_in_the_child():
    assert run("parsers.pdf_text:read_text", fx.text_pdf("Invoice 42", "Total 100.00"), limits=QUICK)[0] \
        == "Invoice 42\nTotal 100.00"


def test_arguments_and_results_cross_the_process_boundary():
    assert run("tests.sandbox_targets:echo_length", fx.text_pdf("x"), 5, limits=QUICK) == len(fx.text_pdf("x")) + 5


@pytest.mark.parametrize("pdf, code", [
    (b"", "PDF_MALFORMED"),
    (b"<html><script>alert(1)</script></html>", "PDF_NOT_A_PDF"),
    (b"MZ\x90\x00" + b"\0" * 200, "PDF_NOT_A_PDF"),
    (fx.truncated(), "PDF_MALFORMED"),
    (fx.reference_cycle(), "PDF_MALFORMED"),
    (fx.self_reference(), "PDF_MALFORMED"),
    (fx.blank_pdf(), "PDF_NO_TEXT"),
    (fx.javascript_open_action(), "PDF_ACTIVE_CONTENT"),
    (fx.obfuscated_launch(), "PDF_ACTIVE_CONTENT"),
    (fx.embedded_file("invoice.pdf.exe", b"harmless bytes"), "PDF_ACTIVE_CONTENT"),
    (fx.embedded_file("factur-x.xml", b"MZ\x90\x00 a program in disguise"), "PDF_ACTIVE_CONTENT"),
    (fx.encrypted(), "PDF_ENCRYPTED"),
    (fx.flate_bomb(80), "PDF_TOO_LARGE"),
    (fx.double_flate_bomb(200), "PDF_TOO_LARGE"),
], ids=["empty", "html", "exe", "truncated", "reference-cycle", "self-reference", "no-text", "javascript",
        "launch-in-object-stream", "exe-attachment", "exe-bytes-as-xml", "encrypted", "flate-bomb",
        "double-flate-bomb"])
def test_each_hostile_shape_gets_its_typed_error(pdf, code):
    assert code_of(pdf) == code


def test_an_xml_attachment_is_data_not_active_content():
    assert run("parsers.pdf_text:read_text", fx.embedded_file("factur-x.xml", b"<Invoice/>"), limits=QUICK)


def test_a_file_over_the_size_limit_is_refused_before_any_child_starts():
    outcome = run_measured("parsers.pdf_text:read_text", fx.text_pdf("x" * 50), limits=Limits(max_file_bytes=200))
    assert outcome.error.code is PdfErrorCode.TOO_LARGE and outcome.peak_rss_bytes is None


def test_the_caller_survives_a_child_that_hangs():
    started = time.monotonic()
    outcome = run_measured("tests.sandbox_targets:hang", fx.text_pdf("x"), limits=Limits(seconds=1.0))
    assert outcome.error.code is PdfErrorCode.TIMEOUT
    assert time.monotonic() - started < 8
    assert run("parsers.pdf_text:read_text", fx.text_pdf("still here"), limits=QUICK) == ["still here"]


def test_the_caller_survives_a_child_that_blows_its_memory_cap():
    outcome = run_measured("tests.sandbox_targets:eat_memory", fx.text_pdf("x"),
                           limits=Limits(seconds=15, memory_bytes=384 << 20))
    assert outcome.error.code is PdfErrorCode.TOO_LARGE
    assert outcome.peak_rss_bytes is not None and outcome.peak_rss_bytes < 384 << 20


def test_the_caller_survives_a_child_that_crashes():
    assert code_of(fx.text_pdf("x"), "tests.sandbox_targets:crash") == "PDF_MALFORMED"


def test_an_incremental_update_that_changes_the_page_is_modified_after_signing():
    pdf = fx.changed_after_save()
    assert run("parsers.pdf_text:read_text", pdf, limits=QUICK) == ["Quote Q-2026-0001\nTotal: 9000 EUR"]
    assert code_of(pdf, "parsers.pdf_text:read_signed_text") == "PDF_MODIFIED_AFTER_SIGNING"


def test_revisions_and_signatures_are_found_in_the_raw_bytes():
    assert len(pdf_structure.incremental_updates(fx.text_pdf("x"))) == 1
    changed = fx.changed_after_save()
    revisions = pdf_structure.incremental_updates(changed)
    assert [r.index for r in revisions] == [0, 1] and revisions[1].objects == (4,)
    assert pdf_structure.content_changing_updates(changed) == [revisions[1]]
    assert pdf_structure.revisions_after_signature(changed) == []     # nobody signed it


def test_a_signed_document_with_a_harmless_later_save_is_read():
    pdf = fx.signed_then(changed=False)
    assert len(pdf_structure.signature_ranges(pdf)) == 1
    assert [r.index for r in pdf_structure.revisions_after_signature(pdf)] == [1]
    assert run("parsers.pdf_text:read_signed_text", pdf, limits=QUICK)


def test_a_signed_document_changed_after_signing_is_refused():
    pdf = fx.signed_then(changed=True)
    assert code_of(pdf, "parsers.pdf_text:read_signed_text") == "PDF_MODIFIED_AFTER_SIGNING"


def test_errors_keep_their_code_across_pickling():
    import pickle
    error = pickle.loads(pickle.dumps(PdfError(PdfErrorCode.NO_TEXT, "a scan")))
    assert error.code is PdfErrorCode.NO_TEXT and error.as_json() == {"error": "PDF_NO_TEXT", "message": "a scan"}
