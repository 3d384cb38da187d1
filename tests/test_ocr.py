"""Scanned pages: reported without --ocr, read by Tesseract with it."""

import io
import shutil

import pytest

from pipeline.config import IngestParams, SegmentParams
from pipeline.errors import IngestError
from pipeline.extract import extract_one
from pipeline.ingest import read_document
from tests.conftest import make_canvas_pdf

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="Tesseract is not installed (make install)")

LINES = ["Kent Police response to the super-complaint",
         "Every referral to the National Referral Mechanism is checked by the",
         "modern slavery coordinator before it is submitted to the Home Office.",
         "Victim navigators support survivors before and after a referral."]


def scanned_pages(dpi):
    """The two pages of a short letter, rasterised as a scanner would."""
    import pypdfium2 as pdfium

    text_pdf = make_canvas_pdf([[(100 + 22 * i, line) for i, line in enumerate(LINES)],
                                [(100, "Page two: officers record the duty to notify.")]],
                               font_size=12)
    pdf = pdfium.PdfDocument(text_pdf)
    return [pdf[i].render(scale=dpi / 72, grayscale=True).to_pil() for i in range(len(pdf))]


def scanned_pdf(tmp_path, dpi=200):
    """The letter as an image-only PDF (no text layer)."""
    images = scanned_pages(dpi)
    out = tmp_path / "Kent Police scanned letter.pdf"
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=float(dpi), save_all=True, append_images=images[1:])
    out.write_bytes(buffer.getvalue())
    return out


def test_without_ocr_a_scanned_pdf_is_a_clear_error_that_suggests_ocr(tmp_path):
    with pytest.raises(IngestError, match="image-only PDF.*--ocr"):
        read_document(scanned_pdf(tmp_path), params=IngestParams(ocr=False))


@needs_tesseract
def test_with_ocr_scanned_pages_are_read_with_page_numbers_and_confidence(tmp_path):
    path = scanned_pdf(tmp_path)
    doc = read_document(path, params=IngestParams(ocr=True))
    assert set(doc.ocr_pages) == {1, 2} and min(doc.ocr_pages.values()) > 60
    assert "National Referral Mechanism" in doc.text
    assert {b.page for b in doc.blocks} == {1, 2}
    out = extract_one(path, ingest=IngestParams(ocr=True), seg=SegmentParams())
    assert out.result.status in ("ok", "warning") and out.result.ocr_pages == 2
    assert out.result.ocr_confidence is not None and out.result.ocr_confidence > 60
    assert out.passages and all(p.source == "ocr" for p in out.passages)
    assert any(p.page == 2 and "duty to notify" in p.text for p in out.passages)


@needs_tesseract
def test_low_confidence_pages_are_flagged_for_review(tmp_path):
    path = scanned_pdf(tmp_path)
    out = extract_one(path, ingest=IngestParams(ocr=True, ocr_min_confidence=101),
                      seg=SegmentParams())
    assert "low confidence" in out.result.reason


def _page_image(lines, *, width=1700, height=900, table=False):
    """A white page with text lines (and, for ``table``, ruled cell borders) drawn on it."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 34)
    except OSError:
        font = ImageFont.load_default(size=34)
    for i, line in enumerate(lines):
        draw.text((120, 120 + 60 * i), line, fill=0, font=font)
    if table:
        draw.rectangle([90, 95, width - 90, 120 + 60 * len(lines)], outline=140, width=3)
        draw.line([(width // 2, 95), (width // 2, 120 + 60 * len(lines))], fill=140, width=3)
    return image


def test_skew_angle_finds_how_far_a_page_was_turned():
    from pipeline.ingest.ocr import skew_angle

    page = _page_image(LINES * 2)
    assert abs(skew_angle(page)) <= 0.1
    for turned in (-1.5, 0.8, 2.2):
        tilted = page.rotate(turned, fillcolor=255, expand=False)
        assert skew_angle(tilted) == pytest.approx(-turned, abs=0.2)


def test_clean_scan_whitens_table_rules_but_keeps_the_text():
    import numpy as np

    from pipeline.ingest.ocr import clean_scan

    page = _page_image(["Referral checked", "Victim supported"], table=True)
    cleaned = np.asarray(clean_scan(page))
    # The vertical rule down the middle of the table is gone ...
    assert (cleaned[150:200, 850 - 4:850 + 4] < 200).sum() == 0
    assert (np.asarray(page)[150:200, 850 - 4:850 + 4] < 200).sum() > 0
    # ... and the letters are not.
    assert (cleaned[120:160, 120:800] < 128).sum() > 0.8 * (np.asarray(page)[120:160, 120:800]
                                                             < 128).sum()


@needs_tesseract
def test_a_tilted_ruled_table_reads_cell_by_cell_without_rule_marks():
    from pipeline.ingest.layout import build_lines
    from pipeline.ingest.ocr import ocr_image

    cells = ["Referral checked by coordinator", "Victims supported after referral"]
    page = _page_image(cells, table=True).rotate(1.0, fillcolor=255)
    read = ocr_image(page, pixels_per_point=300 / 72)
    lines = build_lines(read.segments)
    text = " ".join(c.text for ln in lines for c in ln.cells)
    assert "|" not in text
    assert [ln.text for ln in lines] == cells


def pasted_docx(tmp_path, dpi=200):
    """A DOCX whose body is nothing but pictures of pages (a scanned letter pasted in)."""
    import docx
    from docx.shared import Inches

    images = scanned_pages(dpi)
    document = docx.Document()
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        buffer.seek(0)
        document.add_picture(buffer, width=Inches(8.27))
        if i < len(images) - 1:
            document.add_page_break()
    out = tmp_path / "Kent Police pasted letter.docx"
    document.save(str(out))
    return out


def test_without_ocr_a_docx_of_pasted_pictures_is_a_clear_error_that_suggests_ocr(tmp_path):
    with pytest.raises(IngestError, match="image-only DOCX.*2 pasted picture.*--ocr"):
        read_document(pasted_docx(tmp_path), params=IngestParams(ocr=False))


@needs_tesseract
def test_with_ocr_a_docx_of_pasted_pictures_is_read_page_by_page(tmp_path):
    out = extract_one(pasted_docx(tmp_path), ingest=IngestParams(ocr=True), seg=SegmentParams())
    assert out.result.ocr_pages == 2 and out.result.ocr_confidence > 60
    assert any("National Referral Mechanism" in p.text and p.page == 1 for p in out.passages)
    assert any("duty to notify" in p.text and p.page == 2 for p in out.passages)
    assert all(p.source == "ocr" for p in out.passages)
