"""DOCX reader (python-docx): paragraphs, list items and table cells in body order.

Page headers and footers live outside the body, so they are never read. Pages are counted
from explicit and rendered page breaks.
"""

from __future__ import annotations

import codecs
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

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


# Word never writes a document type declaration. With one, an external entity can read local
# files (or, unresolved, silently drop the text after it) and nested entities (a "billion
# laughs") can exhaust memory; so a part that declares one is refused before any XML parser
# sees it. The marks are looked for in UTF-8 and in both UTF-16 byte orders.
_DECLARATIONS = tuple(mark.encode(enc) for mark in ("<!DOCTYPE", "<!ENTITY")
                      for enc in ("utf-8", "utf-16-le", "utf-16-be"))
_OVERLAP = max(len(m) for m in _DECLARATIONS) - 1  # a mark may straddle two chunks
# In any other encoding (UTF-32, UTF-7, EBCDIC...) a declaration would not show as those bytes.
_ENCODINGS = {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "ascii", "latin-1", "iso8859-1",
              "cp1252"}
_XML_DECL_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")


def _scanned_parts(zf: zipfile.ZipFile) -> list[str]:
    """The parts an XML parser may read: [Content_Types].xml, relationships, and every part
    whose declared content type is XML (images aside: python-docx keeps those as bytes)."""
    types: dict[str, str] = {}  # "/word/document.xml" or ".xml" -> content type
    names = zf.namelist()
    if "[Content_Types].xml" in names:
        text = _decode_xml(zf.read("[Content_Types].xml"))  # bounded by check_zip
        for tag, attrs in re.findall(r"<(?:\w+:)?(Default|Override)\b([^>]*)>", text):
            attr = dict(re.findall(r"""(\w+)\s*=\s*["']([^"']*)["']""", attrs))
            key = attr.get("PartName", "") if tag == "Override" else "." + attr.get("Extension", "")
            types[key.lower()] = attr.get("ContentType", "").lower()
    parts = []
    for name in names:
        lower = name.lower()
        ctype = types.get("/" + lower) or types.get("." + lower.rsplit(".", 1)[-1], "")
        if ctype.startswith("image/"):
            continue  # kept as bytes, never parsed (and an SVG may well carry a DOCTYPE)
        if lower.endswith((".xml", ".rels")) or ctype.endswith("xml"):
            parts.append(name)
    return parts


def _decode_xml(data: bytes) -> str:
    """XML bytes as text, in UTF-16 (by byte order mark or a leading '<') or else UTF-8."""
    if data.startswith((b"\xff\xfe", b"<\x00")):
        text = data.decode("utf-16-le", "replace")
    elif data.startswith((b"\xfe\xff", b"\x00<")):
        text = data.decode("utf-16-be", "replace")
    else:
        text = data.decode("utf-8", "replace")
    return text.lstrip("\ufeff")


def _encoding_problem(head: bytes) -> str | None:
    """Why the start of an XML part is in an encoding the declaration scan cannot see
    through, or None."""
    if head.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\x00<",
                        b"<\x00\x00\x00")):
        return "UTF-32"
    text = _decode_xml(head)
    if text.strip() and not text.lstrip().startswith("<"):
        return "it does not start with '<'"
    declared = _XML_DECL_ENCODING.match(text)
    if declared:
        try:
            name = codecs.lookup(declared.group(1)).name
        except LookupError:
            return f"encoding {declared.group(1)!r}"
        if name not in _ENCODINGS:
            return f"encoding {declared.group(1)!r}"
    return None


def _declares_entities(stream: IO[bytes], head: bytes) -> bool:
    """Whether ``head`` and the rest of ``stream`` hold a declaration mark."""
    data = head
    while True:
        if any(mark in data for mark in _DECLARATIONS):
            return True
        chunk = stream.read(1 << 16)
        if not chunk:
            return False
        data = data[-_OVERLAP:] + chunk


def check_xml_parts(path: Path) -> None:
    """Refuse a DOCX whose XML parts declare entities, or could hide a declaration from this
    check in an unusual encoding. The parts are streamed from the zip, never held whole."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in _scanned_parts(zf):
                with zf.open(name) as stream:
                    head = stream.read(256)
                    problem = _encoding_problem(head)
                    declares = not problem and _declares_entities(stream, head)
                if problem:
                    raise IngestError(path, f"DOCX refused: {name} is not UTF-8 or UTF-16 XML "
                                            f"({problem}), as Word always writes; another "
                                            "encoding could hide an entity declaration")
                if declares:
                    raise IngestError(
                        path, f"DOCX refused: {name} declares XML entities "
                              "(<!DOCTYPE>/<!ENTITY>), which Word never writes; an external or "
                              "recursive entity could read files or exhaust memory")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError,
            OSError) as e:  # a damaged entry or an unsupported compression method
        raise IngestError(path, f"corrupt DOCX: a part cannot be unpacked ({type(e).__name__}); "
                                "ask for a fresh copy") from e


_RUN, _HYPERLINK, _TEXT, _BREAK, _PARAGRAPH = (f"{_W}{tag}"
                                               for tag in ("r", "hyperlink", "t", "br", "p"))
_RUN_CHARS = {f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-", f"{_W}ptab": "\t", f"{_W}tab": "\t"}


def _run_text(run: BaseOxmlElement) -> str:
    out = []
    for e in run.iterchildren():
        if e.tag == _TEXT:
            out.append(e.text or "")
        elif e.tag == _BREAK:  # a line break; page and column breaks give nothing
            out.append("\n" if e.get(f"{_W}type", "textWrapping") == "textWrapping" else "")
        elif e.tag in _RUN_CHARS:
            out.append(_RUN_CHARS[e.tag])
    return "".join(out)


def paragraph_text(p: BaseOxmlElement) -> str:
    """Exactly python-docx's ``Paragraph.text`` (runs and hyperlinks' runs; breaks, tabs and
    no-break hyphens as characters), without its XPath query per element, which took most of
    the reading time (about 40 microseconds a call)."""
    out = []
    for e in p.iterchildren(_RUN, _HYPERLINK):
        if e.tag == _RUN:
            out.append(_run_text(e))
        else:
            out.extend(_run_text(r) for r in e.iterchildren(_RUN))
    return "".join(out)


def _cell_text(tc: BaseOxmlElement) -> str:
    """python-docx's ``_Cell.text``: its own paragraphs, one a line."""
    return "\n".join(paragraph_text(p) for p in tc.iterchildren(_PARAGRAPH))


def _page_breaks(element: BaseOxmlElement) -> int:
    explicit = sum(1 for br in element.iter(f"{_W}br") if br.get(f"{_W}type") == "page")
    rendered = sum(1 for _ in element.iter(f"{_W}lastRenderedPageBreak"))
    before = sum(1 for _ in element.iter(f"{_W}pageBreakBefore"))
    return max(explicit, rendered) + before


def _paragraph_kind(paragraph: Paragraph, raw_text: str,
                    style_names: dict[str | None, str]) -> str:
    # python-docx looks a style up by scanning every style (about 2 ms a paragraph): once per
    # style id is enough. Its element accessors cost ~10 microseconds each: plain lxml here.
    ppr = paragraph._p.find(f"{_W}pPr")
    style_el = ppr.find(f"{_W}pStyle") if ppr is not None else None
    style_id = style_el.get(f"{_W}val") if style_el is not None else None
    if style_id not in style_names:
        found = paragraph.style
        style_names[style_id] = (found.name if found is not None else "") or ""
    style = style_names[style_id]
    if style.startswith(("Heading", "Title", "Subtitle")):
        return "heading"
    if "List" in style or (ppr is not None and ppr.find(f"{_W}numPr") is not None):
        return "bullet"
    if looks_like_heading(raw_text):  # cheap first: run formatting only for title-like lines
        runs = [r for r in paragraph.runs if r.text.strip()]
        if runs and all(r.bold for r in runs):
            return "heading"
    return "paragraph"


def _out_of_memory(error: Exception) -> bool:
    """libxml2 reports running out of memory (under the worker's budget) as a syntax error."""
    entries = getattr(error, "error_log", None) or []
    return any(getattr(entry, "type_name", "") == "ERR_NO_MEMORY" for entry in entries) \
        or "memory allocation failed" in str(error).lower()


def read_docx(path: Path, *, max_uncompressed_mb: float, max_ratio: float,
              max_pages: int) -> tuple[list[Block], int]:
    """Blocks in reading order and the page count."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip(path, max_uncompressed_mb=max_uncompressed_mb, max_ratio=max_ratio)
    check_xml_parts(path)
    try:
        document = docx.Document(str(path))
    except MemoryError:
        raise
    except Exception as e:  # python-docx raises several types for malformed parts
        if _out_of_memory(e):
            raise MemoryError(str(e)) from e
        raise IngestError(path, f"corrupt DOCX: cannot be opened ({type(e).__name__}); "
                                "ask for a fresh copy") from e
    blocks: list[Block] = []
    page = 1
    heading = ""
    style_names: dict[str | None, str] = {}
    for child in document.element.body.iterchildren():
        tag = child.tag.replace(_W, "")
        if tag == "p":
            para = Paragraph(child, document)
            raw_text = paragraph_text(child)
            text = " ".join(normalise_chars(raw_text).split())
            breaks = _page_breaks(child)
            if breaks and not text:
                page += breaks
                continue
            if text and not is_furniture(text):
                kind = _paragraph_kind(para, raw_text, style_names)
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
                    cells.append(" ".join(normalise_chars(_cell_text(cell._tc)).split()))
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


@dataclass(frozen=True)
class PastedImage:
    """A picture in a DOCX body: its page, its bytes, and the size it is shown at (points)."""

    page: int
    blob: bytes
    width: float
    height: float


_EMU_PER_POINT = 12700
_DRAWING_NS = {
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing",
}


def pasted_images(path: Path) -> list[PastedImage]:
    """The pictures in a DOCX body in reading order, each on the page it falls on: a letter
    printed, scanned and pasted into Word has nothing else. Call after :func:`read_docx`,
    which has already checked the package."""
    import docx

    document = docx.Document(str(path))
    images: list[PastedImage] = []
    page = 1
    for child in document.element.body.iterchildren():
        for drawing in child.iter(f"{_W}drawing"):
            extent = drawing.find(".//wp:extent", _DRAWING_NS)
            blip = drawing.find(".//a:blip", _DRAWING_NS)
            if extent is None or blip is None:
                continue
            rel = blip.get(f"{{{_DRAWING_NS['r']}}}embed")
            part = document.part.related_parts.get(rel) if rel else None
            blob = getattr(part, "blob", None)
            if blob:
                images.append(PastedImage(page, blob, int(extent.get("cx", 0)) / _EMU_PER_POINT,
                                          int(extent.get("cy", 0)) / _EMU_PER_POINT))
        page += _page_breaks(child)
    return images
