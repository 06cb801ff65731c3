"""The attachment policy: what an inbound message may carry before any of it is
parsed. Refusals are specific (a reason code and a sentence), so the person who
reviews the message knows exactly why, and a hostile file never reaches a PDF parser.

Pure: an `email.message.EmailMessage` in, verdicts out. Archives are inspected from
their central directory only (names and declared sizes), never extracted."""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from email.message import EmailMessage, Message

# Reason codes (stable: tests, review lists and dashboards use them).
TOO_LARGE = "too_large"
TOO_MANY_PARTS = "too_many_parts"
TOO_DEEP = "nesting_too_deep"
ARCHIVE = "archive_refused"
ARCHIVE_TRAVERSAL = "archive_path_traversal"
ARCHIVE_BOMB = "archive_bomb"
TYPE_MISMATCH = "content_type_mismatch"
DOUBLE_EXTENSION = "double_extension"
EXECUTABLE = "executable"
NOT_ALLOWED = "type_not_allowed"

_EXECUTABLE = {"exe", "scr", "bat", "cmd", "com", "pif", "msi", "js", "jse", "vbs", "vbe", "wsf", "ps1",
               "jar", "hta", "lnk", "dll", "sh", "app", "apk", "iso", "img"}
_ARCHIVES = {"zip", "rar", "7z", "gz", "tgz", "tar", "bz2", "xz", "cab", "arj"}
_DOCUMENT_EXTENSIONS = {"pdf", "doc", "docx", "xls", "xlsx", "png", "jpg", "jpeg", "txt", "csv", "xml", "html",
                        "htm", "odt", "ods"}
# What a declared type must start with (magic bytes), where it can be known.
_MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/zip": (b"PK\x03\x04", b"PK\x05\x06"),
}
_ALLOWED_TYPES = {"application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv", "application/xml",
                  "text/xml", "text/calendar", "application/octet-stream"}


@dataclass(frozen=True)
class Limits:
    max_attachment_bytes: int = 20 << 20     # one file
    max_total_bytes: int = 40 << 20          # all files of one message
    # The whole message as fetched: above it, only the headers are read. Parsing MIME in
    # Python takes about 8 times a message's size, and the ingest worker must stay bounded.
    max_message_bytes: int = 24 << 20
    max_parts: int = 100
    max_depth: int = 10
    max_archive_ratio: int = 100             # declared uncompressed / compressed
    max_archive_bytes: int = 100 << 20


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str      # the sniffed type when it could be told, else the declared one
    declared_type: str
    data: bytes
    sha256: str
    refused: str | None = None
    detail: str = ""

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Verdict:
    refused: str | None            # the whole message refused (too many parts, too deep)
    detail: str
    attachments: tuple[Attachment, ...]


def check_message(message: EmailMessage, limits: Limits = Limits()) -> Verdict:
    parts, depth = _shape(message)
    if depth > limits.max_depth:
        return Verdict(TOO_DEEP, f"MIME nesting {depth} deep (at most {limits.max_depth})", ())
    if parts > limits.max_parts:
        return Verdict(TOO_MANY_PARTS, f"{parts} MIME parts (at most {limits.max_parts})", ())
    found: list[Attachment] = []
    total = 0
    for part in message.walk():
        if part.is_multipart() or not _is_attachment(part):
            continue
        data = part.get_payload(decode=True) or b""
        total += len(data)
        found.append(check_attachment(part.get_filename() or "", part.get_content_type(), data, limits,
                                      over_total=total > limits.max_total_bytes))
    return Verdict(None, "", tuple(found))


def check_attachment(filename: str, declared: str, data: bytes, limits: Limits = Limits(), *,
                     over_total: bool = False) -> Attachment:
    digest = hashlib.sha256(data).hexdigest()
    name = filename.strip().strip(".")
    sniffed = sniff(data) or declared

    def refuse(code: str, detail: str) -> Attachment:
        return Attachment(filename, sniffed, declared, data, digest, code, detail)

    if len(data) > limits.max_attachment_bytes:
        return refuse(TOO_LARGE, f"{len(data)} bytes (at most {limits.max_attachment_bytes})")
    if over_total:
        return refuse(TOO_LARGE, f"the message's attachments exceed {limits.max_total_bytes} bytes")
    extensions = [e.lower() for e in name.split(".")[1:]]
    if len(extensions) >= 2 and extensions[-1] in _EXECUTABLE | _ARCHIVES and \
            extensions[-2] in _DOCUMENT_EXTENSIONS:
        return refuse(DOUBLE_EXTENSION, f"'{filename}' hides a .{extensions[-1]} behind .{extensions[-2]}")
    if (extensions and extensions[-1] in _EXECUTABLE) or data[:2] == b"MZ" or data[:4] == b"\x7fELF":
        return refuse(EXECUTABLE, f"'{filename}' is a program")
    if (extensions and extensions[-1] in _ARCHIVES) or sniffed in ("application/zip",) or \
            declared in ("application/zip", "application/x-zip-compressed", "application/x-rar-compressed",
                         "application/x-7z-compressed", "application/gzip"):
        return refuse(*_archive_reason(data, limits))
    expected = _MAGIC.get(declared)
    if expected and not data.startswith(expected):
        return refuse(TYPE_MISMATCH, f"labelled {declared} but the bytes are {sniff(data) or 'something else'}")
    if extensions and extensions[-1] == "pdf" and not data.startswith(b"%PDF-"):
        return refuse(TYPE_MISMATCH, f"named .pdf but the bytes are {sniff(data) or 'not a PDF'}")
    if sniffed not in _ALLOWED_TYPES:
        return refuse(NOT_ALLOWED, f"{sniffed} attachments are not accepted")
    return Attachment(filename, sniffed, declared, data, digest)


def sniff(data: bytes) -> str | None:
    """The type the bytes themselves show (magic numbers), or None."""
    head = data[:1024]
    for kind, magics in _MAGIC.items():
        if any(head.startswith(m) for m in magics):
            return kind
    if head[:2] == b"MZ":
        return "application/x-msdownload"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return "text/html"
    if head.startswith((b"\x1f\x8b",)):
        return "application/gzip"
    if head.startswith(b"Rar!") or head.startswith(b"7z\xbc\xaf"):
        return "application/x-archive"
    return None


def _archive_reason(data: bytes, limits: Limits) -> tuple[str, str]:
    """Archives are refused; the reason says whether it was also hostile."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return ARCHIVE, "archives are not accepted (send the PDF itself)"
    for entry in entries:
        name = entry.filename.replace("\\", "/")
        if name.startswith("/") or ".." in name.split("/") or (len(name) > 1 and name[1] == ":"):
            return ARCHIVE_TRAVERSAL, f"archive entry '{entry.filename}' points outside the archive"
    declared = sum(e.file_size for e in entries)
    packed = max(1, sum(e.compress_size for e in entries))
    if declared > limits.max_archive_bytes or declared / packed > limits.max_archive_ratio:
        return ARCHIVE_BOMB, f"archive expands to {declared} bytes from {packed} ({declared // packed}:1)"
    return ARCHIVE, "archives are not accepted (send the PDF itself)"


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment" or part.get_filename():
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _shape(message: Message) -> tuple[int, int]:
    """(parts, deepest nesting), walked without recursion so depth costs no stack."""
    parts, deepest = 0, 0
    stack: list[tuple[Message, int]] = [(message, 1)]
    while stack:
        part, depth = stack.pop()
        parts += 1
        deepest = max(deepest, depth)
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend((child, depth + 1) for child in payload)
    return parts, deepest
