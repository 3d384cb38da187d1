"""DOCX reader (python-docx): paragraphs, list items and table cells in body order.

Page headers and footers live outside the body, so they are never read. Pages are counted
from explicit and rendered page breaks.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import IngestError
from ..records import Block
from .cleanup import is_furniture, looks_like_heading, normalise_chars

if TYPE_CHECKING:
    from docx.oxml.xmlchemy import BaseOxmlElement
    from docx.text.paragraph import Paragraph

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def check_zip(path: Path, *, max_uncompressed_mb: float, max_ratio: float) -> None:
    """Refuse archives that are not Word documents or that would expand out of bounds."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
    except zipfile.BadZipFile as e:
        raise IngestError(path,
                          "corrupt DOCX: not a valid zip archive; ask for a fresh copy") from e
    if "word/document.xml" not in names:
        raise IngestError(path, "not a Word document: the zip archive has no word/document.xml")
    total = sum(i.file_size for i in infos)
    packed = max(sum(i.compress_size for i in infos), 1)
    if total > max_uncompressed_mb * 1024 * 1024 or total / packed > max_ratio:
        raise IngestError(
            path,
            f"DOCX refused as a possible zip bomb: expands to {total / 1e6:.0f} MB, ratio "
            f"{total / packed:.0f}:1 "
            "(limits ingest.docx_max_uncompressed_mb, ingest.docx_max_ratio)",
        )


def _page_breaks(element: BaseOxmlElement) -> int:
    explicit = sum(1 for br in element.iter(f"{_W}br") if br.get(f"{_W}type") == "page")
    rendered = sum(1 for _ in element.iter(f"{_W}lastRenderedPageBreak"))
    before = sum(1 for _ in element.iter(f"{_W}pageBreakBefore"))
    return max(explicit, rendered) + before


def _paragraph_kind(paragraph: Paragraph) -> str:
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style.startswith(("Heading", "Title", "Subtitle")):
        return "heading"
    ppr = paragraph._p.pPr
    if "List" in style or (ppr is not None and ppr.numPr is not None):
        return "bullet"
    runs = [r for r in paragraph.runs if r.text.strip()]
    if runs and all(r.bold for r in runs) and looks_like_heading(paragraph.text):
        return "heading"
    return "paragraph"


def read_docx(path: Path, *, max_uncompressed_mb: float, max_ratio: float,
              max_pages: int) -> tuple[list[Block], int]:
    """Blocks in reading order and the page count."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip(path, max_uncompressed_mb=max_uncompressed_mb, max_ratio=max_ratio)
    try:
        document = docx.Document(str(path))
    except Exception as e:  # python-docx raises several types for malformed parts
        raise IngestError(path, f"corrupt DOCX: cannot be opened ({type(e).__name__}); "
                                "ask for a fresh copy") from e
    blocks: list[Block] = []
    page = 1
    heading = ""
    for child in document.element.body.iterchildren():
        tag = child.tag.replace(_W, "")
        if tag == "p":
            para = Paragraph(child, document)
            text = " ".join(normalise_chars(para.text).split())
            breaks = _page_breaks(child)
            if breaks and not text:
                page += breaks
                continue
            if text and not is_furniture(text):
                kind = _paragraph_kind(para)
                if kind == "heading":
                    heading = text
                blocks.append(Block(text, page, kind, heading))
            page += breaks
        elif tag == "tbl":
            table = Table(child, document)
            rows = []
            for row in table.rows:
                seen: set[int] = set()
                cells = []
                for cell in row.cells:
                    if id(cell._tc) in seen:  # merged cells repeat the same element
                        continue
                    seen.add(id(cell._tc))
                    cells.append(" ".join(normalise_chars(cell.text).split()))
                rows.append(cells)
            if len(rows) > 1 and rows[0] and all(len(c.split()) <= 5 for c in rows[0]):
                rows = rows[1:]  # header row
            for cells in rows:
                context = cells[0] if cells else ""
                for i, cell in enumerate(cells):
                    if cell and not is_furniture(cell):
                        blocks.append(Block(cell, page, "table_cell", heading,
                                            context if i else ""))
            page += _page_breaks(child)
        if page > max_pages:
            raise IngestError(path, f"over the limit of {max_pages} pages (ingest.max_pages)")
    return blocks, page
