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


def scanned_pdf(tmp_path, dpi=200):
    """A text PDF rasterised to an image and saved as an image-only PDF (no text layer)."""
    import pypdfium2 as pdfium

    text_pdf = make_canvas_pdf([[(100 + 22 * i, line) for i, line in enumerate(LINES)],
                                [(100, "Page two: officers record the duty to notify.")]],
                               font_size=12)
    pdf = pdfium.PdfDocument(text_pdf)
    images = [pdf[i].render(scale=dpi / 72, grayscale=True).to_pil() for i in range(len(pdf))]
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
