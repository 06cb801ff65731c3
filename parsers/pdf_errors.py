"""Typed errors for reading PDFs: every PDF we are given ends in a result or one of
these, within bounded time and memory. The codes are part of the CLI's JSON shape."""
from __future__ import annotations

from enum import Enum


class PdfErrorCode(str, Enum):
    TIMEOUT = "PDF_TIMEOUT"
    TOO_LARGE = "PDF_TOO_LARGE"
    ENCRYPTED = "PDF_ENCRYPTED"
    MALFORMED = "PDF_MALFORMED"
    NO_TEXT = "PDF_NO_TEXT"                      # nothing readable: a person must look
    ACTIVE_CONTENT = "PDF_ACTIVE_CONTENT"        # JavaScript, launch actions, embedded files
    MODIFIED_AFTER_SIGNING = "PDF_MODIFIED_AFTER_SIGNING"
    NOT_A_PDF = "PDF_NOT_A_PDF"


class PdfError(Exception):
    def __init__(self, code: PdfErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code, self.message = code, message

    def __reduce__(self):  # crosses the worker-process boundary intact
        return (type(self), (self.code, self.message))

    def as_json(self) -> dict[str, str]:
        return {"error": self.code.value, "message": self.message}
