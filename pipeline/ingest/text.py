"""Plain text and Markdown reader: encodings, line endings, headings, bullets, pipe tables."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from ..errors import IngestError
from ..records import Block
from .cleanup import (
    hyphenated_vocabulary,
    is_bullet_line,
    join_lines,
    looks_like_heading,
    normalise_chars,
    strip_bullet,
)
from .layout import Line, Segment, remove_furniture

CHUNK = 1 << 20


def _decode_stream(path: Path, encoding: str, skip: int) -> str:
    """Decode a file chunk by chunk (never holding its bytes and text at once)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    parts = []
    with open(path, "rb") as fh:
        fh.seek(skip)
        offset = skip
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            try:
                parts.append(decoder.decode(chunk))
            except UnicodeDecodeError as e:
                raise UnicodeDecodeError(e.encoding, e.object, offset + e.start, offset + e.end,
                                         e.reason) from e
            offset += len(chunk)
        parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def read_text(path: Path) -> tuple[str, str | None]:
    """Decode a text file: UTF-8 (with or without BOM), UTF-16 with BOM, then Windows-1252.

    Returns the text and a warning when a fallback encoding was used.
    """
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"\xef\xbb\xbf"):
        try:
            return _decode_stream(path, "utf-8", 3), None
        except UnicodeDecodeError as e:
            raise IngestError(path, "undecodable text: UTF-8 byte order mark but bad data "
                                    f"at byte {e.start}") from e
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _decode_stream(path, "utf-16", 0), None
        except UnicodeDecodeError as e:
            raise IngestError(path, "undecodable text: UTF-16 byte order mark but bad data "
                                    f"at byte {e.start}") from e
    if b"\x00" in head:
        raise IngestError(path, "binary content (NUL bytes), not text; is the extension wrong?")
    try:
        return _decode_stream(path, "utf-8", 0), None
    except UnicodeDecodeError:
        pass
    try:
        return _decode_stream(path, "cp1252", 0), "decoded as Windows-1252, not UTF-8"
    except UnicodeDecodeError as e:
        with open(path, "rb") as fh:
            fh.seek(e.start)
            bad = fh.read(1)
        raise IngestError(path, f"undecodable text: not UTF-8, UTF-16 or Windows-1252 "
                                f"(byte 0x{bad.hex()} at offset {e.start}); "
                                "re-save the file as UTF-8") from e


_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def text_to_blocks(text: str, *, markdown: bool, min_fraction: float,
                   edge_lines: int) -> tuple[list[Block], int]:
    """Blocks and page count from decoded text (form feeds separate pages)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    raw_pages = text.split("\f")
    pages: list[list[Line]] = []
    for raw_page in raw_pages:
        lines = [normalise_chars(ln).rstrip() for ln in raw_page.split("\n")]
        # Positions count from the nearer page edge, so a footer lines up across pages of any
        # length.
        n = len(lines)
        tops = [6 * i if i < n / 2 else 6 * (10_000 - (n - i)) for i in range(n)]
        pages.append([Line([Segment(ln, 0, len(ln), t, t + 1)], t, t + 1)
                      for t, ln in zip(tops, lines, strict=True)])
    # Furniture removal works on non-blank lines; blank lines carry paragraph breaks, so
    # re-insert them by position afterwards.
    content = [[ln for ln in p if ln.text.strip()] for p in pages]
    kept = remove_furniture(content, min_fraction=min_fraction, edge_lines=edge_lines)
    vocabulary = hyphenated_vocabulary(text)
    blocks: list[Block] = []
    heading = ""
    for page_no, (page, kept_lines) in enumerate(zip(pages, kept, strict=True), start=1):
        keep_ids = {id(ln) for ln in kept_lines}
        paras: list[list[str]] = [[]]
        for ln in page:
            if not ln.text.strip():
                paras.append([])
            elif id(ln) in keep_ids:
                paras[-1].append(ln.text)
        for para in (p for p in paras if p):
            heading = _para_blocks(para, page_no, heading, blocks, markdown, vocabulary)
    return blocks, len(raw_pages)


def _para_blocks(lines: list[str], page: int, heading: str, blocks: list[Block], markdown: bool,
                 vocabulary: set[str]) -> str:
    """Append the blocks of one blank-line-separated paragraph; return the current heading."""
    pending: list[str] = []
    kind = "paragraph"

    def flush() -> None:
        nonlocal pending
        if pending:
            blocks.append(Block(join_lines(pending, vocabulary), page, kind, heading))
        pending = []

    rows: list[list[str]] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.count("|") >= 2:
            flush()
            if not _TABLE_SEPARATOR.match(stripped):
                rows.append(_cells(stripped))
            continue
        if rows:
            _table_blocks(rows, page, heading, blocks)
            rows = []
        md_heading = re.match(r"^#{1,6}\s+(.*)$", stripped) if markdown else None
        if md_heading or (len(lines) == 1 and _plain_heading(stripped)):
            flush()
            heading = (md_heading.group(1) if md_heading else stripped).strip("# ").strip()
            blocks.append(Block(heading, page, "heading", heading))
            continue
        if is_bullet_line(stripped):
            flush()
            kind = "bullet"
            pending = [strip_bullet(stripped)]
            continue
        if not pending:
            kind = "paragraph"
        pending.append(stripped)
    flush()
    if rows:
        _table_blocks(rows, page, heading, blocks)
    return heading


def _plain_heading(line: str) -> bool:
    return looks_like_heading(line, max_words=10) and not line.endswith((",", "."))


def _table_blocks(rows: list[list[str]], page: int, heading: str, blocks: list[Block]) -> None:
    if len(rows) > 1 and all(len(c.split()) <= 5 for c in rows[0]):
        rows = rows[1:]
    for cells in rows:
        context = cells[0] if cells else ""
        for i, cell in enumerate(cells):
            if cell:
                blocks.append(Block(cell, page, "table_cell", heading, context if i else ""))
