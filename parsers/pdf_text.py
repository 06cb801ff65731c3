"""Plain text of a PDF's pages (what the hostile sweep and simple callers read).
Runs inside the sandbox (adapters/pdf_sandbox.py): pdfplumber is only ever called there."""
from __future__ import annotations

import io

import pdfplumber

from parsers import pdf_structure
from parsers.pdf_errors import PdfError, PdfErrorCode

MAX_PAGES = 200   # a /Count that lies cannot make us walk two billion pages


def read_text(pdf: bytes) -> list[str]:
    """One string per page; NO_TEXT when no page has any (a scan: a person must look)."""
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        pages = [page.extract_text() or "" for page in document.pages[:MAX_PAGES]]
    if not any(text.strip() for text in pages):
        raise PdfError(PdfErrorCode.NO_TEXT, "the PDF has no readable text (an image or a scan?): needs review")
    return pages


def read_signed_text(pdf: bytes) -> list[str]:
    """As read_text, for a document someone signed: refused when changed afterwards."""
    pdf_structure.check_signed_document(pdf)
    return read_text(pdf)
