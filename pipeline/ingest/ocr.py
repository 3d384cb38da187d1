"""OCR for pages with no text layer: Tesseract (Debian's ``tesseract-ocr``) via pytesseract.

A scanned page is rendered to an image, read by Tesseract word by word, and turned into the
same positioned :class:`~pipeline.ingest.layout.Segment` objects a PDF's text layer gives,
so furniture removal, headings, paragraphs and tables work as for any other page. Each page
keeps its mean word confidence (0–100).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import astuple, dataclass
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


def _median(values: list[int]) -> int:
    return sorted(values)[len(values) // 2]


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


def _words_by_line(data: dict[str, list[Any]]) -> list[list[_Word]]:
    """Tesseract's words grouped into its own lines, in reading order."""
    lines: dict[tuple[int, int, int], list[_Word]] = {}
    for i, text in enumerate(data["text"]):
        text, conf = (text or "").strip(), float(data["conf"][i])
        if text and conf >= 0:
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            lines.setdefault(key, []).append(_Word(text, data["left"][i], data["top"][i],
                                                   data["width"][i], data["height"][i], conf))
    return list(lines.values())


def _starts_with_bullet(words: list[_Word], line_height: int) -> bool:
    """A small mark at the start of a line, set apart from the text by a gap: a bullet."""
    if len(words) < 2:
        return False
    mark, following = words[0], words[1]
    size = max(mark.width, mark.height)
    looks_like = len(mark.text.rstrip(".")) == 1 and mark.text.rstrip(".") in _BULLET_LOOKALIKES
    return ((looks_like or mark.is_mark) and 0.2 * line_height <= size <= line_height
            and following.left - mark.right >= max(mark.width, 0.4 * line_height))


def _ink_share(pixels: Any, words: list[_Word]) -> float:
    """The share of dark pixels inside the words' boxes: bold type is denser."""
    ink = sum(int((pixels[w.top:w.top + w.height, w.left:w.right] < 128).sum()) for w in words)
    return ink / max(sum(w.width * w.height for w in words), 1)


def ocr_image(image: Image, *, pixels_per_point: float, lang: str = "eng",
              timeout: float = 0) -> OcrPage:
    """Read an image of a page. Word boxes come back in points, top-left origin, so that the
    page's layout is analysed exactly like a text layer's: a line keeps Tesseract's line, a
    list bullet is a bullet, and a line in bold type is marked bold (headings)."""
    import numpy as np
    import pytesseract

    page = clean_scan(image)
    data: dict[str, list[Any]] = pytesseract.image_to_data(
        page, lang=lang, output_type=pytesseract.Output.DICT, timeout=timeout)
    pixels = np.asarray(page)
    lines = _words_by_line(data)
    # A line's box runs from its words' usual top to their usual bottom (medians: a stray mark
    # must not stretch it). A line without descenders ("since launch.") would look shorter
    # and further from the next than it is, and break a paragraph or a table cell in two; so
    # a short line gets the page's usual line height from its top, as a font box would.
    text_words = [[w for w in words if not w.is_mark] for words in lines]
    heights = sorted(_median([w.top + w.height for w in ws]) - _median([w.top for w in ws])
                     for ws in text_words if len(ws) >= 3)
    usual = heights[(3 * len(heights)) // 4] if heights else 0
    ink = [_ink_share(pixels, ws) if ws else 0.0 for ws in text_words]
    body_ink = _median_float([share for share, ws in zip(ink, text_words, strict=True)
                              if len(ws) >= 3])
    segments: list[Segment] = []
    confidences: list[float] = []
    for words, kept, share in zip(lines, text_words, ink, strict=True):
        if not kept:
            continue
        top_px = _median([w.top for w in kept])
        bottom_px = max(_median([w.top + w.height for w in kept]), top_px + usual)
        top, bottom = top_px / pixels_per_point, bottom_px / pixels_per_point
        bold = body_ink > 0 and share >= 1.25 * body_ink
        if _starts_with_bullet(words, usual):
            words = [_Word("•", *astuple(words[0])[1:]), *words[1:]]
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
