"""PDF readers: pypdfium2 (fast, default) and pdfplumber. Both yield :class:`PageText`.

Each page is closed as soon as it has been read: pdfplumber without ``page.close()`` was
measured at 1.3 GB peak on a 200-page file, 47 MB with it.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import IngestError
from .layout import PageText, Segment

if TYPE_CHECKING:
    import pypdfium2 as pdfium

log = logging.getLogger(__name__)

ENGINES = ("pdfium", "plumber")

# Four C doubles that pdfium writes a box into, made once per page and reused.
Box = tuple[ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double]


def _new_box() -> Box:
    return (ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double())


def _utf16(buffer: ctypes.Array[ctypes.c_ushort], n_units: int) -> str:
    """The first ``n_units`` UTF-16 units pdfium wrote into ``buffer``, as text (pdfium's
    counts include the terminating NUL)."""
    text = ctypes.string_at(buffer, 2 * max(n_units, 0)).decode("utf-16-le", errors="ignore")
    return text[:-1] if text.endswith("\x00") else text


def _deadline_check(path: Path, start: float, timeout: float, page_no: int) -> None:
    if time.monotonic() - start > timeout:
        raise IngestError(path, f"took longer than {timeout:g} s (ingest.timeout_seconds); "
                                f"stopped at page {page_no}")


def _explain_open_error(path: Path, err: Exception) -> IngestError:
    msg = str(err).lower()
    name = type(err).__name__.lower()
    if "password" in msg or "encrypt" in msg or "password" in name or "encrypt" in name:
        return IngestError(path, "encrypted PDF: it needs a password; ask the force for an "
                                 "unprotected copy")
    return IngestError(path, f"corrupt PDF: cannot be parsed ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:120]}); ask for a fresh export")


def read_pdfium(path: Path, *, max_pages: int, timeout: float) -> Iterator[PageText]:
    """Pages as positioned text runs, read with pypdfium2."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    start = time.monotonic()
    try:
        pdf = pdfium.PdfDocument(str(path))
    except MemoryError:
        raise  # the worker reports it as a breach of ingest.max_memory_mb
    except Exception as e:  # pdfium raises PdfiumError for every failure; classify the message
        raise _explain_open_error(path, e) from e
    try:
        n = len(pdf)
        if n > max_pages:
            raise IngestError(path, f"{n} pages is over the limit of {max_pages} "
                                    "(ingest.max_pages)")
        for i in range(n):
            _deadline_check(path, start, timeout, i + 1)
            try:
                yield _pdfium_page(pdf, i, pdfium_c)
            except MemoryError:
                raise
            except Exception:  # one damaged page must not lose the others; reported as broken
                log.warning("%s: page %d could not be read", path, i + 1)
                yield PageText(i + 1, 595.0, 842.0, [], 0, 0, broken=True)
    finally:
        pdf.close()


def _pdfium_page(pdf: pdfium.PdfDocument, i: int, pdfium_c: ModuleType) -> PageText:
    """One page's text runs (pdfium's text rectangles) with their font size and weight.

    pdfium's C functions are called directly: the helpers' wrappers asked for each run's
    text twice (once for its length) and built an object per page object, which was most
    of the reading time on a plain page. A run's text is cut from the page's text, read in
    one call (:func:`_run_text`), where ``FPDFText_GetBoundedText`` would scan the page's
    every character for each run."""

    page = pdf[i]
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            raw = textpage.raw
            n_chars = textpage.count_chars()
            # A run's text is at most the page's text; room for pdfium's generated characters.
            size_limit = 2 * n_chars + 64
            buffer = (ctypes.c_ushort * size_limit)()
            page_text = _utf16(buffer, pdfium_c.FPDFText_GetText(raw, 0, n_chars, buffer)
                               if n_chars else 0)
            if len(page_text) != n_chars:  # a character pdfium could not encode: no slicing
                page_text = ""
            box = _new_box()
            left_, top_, right_, bottom_ = box
            rects = []
            for r in range(textpage.count_rects()):
                pdfium_c.FPDFText_GetRect(raw, r, left_, top_, right_, bottom_)
                rects.append((left_.value, top_.value, right_.value, bottom_.value))
            # Every rectangle is read before any run's text: finding a run's characters
            # recounts pdfium's rectangles over a range, which replaces the page's.
            segments = []
            next_char = 0  # where the next run's text should start in pdfium's character list
            for left, top, right, bottom in rects:
                idx = _first_char_at(raw, pdfium_c, next_char, n_chars, left + 0.5,
                                     (top + bottom) / 2, box)
                text = _run_text(raw, pdfium_c, page_text, idx, (left, top, right, bottom), box)
                if text is None:  # not cut from the page's text: the slow, exact way
                    n = pdfium_c.FPDFText_GetBoundedText(raw, left, top, right, bottom,
                                                         buffer, size_limit)
                    text = (textpage.get_text_bounded(left, bottom, right, top)
                            if n >= size_limit  # cannot happen on a sane page
                            else _utf16(buffer, n))
                run_length = len(text)
                text = text.replace("\r", " ").replace("\n", " ")
                if text.strip():
                    next_char = (idx if idx >= 0 else next_char) + run_length
                    size, bold = 0.0, False
                    if idx >= 0:
                        size = pdfium_c.FPDFText_GetFontSize(raw, idx)
                        bold = pdfium_c.FPDFText_GetFontWeight(raw, idx) >= 600
                    segments.append(Segment(text, left, right, height - top, height - bottom,
                                            size, bold))
        finally:
            textpage.close()
        n_images = _count_images(page.raw, pdfium_c)
    finally:
        page.close()
    return PageText(i + 1, width, height, segments, n_chars, n_images)


def _run_text(raw_textpage: object, pdfium_c: ModuleType, page_text: str, start: int,
              rect: tuple[float, float, float, float], box: Box | None = None) -> str | None:
    """The text of the run whose rectangle is ``rect`` and whose first character is
    ``start``, as ``FPDFText_GetBoundedText`` gives it, cut from the page's text; None when
    it cannot be told this way.

    pdfium makes its rectangles from consecutive characters of one text object, so a run is
    a range of the page's characters: the longest from ``start`` that pdfium counts as one
    rectangle (the generated characters after it included), less its trailing generated
    line ends. The range's rectangle must be ``rect`` exactly. A handful of calls, each over
    the run's characters only, instead of a scan of the page's every character; the text is
    the same on every PDF of data/raw, the examples, the tests and the benchmark."""
    n_chars = len(page_text)
    if start < 0 or start >= n_chars:
        return None

    def one_rect(k: int) -> bool:
        return int(pdfium_c.FPDFText_CountRects(raw_textpage, start, k)) <= 1

    # First guess: to the start of the next line, where most runs end.
    line_end = page_text.find("\n", start)
    guess = (line_end + 1 if line_end >= 0 else n_chars) - start
    if one_rect(guess):  # then gallop on: one rectangle up to lo, two or more at hi
        lo, step = guess, 1
        while lo + step <= n_chars - start and one_rect(lo + step):
            lo, step = lo + step, 2 * step
        hi = min(lo + step, n_chars - start + 1)
    else:
        lo, hi = 0, guess
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if one_rect(mid):
            lo = mid
        else:
            hi = mid
    if lo < 1 or pdfium_c.FPDFText_CountRects(raw_textpage, start, lo) != 1:
        return None
    left, top, right, bottom = box or _new_box()
    pdfium_c.FPDFText_GetRect(raw_textpage, 0, left, top, right, bottom)
    if (left.value, top.value, right.value, bottom.value) != rect:
        return None
    end = start + lo
    while (end > start and page_text[end - 1] in "\r\n"
           and pdfium_c.FPDFText_IsGenerated(raw_textpage, end - 1) == 1):
        end -= 1
    text = page_text[start:end]
    # A hyphen that ends a line is U+FFFE in the page's text and \x02 in a rectangle's,
    # which is what hyphenation repair reads: such a run is read the slow way.
    return None if "\ufffe" in text else text


def _first_char_at(raw_textpage: object, pdfium_c: ModuleType, guess: int, n_chars: int,
                   x: float, y: float, box: Box | None = None) -> int:
    """The character at the start of a run, as ``FPDFText_GetCharIndexAtPos(x, y, 2, 2)``
    finds it (the first character whose box holds the point, else the nearest within 2
    points; -1 if none), asking first about the character where the run should start
    (pdfium lists characters in run order, with the spaces and line ends it generated
    between runs): one box read instead of pdfium's scan of the page's every character, 16
    µs a run. If the guess's box does not hold the point, pdfium is asked. The two differ
    only where an earlier character's box holds the same point (glyphs drawn over each
    other); every PDF of data/raw, the fixtures, the examples and the benchmark reads the
    same either way."""
    i = guess
    while i < n_chars and (pdfium_c.FPDFText_IsGenerated(raw_textpage, i) == 1
                           or pdfium_c.FPDFText_GetUnicode(raw_textpage, i) in (10, 13, 32)):
        i += 1
    if i < n_chars:
        left, right, bottom, top = box or _new_box()
        if pdfium_c.FPDFText_GetCharBox(raw_textpage, i, left, right, bottom, top):
            x0, x1 = sorted((left.value, right.value))
            y0, y1 = sorted((bottom.value, top.value))
            if x0 <= x <= x1 and y0 <= y <= y1:
                return i
    index: int = pdfium_c.FPDFText_GetCharIndexAtPos(raw_textpage, x, y, 2, 2)
    return index


def _count_images(raw_page: object, pdfium_c: ModuleType) -> int:
    """Image objects on the page and inside its form objects (two levels deep)."""
    n = 0
    for j in range(pdfium_c.FPDFPage_CountObjects(raw_page)):
        obj = pdfium_c.FPDFPage_GetObject(raw_page, j)
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            n += 1
        elif kind == pdfium_c.FPDF_PAGEOBJ_FORM:
            n += sum(pdfium_c.FPDFPageObj_GetType(pdfium_c.FPDFFormObj_GetObject(obj, k))
                     == pdfium_c.FPDF_PAGEOBJ_IMAGE
                     for k in range(pdfium_c.FPDFFormObj_CountObjects(obj)))
    return n


def read_plumber(path: Path, *, max_pages: int, timeout: float) -> Iterator[PageText]:
    """Pages as positioned words, read with pdfplumber (pages closed after use)."""
    import pdfplumber

    start = time.monotonic()
    try:
        pdf = pdfplumber.open(str(path))
        n = len(pdf.pages)
    except MemoryError:
        raise
    except Exception as e:  # pdfminer raises many types; classify the message
        raise _explain_open_error(path, e) from e
    try:
        if n > max_pages:
            raise IngestError(path, f"{n} pages is over the limit of {max_pages} "
                                    "(ingest.max_pages)")
        for i, page in enumerate(pdf.pages):
            _deadline_check(path, start, timeout, i + 1)
            try:
                words = page.extract_words(keep_blank_chars=False, use_text_flow=False,
                                           extra_attrs=["size", "fontname"])
                segments = [Segment(w["text"], w["x0"], w["x1"], w["top"], w["bottom"],
                                    float(w["size"]), "bold" in str(w["fontname"]).lower())
                            for w in words]
                result = PageText(i + 1, float(page.width), float(page.height), segments,
                                  len(page.chars), len(page.images))
            except MemoryError:
                raise
            except Exception:  # one damaged page must not lose the others; reported as broken
                log.warning("%s: page %d could not be read", path, i + 1)
                result = PageText(i + 1, 595.0, 842.0, [], 0, 0, broken=True)
            finally:
                page.close()
            yield result
    finally:
        pdf.close()


def read_pages(path: Path, *, engine: str, max_pages: int, timeout: float) -> list[PageText]:
    if engine not in ENGINES:
        raise ValueError(f"unknown PDF engine {engine!r}; choose one of {ENGINES}")
    reader = read_pdfium if engine == "pdfium" else read_plumber
    return list(reader(path, max_pages=max_pages, timeout=timeout))


def page_ranges(pages: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    runs: list[list[int]] = []
    for p in sorted(set(pages)):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)
