"""OCR for pages with no text layer: Tesseract (Debian's ``tesseract-ocr``) via pytesseract.

A scanned page is rendered to an image, read by Tesseract word by word, and turned into the
same positioned :class:`~pipeline.ingest.layout.Segment` objects a PDF's text layer gives,
so furniture removal, headings, paragraphs and tables work as for any other page. Each page
keeps its mean word confidence (0–100).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .layout import Segment

if TYPE_CHECKING:
    from PIL.Image import Image

# Tesseract's own threads only fight the batch's worker processes on a small machine.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

INSTALL_HINT = ("install Tesseract with English data (`make install`, or "
                "`apt-get install tesseract-ocr tesseract-ocr-eng`)")


@dataclass(frozen=True)
class OcrPage:
    """What Tesseract read on one page: positioned words (in points) and their confidence."""

    segments: list[Segment]
    confidence: float  # mean word confidence, 0-100 (0 when no word was read)


def tesseract_missing(lang: str = "eng") -> str | None:
    """Why OCR cannot run here (with what to do), or None when it can."""
    if shutil.which("tesseract") is None:
        return f"Tesseract is not installed: {INSTALL_HINT}"
    try:
        import pytesseract

        if lang not in pytesseract.get_languages(config=""):
            return f"Tesseract has no '{lang}' language data: {INSTALL_HINT}"
    except Exception as e:  # a broken install: say so rather than fail on every page
        return f"Tesseract cannot run ({type(e).__name__}): {INSTALL_HINT}"
    return None


def ocr_image(image: Image, *, pixels_per_point: float, lang: str = "eng",
              timeout: float = 0) -> OcrPage:
    """Read an image of a page. Word boxes come back in points, top-left origin, so that the
    page's layout is analysed exactly like a text layer's."""
    import pytesseract

    data: dict[str, list[Any]] = pytesseract.image_to_data(
        image, lang=lang, output_type=pytesseract.Output.DICT, timeout=timeout)
    segments: list[Segment] = []
    confidences: list[float] = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        conf = float(data["conf"][i])
        if not word or conf < 0:
            continue
        left, top = data["left"][i] / pixels_per_point, data["top"][i] / pixels_per_point
        width, height = data["width"][i] / pixels_per_point, data["height"][i] / pixels_per_point
        # A word box spans ascender to descender: about the font size in points.
        segments.append(Segment(word, left, left + width, top, top + height, size=height))
        confidences.append(conf)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrPage(segments, round(mean, 1))


def ocr_pdf_page(path: Path, number: int, *, dpi: int, lang: str = "eng") -> OcrPage:
    """Render page ``number`` (1-based) of a PDF at ``dpi`` and read it."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        page = pdf[number - 1]
        try:
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
        finally:
            page.close()
    finally:
        pdf.close()
    return ocr_image(image, pixels_per_point=dpi / 72, lang=lang)
