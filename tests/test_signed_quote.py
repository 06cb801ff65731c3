"""Returned quotes: real PDFs rendered by our renderer, changed the way customers change
them, and the verdict the verifier gives (parsers/signed_quote.py)."""
from __future__ import annotations

import pytest

from adapters.pdf_render.quote import render_quote
from parsers import quote_layout as L
from parsers.pdf_errors import PdfError, PdfErrorCode
from parsers.signed_quote import ACCEPTED, NEEDS_REVIEW, REJECTED, identify, verify
from tests import documents_kit as kit

THREE_PAGES = 60  # lines: enough for a quote of three pages


@pytest.fixture(scope="module")
def sent() -> bytes:
    return render_quote(kit.quote(), kit.COMPANY)


@pytest.fixture(scope="module")
def long_quote() -> tuple[object, bytes]:
    document = kit.quote(lines=THREE_PAGES)
    return document, render_quote(document, kit.COMPANY)


def codes(verdict) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.code for r in verdict.reasons]


def test_the_quote_as_sent_names_itself_by_metadata(sent: bytes) -> None:
    identity = identify(sent)
    assert (identity.number, identity.version, identity.content_hash, identity.pages, identity.source) == \
        ("Q-2026-0042", 2, kit.HASH, 1, "metadata")


def test_a_quote_returned_unsigned_is_rejected_as_not_signed(sent: bytes) -> None:
    verdict = verify(sent, kit.issued(kit.quote()))
    assert verdict.status == REJECTED and codes(verdict) == ["NOT_SIGNED"]
    assert verdict.reasons[0].text == "the quote is not signed"


def test_a_typed_name_and_signature_is_accepted(sent: bytes) -> None:
    verdict = verify(kit.sign_typed(sent, 1), kit.issued(kit.quote()))
    assert verdict.status == ACCEPTED, verdict.reasons
    assert (verdict.signature, verdict.signer, verdict.quote, verdict.version) == \
        ("typed", kit.SIGNER, "Q-2026-0042", 2)


def test_a_typed_name_of_someone_else_needs_a_person(sent: bytes) -> None:
    verdict = verify(kit.sign_typed(sent, 1, name="Jan Nowak"), kit.issued(kit.quote()))
    assert verdict.status == NEEDS_REVIEW and codes(verdict) == ["SIGNER_MISMATCH"]
    assert "we expected Anna Kowalska" in verdict.reasons[0].text


def test_a_signature_image_in_the_box_is_accepted(sent: bytes) -> None:
    verdict = verify(kit.overlay(sent, {1: [(L.NAME, kit.SIGNER)]}, images={1: [L.SIGNATURE]}),
                     kit.issued(kit.quote()))
    assert verdict.status == ACCEPTED, verdict.reasons
    assert verdict.signature == "image"


def test_a_filled_signature_field_is_accepted(sent: bytes) -> None:
    verdict = verify(kit.fill_field(sent, 1, L.SIGNATURE, kit.SIGNER), kit.issued(kit.quote()))
    assert verdict.status == ACCEPTED, verdict.reasons
    assert verdict.signature == "field"


def test_a_pades_signature_is_validated_and_accepted(sent: bytes) -> None:
    signed = kit.sign_digitally(sent, kit.self_signed())
    verdict = verify(signed, kit.issued(kit.quote()))
    assert verdict.status == ACCEPTED, verdict.reasons
    assert (verdict.signature, verdict.signer) == ("pades", kit.SIGNER)
    assert [n.code for n in verdict.notes] == ["SIGNATURE_NOT_TRUSTED"]  # self-signed: said, not hidden


def test_a_pades_signed_quote_changed_afterwards_is_rejected(sent: bytes) -> None:
    signed = kit.sign_digitally(sent, kit.self_signed())
    verdict = verify(kit.edit_incrementally(signed), kit.issued(kit.quote()))
    assert verdict.status == REJECTED
    assert "MODIFIED_AFTER_SIGNING" in codes(verdict)
    assert "changed after Anna Kowalska signed it" in verdict.reasons[codes(verdict).index("MODIFIED_AFTER_SIGNING")].text


def test_a_changed_total_is_rejected_with_both_amounts() -> None:
    document = kit.quote()
    edited = render_quote(kit.with_total(document, 900_000), kit.COMPANY)
    verdict = verify(kit.sign_typed(edited, 1), kit.issued(document))
    assert verdict.status == REJECTED
    assert codes(verdict) == ["TOTAL_CHANGED"]
    assert verdict.reasons[0].text == "the total was changed from 2,767.50 EUR to 9,000.00 EUR"


def test_a_changed_line_is_rejected_naming_the_line() -> None:
    document = kit.quote()
    first, second = document.lines
    edited = render_quote(kit.tampered(document, lines=(first, kit.replace(second, net=15_000))), kit.COMPANY)
    verdict = verify(kit.sign_typed(edited, 1), kit.issued(document))
    assert verdict.status == REJECTED
    assert codes(verdict) == ["LINE_CHANGED"]
    assert verdict.reasons[0].text == "line 2 (Onboarding): the amount was changed from 1,350.00 EUR to 150.00 EUR"


def test_a_total_whited_out_and_typed_over_is_rejected_naming_both(sent: bytes) -> None:
    from parsers.signed_quote import read
    [marker] = [w for w in read(sent).pages[0].hidden if w["text"] == L.TOTAL_MARKER]
    row = marker["top"] - 6
    edited = kit.cover_and_type(kit.sign_typed(sent, 1), L.Box(440, row, 553, row + 16), "EUR 9,000.00")
    verdict = verify(edited, kit.issued(kit.quote()))
    assert verdict.status == REJECTED
    assert [(r.code, r.text) for r in verdict.reasons] == [
        ("TOTAL_CHANGED", "the total was changed from 2,767.50 EUR to 9,000.00 EUR"),
        ("TEXT_COVERED", "on page 1 something was covered with a white box: “€2,767.50”")]


def test_a_dropped_line_is_rejected() -> None:
    document = kit.quote()
    edited = render_quote(kit.tampered(document, lines=document.lines[:1]), kit.COMPANY)
    verdict = verify(kit.sign_typed(edited, 1), kit.issued(document))
    assert verdict.status == REJECTED and codes(verdict) == ["LINE_MISSING"]


def test_an_older_version_is_rejected_naming_the_current_one(sent: bytes) -> None:
    issued_v2_now_v3 = kit.issued(kit.quote(current=3))
    verdict = verify(kit.sign_typed(sent, 1), issued_v2_now_v3)
    assert verdict.status == REJECTED and codes(verdict) == ["OLD_VERSION"]
    assert verdict.reasons[0].text == "this is version 2; version 3 is the current one"


def test_another_quote_or_no_quote_of_ours_is_rejected(sent: bytes) -> None:
    other = kit.tampered(kit.quote(), number="Q-2026-0041")
    assert codes(verify(render_quote(other, kit.COMPANY), kit.issued(kit.quote()))) == ["OTHER_QUOTE"]
    stranger = kit.overlay(_blank_pdf(), {1: [(L.SIGNATURE, "Anna Kowalska")]})
    verdict = verify(stranger, kit.issued(kit.quote()))
    assert verdict.status == REJECTED and codes(verdict) == ["NOT_OUR_QUOTE"]


def test_three_pages_all_initialled_and_signed_are_accepted(long_quote) -> None:  # type: ignore[no-untyped-def]
    document, pdf = long_quote
    assert identify(pdf).pages == 3
    verdict = verify(kit.sign_typed(pdf, 3), kit.issued(document))
    assert verdict.status == ACCEPTED, verdict.reasons


def test_page_two_without_initials_is_rejected(long_quote) -> None:  # type: ignore[no-untyped-def]
    document, pdf = long_quote
    verdict = verify(kit.sign_typed(pdf, 3, skip=(2,)), kit.issued(document))
    assert verdict.status == REJECTED and codes(verdict) == ["PAGE_NOT_SIGNED"]
    assert verdict.reasons[0].text == "page 2 is not initialled" and verdict.reasons[0].page == 2


def test_a_scan_signed_in_ink_is_matched_by_qr_and_left_to_a_person(sent: bytes) -> None:
    verdict = verify(kit.scanned(sent, ink=True), kit.issued(kit.quote()))
    assert (verdict.quote, verdict.version, verdict.signature) == ("Q-2026-0042", 2, "ink")
    assert verdict.status == NEEDS_REVIEW and codes(verdict) == ["SCAN_CONTENT_NOT_COMPARED"]


def test_a_scan_with_only_a_speck_in_the_box_is_left_to_a_person(sent: bytes) -> None:
    verdict = verify(kit.scanned(sent, ink=True, faint=True), kit.issued(kit.quote()))
    assert verdict.status == NEEDS_REVIEW
    assert codes(verdict) == ["SCAN_CONTENT_NOT_COMPARED", "FAINT_MARK"]
    assert verdict.reasons[1].text.startswith("page 1 has only faint marks in its signature box")


def test_a_scan_without_ink_is_rejected_as_not_signed(sent: bytes) -> None:
    verdict = verify(kit.scanned(sent, ink=False), kit.issued(kit.quote()))
    assert identify(kit.scanned(sent, ink=False)).source == "qr"
    assert verdict.status == REJECTED and "NOT_SIGNED" in codes(verdict)


def test_a_docusign_completed_quote_is_accepted(long_quote) -> None:  # type: ignore[no-untyped-def]
    document, pdf = long_quote
    verdict = verify(kit.docusign_completed(pdf, 3), kit.issued(document))
    assert verdict.status == ACCEPTED, verdict.reasons
    assert verdict.signature == "docusign"
    assert [n.code for n in verdict.notes] == ["DOCUSIGN"]


@pytest.mark.parametrize("language", ["he", "pl", "lt", "id"])
def test_a_signed_quote_in_every_language_is_accepted_and_a_changed_total_found(language: str) -> None:
    document = kit.quote(language)
    good = verify(kit.sign_typed(render_quote(document, kit.COMPANY), 1), kit.issued(document))
    assert good.status == ACCEPTED, good.reasons
    edited = render_quote(kit.with_total(document, document.gross + 100_000), kit.COMPANY)
    bad = verify(kit.sign_typed(edited, 1), kit.issued(document))
    assert codes(bad) == ["TOTAL_CHANGED"]
    assert bad.reasons[0].text == "the total was changed from 2,767.50 EUR to 3,767.50 EUR"


def test_what_is_not_a_pdf_is_a_typed_error() -> None:
    with pytest.raises(PdfError) as raised:
        verify(b"hello, here is my signature", kit.issued(kit.quote()))
    assert raised.value.code is PdfErrorCode.NOT_A_PDF


def _blank_pdf() -> bytes:
    from fpdf import FPDF
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(200, 20, "Purchase order 1234")
    return bytes(pdf.output())
