"""Write into an existing PDF's boxes: what a customer's 'fill & sign' tool does to a
quote (a typed name and date, a pasted signature image). The demo uses it to play the
customer; it keeps every page's content and metadata, adding one layer on top."""
from __future__ import annotations

import io
from dataclasses import dataclass

from fpdf import FPDF
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter

from parsers.quote_layout import PAGE_HEIGHT, PAGE_WIDTH, Box


@dataclass(frozen=True)
class Mark:
    page: int                 # 1-based
    box: Box
    text: str | None = None   # typed text; None: a drawn signature image
    size: float = 11


def stamp(pdf: bytes, marks: list[Mark]) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    for page in sorted({m.page for m in marks}):
        layer = FPDF(unit="pt", format=(PAGE_WIDTH, PAGE_HEIGHT))
        layer.add_page()
        layer.set_font("Helvetica", size=11)
        for mark in (m for m in marks if m.page == page):
            box = mark.box
            if mark.text is None:
                layer.image(_scribble(), x=box.x0 + 10, y=box.top + 8, w=box.x1 - box.x0 - 20,
                            h=box.bottom - box.top - 16)
            else:
                layer.set_font("Helvetica", size=mark.size)
                layer.set_text_color(10, 20, 110)
                layer.set_xy(box.x0 + 8, box.top + 6)
                layer.cell(box.x1 - box.x0 - 16, box.bottom - box.top - 12, mark.text)
        writer.pages[page - 1].merge_page(PdfReader(io.BytesIO(bytes(layer.output()))).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _scribble() -> io.BytesIO:
    image = Image.new("RGB", (300, 80), "white")
    ImageDraw.Draw(image).line([(10, 60), (50, 12), (80, 66), (130, 18), (175, 62), (230, 20), (290, 48)],
                               fill=(10, 20, 110), width=5)
    out = io.BytesIO()
    image.save(out, "PNG")
    out.seek(0)
    return out
