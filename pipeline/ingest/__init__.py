"""Ingestion: one function, :func:`read_document`, for every supported format.

The format is decided by the file's magic bytes, not its extension, so a Word document
renamed ``.pdf`` is still read (with a warning), and a ``.pdf`` that is not a PDF is refused.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import IngestParams
from ..errors import IngestError
from ..forces import resolve_force
from ..hashing import sha256_file
from ..records import Block, Document
from . import budget
from .docx import PastedImage, pasted_images, read_docx
from .layout import PageText, build_lines, lines_to_blocks, remove_furniture
from .pdf import page_ranges, read_pages
from .text import read_text_blocks

if TYPE_CHECKING:
    from .ocr import OcrPage

log = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".pdf", ".docx", ".txt", ".md")
_TEXT_EXTENSIONS = {".txt", ".md", ".text", ".markdown"}
# Longer blocks are cut at a space before segmenting: the sentence splitter needs about a
# hundred bytes per character it reads, so one 10 MB paragraph took a gigabyte. No real
# paragraph or table cell comes near this; segmenting cuts passages far shorter anyway.
MAX_BLOCK_CHARS = 100_000


def detect_format(path: Path, head: bytes) -> str:
    """'pdf', 'docx' or 'text' from the first bytes, falling back on the extension for text."""
    ext = path.suffix.lower()
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if ext in (".docx", ".pdf") or _is_word_zip(path):
            return "docx"
        raise IngestError(path, f"unsupported file type '{ext}' (a zip archive that is not a "
                                f"Word document): forcecov reads {', '.join(SUPPORTED_EXTENSIONS)}")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise IngestError(path, "legacy or password-protected Word file (OLE format): save it as "
                                "an unprotected .docx")
    if ext in _TEXT_EXTENSIONS:
        return "text"
    if ext == ".pdf":
        raise IngestError(path, "corrupt PDF: no %PDF header, the file is not a PDF")
    if ext == ".docx":
        raise IngestError(path, "corrupt DOCX: not a zip archive")
    shown = ext or "(no extension)"
    raise IngestError(path, f"unsupported file type '{shown}': forcecov reads "
                            f"{', '.join(SUPPORTED_EXTENSIONS)}")


def _is_word_zip(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "word/document.xml" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def read_document(path: str | Path, *, params: IngestParams | None = None,
                  manifest: dict[str, str] | None = None) -> Document:
    """Extract one file into a :class:`Document`, or raise :class:`IngestError` with a reason."""
    params = params or IngestParams()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise IngestError(path, f"cannot read file ({e.strerror})") from e
    if size == 0:
        raise IngestError(path, "empty file (0 bytes)")
    if size > params.max_file_mb * 1024 * 1024:
        raise IngestError(path, f"file is {size / 1e6:.0f} MB, over the limit of "
                                f"{params.max_file_mb:g} MB (ingest.max_file_mb)")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    fmt = detect_format(path, head)
    warnings: list[str] = []
    ext = path.suffix.lower()
    if fmt == "docx" and ext != ".docx":
        warnings.append(f"named '{ext}' but is a Word document; read as DOCX")
    if fmt == "pdf" and ext != ".pdf":
        warnings.append(f"named '{ext}' but is a PDF; read as PDF")

    ocr_pages: dict[int, float] = {}
    if fmt == "pdf":
        blocks, pages, ocr_pages = _read_pdf(path, params, warnings)
    elif fmt == "docx":
        blocks, pages = read_docx(path, max_uncompressed_mb=params.docx_max_uncompressed_mb,
                                  max_ratio=params.docx_max_ratio, max_pages=params.max_pages)
        if sum(len(b.text) for b in blocks) < params.ocr_min_chars:
            images = pasted_images(path)
            if images:
                blocks, pages, ocr_pages = _read_pasted_images(path, images, params, warnings)
    else:
        blocks, pages, warning = read_text_blocks(path, markdown=ext in (".md", ".markdown"),
                                                  min_fraction=params.furniture_min_fraction,
                                                  edge_lines=params.furniture_edge_lines)
        if warning:
            warnings.append(warning)
    blocks = _cut_long_blocks([b for b in blocks if b.text.strip()])
    if not any(b.kind != "heading" for b in blocks):
        raise IngestError(path,
                          "no text found: the document is empty after removing page furniture")
    offset = 0
    for b in blocks:
        b.char_start = offset
        offset += len(b.text) + 1
    sha = sha256_file(path)
    first_page = " ".join(_first_page_start(blocks))
    force = resolve_force(path, first_page, manifest)
    if force == "unknown":
        warnings.append("force not recognised from manifest, file name or first page")
    return Document(doc_id=sha[:16], path=str(path), sha256=sha, format=fmt, force=force,
                    pages=pages, blocks=blocks, warnings=warnings, ocr_pages=ocr_pages)


def _cut_long_blocks(blocks: list[Block]) -> list[Block]:
    """Blocks longer than ``MAX_BLOCK_CHARS`` cut into pieces, at a space where there is one."""
    out: list[Block] = []
    for b in blocks:
        if len(b.text) <= MAX_BLOCK_CHARS:
            out.append(b)
            continue
        start = 0
        while start < len(b.text):
            end = start + MAX_BLOCK_CHARS
            if end < len(b.text):
                space = b.text.rfind(" ", start + MAX_BLOCK_CHARS // 2, end)
                end = space if space > 0 else end
            piece = b.text[start:end].strip()
            if piece:
                out.append(Block(piece, b.page, b.kind, b.heading, b.context))
            start = end
    return out


def _first_page_start(blocks: list[Block], limit: int = MAX_BLOCK_CHARS) -> list[str]:
    """Texts of the first page's blocks, enough to name the force (a text file without form
    feeds is all one page, and joining it whole could take hundreds of megabytes)."""
    texts: list[str] = []
    size = 0
    for b in blocks:
        if size > limit:
            break
        if b.page == 1:
            texts.append(b.text)
            size += len(b.text) + 1
    return texts


def _read_pdf(path: Path, params: IngestParams,
              warnings: list[str]) -> tuple[list[Block], int, dict[int, float]]:
    """Blocks, page count, and the mean OCR confidence of each page read by OCR."""
    pages = read_pages(path, engine=params.pdf_engine, max_pages=params.max_pages,
                       timeout=params.timeout_seconds)
    if not pages:
        raise IngestError(path, "PDF has no pages")
    broken = [p.number for p in pages if p.broken]
    if len(broken) == len(pages):
        raise IngestError(path, "corrupt PDF: no page could be read; ask for a fresh export")
    if broken:
        warnings.append(f"pages that could not be read (damaged): {page_ranges(broken)}")
    ocr_confidence: dict[int, float] = {}
    if params.ocr:
        pages, ocr_confidence = _ocr_scanned_pages(path, pages, params)
    image_only = [p.number for p in pages if p.n_chars == 0 and p.n_images > 0]
    with_text = [p for p in pages if p.n_chars > 0]
    if not with_text:
        if image_only:
            raise IngestError(path, "image-only PDF with no text layer "
                                    f"(pages {page_ranges(image_only)}): run `forcecov score "
                                    "--ocr` to read it with Tesseract, or ask for a text PDF")
        raise IngestError(path, "no text found: every page is blank")
    if image_only:
        warnings.append("image-only pages with no text layer (use --ocr to read them): "
                        f"{page_ranges(image_only)}")
    return (*_pages_to_blocks(pages, params, ocr_confidence, warnings), ocr_confidence)


def _pages_to_blocks(pages: list[PageText], params: IngestParams,
                     ocr_confidence: dict[int, float],
                     warnings: list[str]) -> tuple[list[Block], int]:
    """Positioned pages (a text layer's or Tesseract's) into blocks, and the page count."""
    if ocr_confidence:
        low = [n for n, c in ocr_confidence.items() if c < params.ocr_min_confidence]
        if low:
            warnings.append(f"pages read by OCR with low confidence (sent to review): "
                            f"{page_ranges(low)}")
    line_pages = [build_lines(p.segments) for p in pages]
    line_pages = remove_furniture(line_pages, min_fraction=params.furniture_min_fraction,
                                  edge_lines=params.furniture_edge_lines,
                                  page_heights=[p.height for p in pages])
    return lines_to_blocks(line_pages, paragraph_gap=params.paragraph_gap), len(pages)


def _ocr_page(path: Path, number: int, params: IngestParams,
              read: Callable[[], OcrPage]) -> OcrPage:
    """One page through Tesseract, with ``ingest.ocr_page_seconds`` more for the document's
    budget; a page it cannot finish in that time fails the document with the page's number
    (Tesseract is killed, so nothing is left running)."""
    budget.extend(params.ocr_page_seconds)
    try:
        return read()
    except RuntimeError as e:  # pytesseract's timeout
        if "timeout" not in str(e).lower():
            raise
        raise IngestError(path, f"OCR of page {number} took longer than "
                                f"{params.ocr_page_seconds:g} s (ingest.ocr_page_seconds)") from e


def _read_pasted_images(path: Path, images: list[PastedImage], params: IngestParams,
                        warnings: list[str]) -> tuple[list[Block], int, dict[int, float]]:
    """A DOCX whose body is pictures of pages (a scanned letter pasted into Word), read by
    OCR: each picture is a page of its own, numbered in reading order."""
    from PIL import Image, UnidentifiedImageError

    from .ocr import ocr_image, tesseract_missing

    if not params.ocr:
        raise IngestError(path, f"image-only DOCX: its body is {len(images)} pasted picture(s) "
                                "with no text: run `forcecov score --ocr` to read them with "
                                "Tesseract, or ask for the document as text")
    missing = tesseract_missing(params.ocr_lang)
    if missing:
        raise IngestError(path, f"image-only DOCX cannot be read: {missing}")
    pages: list[PageText] = []
    confidence: dict[int, float] = {}
    for number, picture in enumerate(images[:params.max_pages], start=1):
        try:
            with Image.open(io.BytesIO(picture.blob)) as opened:
                image = opened.convert("L")
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
            warnings.append(f"picture {number} could not be read ({type(e).__name__})")
            continue
        width = picture.width or image.width * 72 / 300
        read = _ocr_page(path, number, params, partial(
            ocr_image, image, pixels_per_point=image.width / width, lang=params.ocr_lang,
            timeout=params.ocr_page_seconds))
        height = picture.height or image.height / (image.width / width)
        pages.append(PageText(number, width, height, read.segments,
                              sum(len(s.text) for s in read.segments), 1))
        confidence[number] = read.confidence
    if not any(p.n_chars for p in pages):
        raise IngestError(path, "image-only DOCX: OCR found no text in its pictures")
    blocks, _ = _pages_to_blocks(pages, params, confidence, warnings)
    return blocks, len(images), confidence


def _ocr_scanned_pages(path: Path, pages: list[PageText],
                       params: IngestParams) -> tuple[list[PageText], dict[int, float]]:
    """Pages with an image and (almost) no text, read again by Tesseract."""
    from .ocr import ocr_pdf_page, tesseract_missing

    scanned = [p for p in pages
               if not p.broken and p.n_images > 0 and p.n_chars < params.ocr_min_chars]
    if not scanned:
        return pages, {}
    missing = tesseract_missing(params.ocr_lang)
    if missing:
        raise IngestError(path, f"scanned pages {page_ranges([p.number for p in scanned])} "
                                f"cannot be read: {missing}")
    confidence: dict[int, float] = {}
    by_number = {p.number: p for p in pages}
    for p in scanned:
        read = _ocr_page(path, p.number, params, partial(
            ocr_pdf_page, path, p.number, dpi=params.ocr_dpi, lang=params.ocr_lang,
            timeout=params.ocr_page_seconds))
        by_number[p.number] = PageText(p.number, p.width, p.height, read.segments,
                                       sum(len(s.text) for s in read.segments), p.n_images)
        confidence[p.number] = read.confidence
    return [by_number[p.number] for p in pages], confidence
