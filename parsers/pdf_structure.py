"""Cheap, bounded looks at a PDF's raw bytes, taken BEFORE a full parser touches it.

Nothing here builds an object graph: regular expressions over the bytes, plus bounded
inflation of FlateDecode streams (object streams and the bomb check). That is why the
checks stay fast on files that make pdfminer loop or eat memory, and why they see
things a repairing parser would hide (an incremental update, a second %%EOF).

Also used by the signed-quote verifier: `incremental_updates`, `signature_ranges`,
`revisions_after_signature`, `content_changing_updates`."""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from parsers.pdf_errors import PdfError, PdfErrorCode

HEADER_WINDOW = 1024           # the spec tolerates junk before %PDF-; Acrobat looks this far
EOF_WINDOW = 4096              # %%EOF may be followed by a little trailing garbage

_OBJ = re.compile(rb"(?<![0-9])(\d{1,10})\s+(\d{1,5})\s+obj\b")
_EOF = re.compile(rb"%%EOF[ \t]*(?:\r\n|\r|\n)?")
_STREAM = re.compile(rb"obj\s*(<<(?:(?!endobj).){0,4000}?>>)\s*stream(?:\r\n|\n|\r)", re.S)
_NAME = re.compile(rb"/([^\s/<>\[\]()%{}]+)")
_REF_ONLY = re.compile(rb"(?<![0-9])(\d{1,10})\s+(\d{1,5})\s+obj\s*(\d{1,10})\s+(\d{1,5})\s+R\s*endobj")
_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")
_CONTENTS = re.compile(rb"/Contents\s*(\[[^\]]{0,4000}\]|\d+\s+\d+\s+R)")
_REF = re.compile(rb"(\d+)\s+\d+\s+R")
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


def precheck(pdf: bytes, max_bytes: int) -> None:
    """Magic bytes, size, end marker: refuse what is plainly not a readable PDF."""
    if not pdf:
        raise PdfError(PdfErrorCode.MALFORMED, "the file is empty")
    if len(pdf) > max_bytes:
        raise PdfError(PdfErrorCode.TOO_LARGE, f"{len(pdf)} bytes is over the limit of {max_bytes}")
    if b"%PDF-" not in pdf[:HEADER_WINDOW]:
        what = "HTML" if b"<html" in pdf[:HEADER_WINDOW].lower() else "something else"
        raise PdfError(PdfErrorCode.NOT_A_PDF, f"no %PDF- header: this looks like {what}")
    if b"%%EOF" not in pdf[-EOF_WINDOW:]:
        raise PdfError(PdfErrorCode.MALFORMED, "no %%EOF at the end: the file is truncated or damaged")


def _name(raw: bytes) -> bytes:
    """/J#61vaScript is /JavaScript: undo #xx escapes so obfuscated names are seen."""
    if b"#" not in raw:
        return raw
    return re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


def _filters(dictionary: bytes) -> list[bytes]:
    found = re.search(rb"/Filter\s*(\[[^\]]*\]|/[^\s/<>\[\]]+)", dictionary)
    return [_name(n) for n in _NAME.findall(found.group(1))] if found else []


@dataclass(frozen=True)
class Stream:
    dictionary: bytes
    start: int
    data: bytes


def streams(pdf: bytes) -> list[Stream]:
    """Every `obj << … >> stream` in the file, its raw (still encoded) data."""
    out = []
    for match in _STREAM.finditer(pdf):
        dictionary, start = match.group(1), match.end()
        length = re.search(rb"/Length\s+(\d{1,12})(?!\s+\d+\s+R)", dictionary)
        end = start + int(length.group(1)) if length else -1
        if not length or end > len(pdf) or pdf[end:end + 20].lstrip()[:9] != b"endstream":
            end = pdf.find(b"endstream", start)
            end = len(pdf) if end < 0 else end
        out.append(Stream(dictionary, start, pdf[start:end]))
    return out


def inflate(stream: Stream, limit: int) -> bytes | None:
    """The decoded bytes of a FlateDecode chain, at most `limit` of them; None when the
    chain has filters we do not decode here. Raises TOO_LARGE past the limit: a stream
    that inflates that far is a bomb whatever else it is."""
    filters = _filters(stream.dictionary)
    if not filters or any(f not in (b"FlateDecode", b"Fl") for f in filters):
        return None
    data = stream.data
    for depth, _ in enumerate(filters):
        decoder, out, size = zlib.decompressobj(), [], 0
        try:
            chunk = decoder.decompress(data, 1 << 20)
            while chunk:
                size += len(chunk)
                if size > limit:
                    raise PdfError(PdfErrorCode.TOO_LARGE,
                                   f"a compressed stream inflates past {limit >> 20} MiB (decompression bomb)")
                out.append(chunk)
                chunk = decoder.decompress(decoder.unconsumed_tail, 1 << 20)
        except zlib.error:
            if depth == 0 and not out:
                return None  # damaged data: the real parser will say what it makes of it
        data = b"".join(out)
    return data


def check_inflation(pdf: bytes, limit: int) -> None:
    total = 0
    for stream in streams(pdf):
        data = inflate(stream, limit)
        total += len(data or b"")
        if total > limit:
            raise PdfError(PdfErrorCode.TOO_LARGE,
                           f"compressed streams inflate past {limit >> 20} MiB in total (decompression bomb)")


def check_encryption(pdf: bytes) -> None:
    if re.search(rb"/Encrypt\s*(?:\d+\s+\d+\s+R|<<)", pdf):
        raise PdfError(PdfErrorCode.ENCRYPTED, "the PDF is encrypted; we do not read password-protected files")


def check_reference_cycles(pdf: bytes) -> None:
    """`4 0 obj 4 0 R endobj` or 6 -> 7 -> 6: objects that are nothing but a reference,
    in a loop. pdfminer resolves these forever."""
    points = {int(m.group(1)): int(m.group(3)) for m in _REF_ONLY.finditer(pdf)}
    for start in points:
        seen, current = set(), start
        while current in points:
            if current in seen:
                raise PdfError(PdfErrorCode.MALFORMED, f"object {start} is a reference cycle")
            seen.add(current)
            current = points[current]


_ACTIVE_NAMES = {b"JavaScript": "JavaScript", b"JS": "JavaScript", b"Launch": "a launch action",
                 b"RichMedia": "rich media (Flash)", b"XFA": "an XFA form"}
# Attachments that are data, not programs: Factur-X/ZUGFeRD carry their invoice as XML.
DATA_ATTACHMENTS = (".xml", ".txt", ".csv", ".json", ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff")
_FILE_NAME = re.compile(rb"/(?:UF|F)\s*(\((?:\\.|[^\\)]){0,400}\)|<[0-9A-Fa-f\s]{0,1600}>)", re.S)


_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _pdf_string(token: bytes) -> str:
    if token.startswith(b"<"):
        hexdigits = re.sub(rb"[^0-9A-Fa-f]", b"", token[1:-1])
        raw = bytes.fromhex((hexdigits + b"0" * (len(hexdigits) % 2)).decode())
    else:
        raw = re.sub(rb"\\([0-7]{1,3}|.)",
                     lambda m: bytes([int(m.group(1), 8) & 0xFF]) if m.group(1)[:1].isdigit()
                     else _ESCAPES.get(m.group(1), m.group(1)), token[1:-1], flags=re.S)
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace")
    return raw.decode("latin-1")


_PROGRAM_MAGIC = (b"MZ", b"\x7fELF", b"#!", b"PK\x03\x04", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe")
_PROGRAM_TYPES = re.compile(rb"/Subtype\s*/(?:application#2F(?:x-msdownload|x-executable|x-msdos-program|"
                            rb"x-sh|x-dosexec|vnd\.microsoft\.portable-executable|java-archive|x-bat))", re.I)


def _enclosing_object(text: bytes, position: int) -> bytes:
    start = text.rfind(b" obj", 0, position)
    end = text.find(b"endobj", position)
    start = max(0, position - 2000) if start < 0 or position - start > 4000 else start
    end = min(len(text), position + 2000) if end < 0 or end - position > 4000 else end
    return text[start:end]


def _scan_active(text: bytes) -> None:
    for match in _NAME.finditer(text):
        what = _ACTIVE_NAMES.get(_name(match.group(1)))
        if what:
            raise PdfError(PdfErrorCode.ACTIVE_CONTENT, f"the PDF contains {what}")
    # attachments: by the name their file specification gives them …
    for match in re.finditer(rb"/EF\s*<<|/Type\s*/Filespec\b", text):
        names = [_pdf_string(m.group(1)) for m in _FILE_NAME.finditer(_enclosing_object(text, match.start()))]
        bad = [n for n in names if n.strip() and not n.strip().lower().endswith(DATA_ATTACHMENTS)]
        if bad:
            raise PdfError(PdfErrorCode.ACTIVE_CONTENT, f"the PDF carries an embedded file that is not data: {bad[0]}")
    # … and by the declared type of the embedded stream
    if _PROGRAM_TYPES.search(text):
        raise PdfError(PdfErrorCode.ACTIVE_CONTENT, "the PDF carries an embedded program")


def _embedded_programs(pdf: bytes, stream_list: list[Stream], inflate_limit: int) -> None:
    """… and by what the embedded file's bytes are (an .exe renamed to .xml is still MZ)."""
    for stream in stream_list:
        if re.search(rb"/Type\s*/EmbeddedFile\b", stream.dictionary):
            data = inflate(stream, inflate_limit) if _filters(stream.dictionary) else stream.data
            if data and data.lstrip()[:4].startswith(_PROGRAM_MAGIC):
                raise PdfError(PdfErrorCode.ACTIVE_CONTENT, "the PDF carries an embedded program")


def check_active_content(pdf: bytes, inflate_limit: int) -> None:
    """JavaScript, launch actions, embedded executables — in the plain objects and in
    compressed object streams (where a hostile file would hide them)."""
    stream_list = streams(pdf)
    # names are looked for in the objects, not in stream data (base64 text has "/JS" in it)
    skeleton, last = [], 0
    for stream in stream_list:
        skeleton.append(pdf[last:stream.start])
        last = stream.start + len(stream.data)
    skeleton.append(pdf[last:])
    _scan_active(b"\n".join(skeleton))
    for stream in stream_list:
        if re.search(rb"/Type\s*/ObjStm", stream.dictionary):
            data = inflate(stream, inflate_limit)
            if data:
                _scan_active(data)
    _embedded_programs(pdf, stream_list, inflate_limit)


# --- incremental updates and signatures ------------------------------------------------

@dataclass(frozen=True)
class Revision:
    index: int             # 0 = the original document
    start: int             # byte offset where this revision's bytes begin
    end: int               # just past its %%EOF
    objects: tuple[int, ...]  # object numbers (re)defined in these bytes


def incremental_updates(pdf: bytes) -> list[Revision]:
    """The file's revisions: the original plus each appended incremental update, split
    at %%EOF markers (a file saved once has exactly one revision)."""
    ends = [m.end() for m in _EOF.finditer(pdf)]
    if not ends:
        ends = [len(pdf)]
    if pdf[ends[-1]:].strip():
        ends.append(len(pdf))   # bytes after the last %%EOF: an unterminated update
    revisions, start = [], 0
    for index, end in enumerate(ends):
        numbers = tuple(int(m.group(1)) for m in _OBJ.finditer(pdf, start, end))
        if index and not numbers and not pdf[start:end].strip(b"\r\n \t%EOF"):
            continue
        revisions.append(Revision(len(revisions), start, end, numbers))
        start = end
    return revisions


def signature_ranges(pdf: bytes) -> list[tuple[int, int, int, int]]:
    """Every /ByteRange [a b c d] of a signature dictionary, in file order."""
    return [tuple(int(g) for g in m.groups()) for m in _BYTE_RANGE.finditer(pdf)]  # type: ignore[misc]


def revisions_after_signature(pdf: bytes) -> list[Revision]:
    """Revisions appended after the bytes the FIRST signature covers: whatever was saved
    after someone signed. Empty when there is no signature or nothing came after."""
    ranges = signature_ranges(pdf)
    if not ranges:
        return []
    covered = min(c + d for _a, _b, c, d in ranges)  # [a, a+b) and [c, c+d) are signed
    return [r for r in incremental_updates(pdf) if r.start >= covered - 2 and r.objects]


def _bodies(pdf: bytes, start: int, end: int) -> dict[int, bytes]:
    bodies = {}
    matches = list(_OBJ.finditer(pdf, start, end))
    for i, match in enumerate(matches):
        stop = matches[i + 1].start() if i + 1 < len(matches) else end
        body = pdf[match.end():stop]
        cut = body.find(b"endobj")
        bodies[int(match.group(1))] = body[:cut] if cut >= 0 else body
    return bodies


def content_changing_updates(pdf: bytes) -> list[Revision]:
    """Updates that change what a page shows: they redefine a page's content stream or
    its resources, give a page other /Contents, or add pages. Signing itself (a /Sig
    dictionary, a widget, an appearance stream, /Annots added to a page) is not that."""
    revisions = incremental_updates(pdf)
    changing, known = [], {}
    for revision in revisions:
        bodies = _bodies(pdf, revision.start, revision.end)
        if revision.index:
            protected = set()
            for body in known.values():
                if _PAGE.search(body):
                    contents = _CONTENTS.search(body)
                    protected |= {int(r) for r in _REF.findall(contents.group(1))} if contents else set()
                    resources = re.search(rb"/Resources\s+(\d+)\s+\d+\s+R", body)
                    protected |= {int(resources.group(1))} if resources else set()
            for number, body in bodies.items():
                before = known.get(number)
                if number in protected and before != body:
                    changing.append(revision)
                    break
                if _PAGE.search(body) and (before is None or _contents_of(before) != _contents_of(body)):
                    changing.append(revision)
                    break
        known.update(bodies)
    return changing


def _contents_of(body: bytes) -> bytes | None:
    found = _CONTENTS.search(body)
    return re.sub(rb"\s+", b" ", found.group(1)) if found else None


def check_signed_document(pdf: bytes) -> None:
    """Reading a document someone signed: refuse it when it was changed afterwards."""
    after = revisions_after_signature(pdf)
    changing = content_changing_updates(pdf)
    if signature_ranges(pdf):
        late = [r for r in changing if any(r.index == a.index for a in after)]
        if late:
            raise PdfError(PdfErrorCode.MODIFIED_AFTER_SIGNING,
                           f"{len(late)} update(s) saved after the signature change the page content")
    elif changing:
        raise PdfError(PdfErrorCode.MODIFIED_AFTER_SIGNING,
                       f"an incremental update (revision {changing[0].index}) changes the page content")


def guard(pdf: bytes, inflate_limit: int) -> None:
    """The bounded structure scan every sandboxed read starts with."""
    check_encryption(pdf)
    check_reference_cycles(pdf)
    check_inflation(pdf, inflate_limit)
    check_active_content(pdf, inflate_limit)
