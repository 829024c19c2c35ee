"""The invoice's shipped font: what it prints, in which scripts, and the same bytes
from any process.

A customer name in Greek, Cyrillic, Chinese, Japanese or Korean must print as
letters, not as the empty boxes of a missing glyph (`.notdef`), on a machine
with no font for those scripts installed: each letter must be drawn with a
glyph that has an outline, from one of the fonts shipped in
`infrastructure/rendering/fonts`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from bench.render import sample_document
from infrastructure.rendering.renderer import FONTS, InvoiceRenderer, refusing_fetcher

REPOSITORY = Path(__file__).resolve().parents[2]
NAMES = {
    "Greek": "Ελληνική Εταιρεία Α.Ε.",
    "Cyrillic": "ООО «Ромашка» Жёлтый",
    "Vietnamese": "Công ty Trách nhiệm Hữu hạn Ngọc Ánh",
    "Chinese": "北京有限公司",
    "Japanese": "株式会社テスト",
    "Korean": "한국회사",
}


def _drawn_glyphs(pdf: bytes) -> dict[str, tuple[str, bool]]:
    """Every character of the PDF's text: the font that draws it and whether its
    glyph has an outline (False for a missing glyph or an empty one)."""
    drawn: dict[str, tuple[str, bool]] = {}
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    for font_ref in page["/Resources"]["/Font"].values():
        font = font_ref.get_object()
        descendant = font["/DescendantFonts"][0].get_object()
        embedded = descendant["/FontDescriptor"]["/FontFile2"].get_object().get_data()
        glyphs = TTFont(io.BytesIO(embedded))
        order, outlines = glyphs.getGlyphOrder(), glyphs["glyf"]
        cmap = font["/ToUnicode"].get_object().get_data().decode("ascii")
        for gid, text in re.findall(r"<([0-9a-f]{4})> <([0-9a-f]+)>", cmap):
            index = int(gid, 16)
            char = bytes.fromhex(text).decode("utf-16-be")
            if char == "\uffff":  # WeasyPrint's entry for glyph 0, which no text uses
                continue
            has_outline = 0 < index < len(order) and outlines[order[index]].numberOfContours != 0
            drawn[char] = (str(font["/BaseFont"]), has_outline)
    return drawn


@pytest.mark.parametrize("script", NAMES)
def test_a_customer_name_in_any_of_the_shipped_scripts_prints_as_letters(script: str) -> None:
    name = NAMES[script]
    document = sample_document(1)
    document = dataclasses.replace(document, buyer=dataclasses.replace(document.buyer, name=name))
    drawn = _drawn_glyphs(InvoiceRenderer().render_pdf(document))
    letters = {c for c in name if not c.isspace()}
    assert {c for c in letters if c not in drawn} == set(), "characters not drawn at all"
    assert {c for c in letters if not drawn[c][1]} == set(), "characters drawn as .notdef"
    assert all("Billrun-Sans" in drawn[c][0] for c in letters)


def test_the_invoice_uses_only_the_shipped_fonts() -> None:
    drawn = _drawn_glyphs(InvoiceRenderer().render_pdf(sample_document(1)))
    assert {font.split("+", 1)[1] for font, _ in drawn.values()} == {
        "Billrun-Sans",
        "Billrun-Sans-Bold",
    }
    assert all(outline for char, (_, outline) in drawn.items() if not char.isspace())


def test_the_renderer_reads_the_shipped_fonts_and_refuses_any_other_file() -> None:
    from infrastructure.rendering.renderer import RefusedFetch

    fetcher = refusing_fetcher()
    font = fetcher.fetch("billrun-font:BillrunSans-Regular.ttf")
    assert font.read() == (FONTS / "BillrunSans-Regular.ttf").read_bytes()
    for url in ("billrun-font:../templates/invoice.css", (FONTS / "README.md").as_uri()):
        with pytest.raises(RefusedFetch):
            fetcher.fetch(url)


_RENDER_BOTH = """
import sys
from bench.render import sample_document
from infrastructure.rendering.renderer import InvoiceRenderer
renderer, document = InvoiceRenderer(), sample_document(7)
pdf, facturx = renderer.render_pdf(document), renderer.render_facturx(document)
sys.stdout.buffer.write(pdf + b"\\n--\\n" + facturx)
"""


def test_two_processes_render_the_same_invoice_to_the_same_pdf_and_factur_x_bytes() -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "PYTHONHASHSEED": "random"}
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _RENDER_BOTH],
            cwd=REPOSITORY,
            env=env,
            capture_output=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    pdf, facturx = outputs[0].split(b"\n--\n")
    assert pdf.startswith(b"%PDF-") and facturx.startswith(b"%PDF-")
    assert outputs[0] == outputs[1]
