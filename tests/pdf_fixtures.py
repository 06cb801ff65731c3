"""PDFs for the tests, written here from scratch: well-formed ones, and the hostile shapes
the PDF sandbox must survive (bombs, reference cycles, truncation, JavaScript,
attachments, encryption, incremental updates). Small enough to build in milliseconds."""
from __future__ import annotations

import io
import zlib


def assemble(objects: dict[int, bytes], root: int = 1, trailer: bytes = b"") -> bytes:
    """A PDF with a correct classic xref table from {number: body}."""
    out = bytearray(b"%PDF-1.7\n%\xb5\xb6\xb7\xb8\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += (b"%010d 00000 n \n" % offsets[number]) if number in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (size, root, trailer, xref)
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def _text_ops(lines: list[str]) -> bytes:
    ops = [b"BT /F1 11 Tf 14 TL 60 780 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(b"(%s) Tj T*" % escaped.encode("latin-1"))
    ops.append(b"ET")
    return b"\n".join(ops)


def page_objects(content: bytes, page_extra: bytes = b"", catalog_extra: bytes = b"") -> dict[int, bytes]:
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
           b"/Contents 4 0 R " + page_extra + b">>",
        4: content,
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }


def text_pdf(*lines: str) -> bytes:
    return assemble(page_objects(stream(_text_ops(list(lines) or ["Hello"]))))


def blank_pdf() -> bytes:
    """A page with no text at all (as a scan without OCR looks to a text reader)."""
    return assemble(page_objects(stream(b"0 0 1 rg 50 50 100 100 re f")))


def flate_bomb(megabytes: int) -> bytes:
    """A page whose content inflates to `megabytes` MiB of spaces."""
    packer = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    data = packer.compress(b"BT /F1 12 Tf 72 720 Td (boom) Tj ET\n")
    data += b"".join(packer.compress(chunk) for _ in range(megabytes)) + packer.flush()
    return assemble(page_objects(stream(data, b"/Filter /FlateDecode ")))


def double_flate_bomb(megabytes: int) -> bytes:
    inner = zlib.compress(b"\0" * (megabytes << 20), 9)
    return assemble(page_objects(stream(zlib.compress(inner, 9), b"/Filter [/FlateDecode /FlateDecode] ")))


def reference_cycle() -> bytes:
    objects = page_objects(b"6 0 R")
    objects[6] = b"7 0 R"
    objects[7] = b"6 0 R"
    return assemble(objects)


def self_reference() -> bytes:
    objects = page_objects(b"")
    objects[4] = b"4 0 R"
    return assemble(objects)


def truncated() -> bytes:
    whole = text_pdf("Total 100.00")
    return whole[: len(whole) // 2]


def javascript_open_action() -> bytes:
    return assemble({**page_objects(stream(_text_ops(["Invoice"])), catalog_extra=b"/OpenAction 6 0 R "),
                     6: b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>"})


def obfuscated_launch() -> bytes:
    """/Launch spelled with #xx escapes, inside a compressed object stream."""
    inner = b"6 0 << /S /L#61unch /F (cmd.exe) >>"
    objstm = stream(zlib.compress(inner), b"/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode ")
    return assemble({**page_objects(stream(_text_ops(["Invoice"]))), 7: objstm})


def embedded_file(name: str, data: bytes) -> bytes:
    objects = page_objects(stream(_text_ops(["Invoice with an attachment"])),
                           catalog_extra=b"/Names << /EmbeddedFiles << /Names [(%s) 7 0 R] >> >> " % name.encode())
    objects[6] = stream(data, b"/Type /EmbeddedFile ")
    objects[7] = b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F 6 0 R >> >>" % (name.encode(), name.encode())
    return assemble(objects)


def encrypted(text: str = "Secret invoice") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(text))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def incremental_update(original: bytes, number: int, body: bytes) -> bytes:
    """Append an incremental update that redefines object `number`."""
    start = len(original)
    xref = start + len(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    previous = int(original.rsplit(b"startxref", 1)[1].split()[0])
    size = int(original.split(b"/Size ")[1].split()[0])
    update = b"%d 0 obj\n%s\nendobj\n" % (number, body)
    update += b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (number, start)
    update += b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (size, previous, xref)
    return original + update


def changed_after_save() -> bytes:
    """'Total: 1000 EUR' on the page, then an update that makes it 9000."""
    original = text_pdf("Quote Q-2026-0001", "Total: 1000 EUR")
    return incremental_update(original, 4, stream(_text_ops(["Quote Q-2026-0001", "Total: 9000 EUR"])))


def signed_then(changed: bool) -> bytes:
    """A document with a (structurally) signed first revision, then one more save: either
    one that only adds an annotation-like object, or one that changes the page text."""
    objects = page_objects(stream(_text_ops(["Quote Q-2026-0001", "Total: 1000 EUR"])),
                           catalog_extra=b"/AcroForm << /Fields [8 0 R] /SigFlags 3 >> ")
    objects[8] = b"<< /FT /Sig /T (Signature1) /V 9 0 R >>"
    objects[9] = b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached " \
                 b"/ByteRange [0 0000000000 0000000000 0000000000] /Contents <00> >>"
    signed = assemble(objects)
    # the ByteRange covers the whole first revision (its real digest is not the point here)
    length = len(signed)
    signed = signed.replace(b"[0 0000000000 0000000000 0000000000]", b"[0 %010d %010d %010d]" % (length - 10, length - 5, 5))
    if changed:
        return incremental_update(signed, 4, stream(_text_ops(["Quote Q-2026-0001", "Total: 9000 EUR"])))
    return incremental_update(signed, 10, b"<< /Type /Annot /Subtype /Text /Rect [0 0 10 10] >>")
