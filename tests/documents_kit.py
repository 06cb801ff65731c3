"""What the documents tests share: a quote and an invoice as the ledger would hand them
to the renderers, and what a customer does to a PDF before sending it back (type a
name, paste a signature image, fill a field, sign digitally, scan it, edit it)."""
from __future__ import annotations

import io
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from fpdf import FPDF
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, NumberObject, TextStringObject

from adapters.pdf_render.layout import Company
from closeloop.documents import issued_quote
from flows.documents import DocumentLine, InvoiceDocument, Party, QuoteDocument
from flows.invoices import InvoiceStatus
from flows.money import document_totals
from parsers import quote_layout as L

COMPANY = Company(name="Nordlicht Software GmbH", address=("Hauptstraße 1", "10115 Berlin"), country="DE",
                  vat_id="DE123456789", iban="DE89 3704 0044 0532 0130 00", bic="COBADEFFXXX",
                  email="billing@nordlicht.example")
SIGNER = "Anna Kowalska"
HASH = "3f" * 32


def quote(language: str = "en", *, lines: int = 2, version: int = 2, current: int | None = None,
          currency: str = "EUR") -> QuoteDocument:
    rows = [DocumentLine(1, "Pro seat (monthly)", Decimal(25), 4000, 2300, 90000, code="SEAT"),
            DocumentLine(2, "Onboarding", Decimal(1), 150000, 2300, 135000, code="SETUP")]
    rows += [DocumentLine(n, f"Training day {n}", Decimal("1.5"), 80000, 800, 108000, code="TRAIN")
             for n in range(3, lines + 1)]
    return _quote(rows[:lines], language, version, current, currency)


def _quote(rows: list[DocumentLine], language: str, version: int, current: int | None,
           currency: str) -> QuoteDocument:
    totals = document_totals(currency, ((l.net, l.tax_rate_bp) for l in rows))
    return QuoteDocument(
        number="Q-2026-0042", version=version, current_version=current or version, content_hash=HASH,
        currency=currency, language=language,
        customer=Party("Kowalski Logistics Sp. z o.o.", "PL", "PL5260001246"),
        signer=Party(SIGNER, "PL", None, SIGNER, "anna@kowalski.example"), lines=tuple(rows),
        taxes=totals.taxes, net=totals.net, tax=totals.tax, discount_bp=1000, issued_on=date(2026, 3, 2),
        valid_until=date(2026, 4, 1), payment_terms_days=30)


def tampered(document: QuoteDocument, **changes: object) -> QuoteDocument:
    """The same quote (number, version, hash) with its content edited, as a customer's
    PDF editor would leave it."""
    return replace(document, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _EditedTotal(QuoteDocument):
    edited_gross: int = 0

    @property
    def gross(self) -> int:  # type: ignore[override]
        return self.edited_gross


def with_total(document: QuoteDocument, gross: int) -> QuoteDocument:
    """The quote with only its total edited."""
    return _EditedTotal(**{f.name: getattr(document, f.name) for f in fields(document)}, edited_gross=gross)


def invoice(language: str = "en", *, paid: int = 0) -> InvoiceDocument:
    rows = (DocumentLine(1, "Pro seat", Decimal(25), 4000, 2300, 90000, period_start=date(2026, 3, 1),
                         period_end=date(2026, 4, 1)),
            DocumentLine(2, "Onboarding", Decimal(1), 150000, 2300, 135000))
    totals = document_totals("EUR", ((l.net, l.tax_rate_bp) for l in rows))
    return InvoiceDocument(
        number="INV-2026-000042", status=InvoiceStatus.ISSUED, currency="EUR", language=language,
        customer=Party("Kowalski Logistics Sp. z o.o.", "PL", "PL5260001246", "Księgowość", "faktury@kowalski.example"),
        lines=rows, taxes=totals.taxes, net=totals.net, tax=totals.tax, amount_paid=paid,
        issued_on=date(2026, 3, 3), due_on=date(2026, 4, 2), payment_terms_days=30, quote_number="Q-2026-0042")


def issued(document: QuoteDocument):  # type: ignore[no-untyped-def]
    return issued_quote(document)


# --- what customers do to a PDF --------------------------------------------------------

def overlay(pdf: bytes, marks: dict[int, list[tuple[L.Box, str]]], images: dict[int, list[L.Box]] | None = None) -> bytes:
    """Stamp text (and signature images) into boxes of the given pages (1-based), as a
    PDF editor or a 'fill & sign' tool does."""
    reader = PdfReader(io.BytesIO(pdf))
    writer = PdfWriter(clone_from=reader)
    images = images or {}
    for number in sorted(set(marks) | set(images)):
        stamp = FPDF(unit="pt", format="A4")
        stamp.add_page()
        stamp.set_font("Helvetica", size=11)
        for box, text in marks.get(number, []):
            stamp.set_xy(box.x0 + 8, box.top + 8)
            stamp.cell(box.x1 - box.x0 - 16, 14, text)
        for box in images.get(number, []):
            stamp.image(scribble(), x=box.x0 + 10, y=box.top + 8, w=box.x1 - box.x0 - 20, h=box.bottom - box.top - 16)
        writer.pages[number - 1].merge_page(PdfReader(io.BytesIO(bytes(stamp.output()))).pages[0])
    return _bytes(writer)


def cover_and_type(pdf: bytes, box: L.Box, text: str) -> bytes:
    """A white box over a figure and a new one typed on it: the oldest PDF 'edit'."""
    reader = PdfReader(io.BytesIO(pdf))
    writer = PdfWriter(clone_from=reader)
    layer = FPDF(unit="pt", format="A4")
    layer.add_page()
    layer.set_fill_color(255, 255, 255)
    layer.rect(box.x0, box.top, box.x1 - box.x0, box.bottom - box.top, style="F")
    layer.set_font("Helvetica", "B", 10)
    layer.set_xy(box.x0, box.top)
    layer.cell(box.x1 - box.x0 - 4, box.bottom - box.top, text, align="R")
    writer.pages[0].merge_page(PdfReader(io.BytesIO(bytes(layer.output()))).pages[0])
    return _bytes(writer)


def sign_typed(pdf: bytes, pages: int, *, name: str = SIGNER, skip: tuple[int, ...] = ()) -> bytes:
    marks = {n: [(L.INITIALS, "AK")] for n in range(1, pages) if n not in skip}
    if pages not in skip:
        marks[pages] = [(L.SIGNATURE, f"/s/ {name}"), (L.NAME, name), (L.DATE, "2026-03-04")]
    return overlay(pdf, marks)


def scribble() -> io.BytesIO:
    image = Image.new("RGB", (300, 80), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(10, 60), (60, 15), (90, 65), (140, 20), (200, 60), (280, 25)], fill="navy", width=5)
    out = io.BytesIO()
    image.save(out, "PNG")
    out.seek(0)
    return out


def fill_field(pdf: bytes, page: int, box: L.Box, value: str, name: str = "signature") -> bytes:
    """A form field in the box, filled in (what a PDF viewer's form filling leaves)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    height = L.PAGE_HEIGHT
    widget = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
        NameObject("/FT"): NameObject("/Tx"), NameObject("/T"): TextStringObject(name),
        NameObject("/V"): TextStringObject(value), NameObject("/F"): NumberObject(4),
        NameObject("/Rect"): ArrayObject([FloatObject(box.x0 + 4), FloatObject(height - box.bottom + 4),
                                          FloatObject(box.x1 - 4), FloatObject(height - box.top - 4)])})
    ref = writer._add_object(widget)
    target = writer.pages[page - 1]
    annots = target.get("/Annots")
    if annots is None:
        target[NameObject("/Annots")] = ArrayObject([ref])
    else:
        annots.get_object().append(ref)
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): ArrayObject([ref])})
    return _bytes(writer)


def scanned(pdf: bytes, *, ink: bool, faint: bool = False) -> bytes:
    """Printed, (signed in ink,) scanned: every page an image, nothing else."""
    import pypdfium2
    document = pypdfium2.PdfDocument(pdf)
    pages = []
    for index in range(len(document)):
        image = document[index].render(scale=2.0).to_pil().convert("RGB")
        if ink:
            box = L.SIGNATURE if index == len(document) - 1 else L.INITIALS
            draw = ImageDraw.Draw(image)
            x0, y0, x1, y1 = (v * 2 for v in (box.x0, box.top, box.x1, box.bottom))
            if faint:  # a speck of dust or a stray pen touch, not a signature
                draw.ellipse([(x0 + 40, y0 + 40), (x0 + 60, y0 + 60)], fill=(30, 30, 30))
            else:
                draw.line([(x0 + 20, y1 - 20), (x0 + 60, y0 + 20), (x0 + 100, y1 - 25), (x1 - 30, y0 + 25)],
                          fill=(20, 20, 90), width=6)
        pages.append(image)
    document.close()
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=144.0)
    return out.getvalue()


def self_signed(name: str = SIGNER):  # type: ignore[no-untyped-def]
    """A signer with a fresh self-signed certificate (pyHanko's SimpleSigner)."""
    from asn1crypto import keys, x509
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(cx509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(cx509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    certificate = x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    private = keys.PrivateKeyInfo.load(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return signers.SimpleSigner(signing_cert=certificate, signing_key=private,
                                cert_registry=SimpleCertificateStore.from_certs([certificate]))


def sign_digitally(pdf: bytes, signer) -> bytes:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    box = L.SIGNATURE
    spec = fields.SigFieldSpec("Signature1", on_page=-1,
                               box=(int(box.x0), int(L.PAGE_HEIGHT - box.bottom), int(box.x1), int(L.PAGE_HEIGHT - box.top)))
    out = io.BytesIO()
    signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer,
                     new_field_spec=spec, output=out)
    return out.getvalue()


def edit_incrementally(pdf: bytes, text: str = "Total 9,000.00") -> bytes:
    """Append an update that draws new text on page 1 (as an editor saving 'incrementally')."""
    stamp = FPDF(unit="pt", format="A4")
    stamp.add_page()
    stamp.set_font("Helvetica", size=12)
    stamp.set_xy(300, 300)
    stamp.cell(200, 14, text)
    writer = PdfWriter(io.BytesIO(pdf), incremental=True)
    writer.pages[0].merge_page(PdfReader(io.BytesIO(bytes(stamp.output()))).pages[0])
    edited = _bytes(writer)
    assert edited.startswith(pdf)  # an update appended, the signed bytes untouched
    return edited


def docusign_completed(pdf: bytes, pages: int) -> bytes:
    """What DocuSign hands back: its envelope stamp on every page, the signature image at
    the /sn1/ anchor, and a certificate of completion appended."""
    envelope = "Docusign Envelope ID: 5F3B1C2D-7A8E-4B9C-8D1E-2F3A4B5C6D7E"
    stamped = overlay(pdf, {n: [(L.Box(20, 6, 400, 20), envelope)] for n in range(1, pages + 1)},
                      images={pages: [L.SIGNATURE]})
    certificate = FPDF(unit="pt", format="A4")
    certificate.add_page()
    certificate.set_font("Helvetica", size=14)
    certificate.cell(400, 20, "Certificate Of Completion")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(stamped)))
    writer.append(PdfReader(io.BytesIO(bytes(certificate.output()))))
    return _bytes(writer)


def _bytes(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
