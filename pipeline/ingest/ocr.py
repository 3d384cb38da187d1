"""OCR for pages with no text layer: Tesseract (Debian's ``tesseract-ocr``) via pytesseract.

A scanned page is rendered to an image, read by Tesseract word by word, and turned into the
same positioned :class:`~pipeline.ingest.layout.Segment` objects a PDF's text layer gives,
so furniture removal, headings, paragraphs and tables work as for any other page. Each page
keeps its mean word confidence (0–100).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
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


def skew_angle(image: Image, *, max_degrees: float = 3.0) -> float:
    """The small rotation (degrees, counter-clockwise) that makes the page's text lines level.

    Projection profiles: a page turned so that its lines lie flat has rows of ink and rows of
    paper, so its row sums vary the most. Searched on a small copy, coarse then fine; a
    hand-fed scan is rarely more than a degree or two off, and Tesseract's own line finder
    copes less well with skew than with anything else a scanner does to a page."""
    import numpy as np
    from PIL import Image as PILImage

    small = image.convert("L")
    scale = 800 / max(small.size)
    if scale < 1:
        small = small.resize((max(1, int(small.width * scale)), max(1, int(small.height * scale))))
    ink = PILImage.fromarray(((np.asarray(small) < 128) * 255).astype("uint8"))

    def sharpness(angle: float) -> float:
        rows = np.asarray(ink.rotate(angle, resample=PILImage.Resampling.NEAREST),
                          dtype=np.float32).sum(axis=1)
        return float(np.square(np.diff(rows)).sum())

    coarse = max(np.arange(-max_degrees, max_degrees + 1e-9, 0.25), key=sharpness)
    fine = max(np.arange(coarse - 0.25, coarse + 0.25 + 1e-9, 0.05), key=sharpness)
    return round(float(fine), 2)


def clean_scan(image: Image) -> Image:
    """A scanned page made easier to read: turned level, and with the long ruled lines of
    tables and boxes whitened (Tesseract reads a cell border as '|' or 'l' and lets it join
    two cells' text)."""
    import numpy as np
    from PIL import Image as PILImage
    from scipy import ndimage

    page = image.convert("L")
    angle = skew_angle(page)
    if abs(angle) >= 0.05:
        page = page.rotate(angle, resample=PILImage.Resampling.BICUBIC, fillcolor=255)
    pixels = np.asarray(page).copy()
    # Rules are often printed grey, so anything clearly darker than the paper counts.
    ink = pixels < float(np.median(pixels)) - 45
    # A rule is a dark run far longer than any glyph: a third of an inch at the page's scale.
    run = max(25, page.width // 25)
    ink8 = ink.astype(np.uint8)
    rules = np.zeros_like(ink8)
    for axis in (0, 1):  # an opening by a line, with filters whose cost does not grow with it
        rules |= ndimage.maximum_filter1d(ndimage.minimum_filter1d(ink8, run, axis=axis),
                                          run, axis=axis)
    pixels[ndimage.maximum_filter(rules, size=5).astype(bool)] = 255
    return PILImage.fromarray(pixels)


# What Tesseract makes of a list bullet: a round dot reads as "e", "o" or "©", a square as "®".
_BULLET_LOOKALIKES = frozenset("eoO0«»©®°*+¢•·▪■-–")


@dataclass(frozen=True)
class _Word:
    text: str
    left: int  # pixels
    top: int
    width: int
    height: int
    conf: float

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def is_mark(self) -> bool:
        """An unsure mark with no letter or digit: dust, a speck of noise, or a bullet."""
        return self.conf < 60 and not any(ch.isalnum() for ch in self.text)


@dataclass(frozen=True)
class _Line:
    """One of Tesseract's lines: its font box (pixels, from the baseline and the font size
    Tesseract estimated for the whole line) and its words."""

    top: int
    bottom: int
    words: list[_Word]

    @property
    def height(self) -> int:
        return self.bottom - self.top


_LINE_CLASSES = ("ocr_line", "ocr_header", "ocr_caption", "ocr_textfloat")
_TITLE_FIELD = re.compile(r"(\w+) ([^;]+)")


def _title(element: Any) -> dict[str, list[float]]:
    """hOCR's ``title`` properties: ``bbox 1 2 3 4; x_size 42`` → {"bbox": [1, 2, 3, 4], ...}."""
    return {m.group(1): [float(v) for v in m.group(2).split()]
            for m in _TITLE_FIELD.finditer(element.get("title", ""))}


def _hocr_lines(hocr: bytes) -> list[_Line]:
    """Tesseract's lines in reading order, from its hOCR output.

    A line's box is its font box: from the baseline (``baseline slope offset``, measured
    from the bottom of the line's bbox), up by the font size less the descender
    (``x_size``, ``x_descenders``), and down by the descender. That is what a text layer
    gives, whatever letters the line happens to hold: a line without descenders, a word
    joined to a speck, or a tall capital does not move it."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(hocr)
    lines: list[_Line] = []
    for element in root.iter():
        if element.get("class") not in _LINE_CLASSES:
            continue
        title = _title(element)
        x0, _, _, y1 = title["bbox"]
        slope, offset = title.get("baseline", [0.0, 0.0])
        size = title.get("x_size", [0.0])[0]
        descent = title.get("x_descenders", [0.0])[0]
        words = []
        for span in element.iter():
            if span.get("class") != "ocrx_word":
                continue
            text = "".join(span.itertext()).strip()
            word = _title(span)
            left, top, right, bottom = (int(v) for v in word["bbox"])
            conf = word.get("x_wconf", [0.0])[0]
            if text:
                words.append(_Word(text, left, top, right - left, bottom - top, conf))
        if not words:
            continue
        baseline = y1 + offset + slope * (words[0].left - x0)
        if size <= 0:  # no estimate: the words' own extent
            top_px, bottom_px = min(w.top for w in words), max(w.top + w.height for w in words)
        else:
            top_px, bottom_px = round(baseline - (size - descent)), round(baseline + descent)
        lines.append(_Line(top_px, bottom_px, words))
    return lines


def _starts_with_bullet(words: list[_Word], line_height: int) -> bool:
    """A small mark at the start of a line, set apart from the text by a gap: a bullet."""
    if len(words) < 2:
        return False
    mark, following = words[0], words[1]
    # A bullet is a dot or a square: neither a dash nor a smear, and smaller than a capital.
    dot_like = (0.2 * line_height <= min(mark.width, mark.height)
                and max(mark.width, mark.height) <= 0.8 * line_height)
    looks_like = len(mark.text.rstrip(".")) == 1 and mark.text.rstrip(".") in _BULLET_LOOKALIKES
    return ((looks_like or mark.is_mark) and dot_like
            and following.left - mark.right >= max(mark.width, 0.4 * line_height))


def _ink_share(pixels: Any, words: list[_Word]) -> float:
    """The share of dark pixels inside the words' boxes: bold type is denser."""
    ink = sum(int((pixels[w.top:w.top + w.height, w.left:w.right] < 128).sum()) for w in words)
    return ink / max(sum(w.width * w.height for w in words), 1)


def ocr_image(image: Image, *, pixels_per_point: float, lang: str = "eng",
              timeout: float = 0) -> OcrPage:
    """Read an image of a page. Word boxes come back in points, top-left origin, so that the
    page's layout is analysed exactly like a text layer's: a line keeps Tesseract's line and
    its font box (:func:`_hocr_lines`), a list bullet is a bullet, and a line in bold type is
    marked bold (headings)."""
    import numpy as np
    import pytesseract

    page = clean_scan(image)
    hocr: bytes = pytesseract.image_to_pdf_or_hocr(page, lang=lang, extension="hocr",
                                                   timeout=timeout)
    pixels = np.asarray(page)
    lines = _hocr_lines(hocr)
    text_words = [[w for w in line.words if not w.is_mark] for line in lines]
    ink = [_ink_share(pixels, ws) if ws else 0.0 for ws in text_words]
    body_ink = _median_float([share for share, ws in zip(ink, text_words, strict=True)
                              if len(ws) >= 3])
    segments: list[Segment] = []
    confidences: list[float] = []
    for line, kept, share in zip(lines, text_words, ink, strict=True):
        if not kept:
            continue
        # Specks of a few pixels go first, so that a bullet behind one is still first.
        words = [w for w in line.words
                 if not (w.is_mark and max(w.width, w.height) < 0.15 * line.height)]
        top, bottom = line.top / pixels_per_point, line.bottom / pixels_per_point
        bold = body_ink > 0 and share >= 1.25 * body_ink
        if _starts_with_bullet(words, line.height):
            words = [replace(words[0], text="\u2022"), *words[1:]]
            kept = [words[0], *(w for w in words[1:] if not w.is_mark)]
        for w in kept:
            left = w.left / pixels_per_point
            segments.append(Segment(w.text, left, left + w.width / pixels_per_point, top, bottom,
                                    size=bottom - top, bold=bold))
            if not w.is_mark:  # a bullet read as an unsure mark says nothing of the text
                confidences.append(w.conf)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrPage(segments, round(mean, 1))


def _median_float(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


def ocr_pdf_page(path: Path, number: int, *, dpi: int, lang: str = "eng",
                 timeout: float = 0) -> OcrPage:
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
    return ocr_image(image, pixels_per_point=dpi / 72, lang=lang, timeout=timeout)
