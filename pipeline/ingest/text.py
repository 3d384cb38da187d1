"""Plain text and Markdown reader: encodings, line endings, headings, bullets, pipe tables.

A file is decoded in pieces of a megabyte: once to settle its encoding, once for what spans
the document (running headers and footers, hyphenated words), once to build its blocks. So
memory holds the blocks and one paragraph, never the whole text or an object per line of it
(a 200 MB file used to grow to 14.6 GB).
"""

from __future__ import annotations

import codecs
import re
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import IngestError
from ..records import Block
from . import cleanup  # the same line clean-up as the PDF and DOCX readers

CHUNK = 1 << 20


def _decode_pieces(path: Path, encoding: str, skip: int) -> Iterator[str]:
    """Decode a file chunk by chunk (never holding its bytes and text at once)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with open(path, "rb") as fh:
        fh.seek(skip)
        offset = skip
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            try:
                yield decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise UnicodeDecodeError(e.encoding, e.object, offset + e.start, offset + e.end,
                                         e.reason) from e
            offset += len(chunk)
        yield decoder.decode(b"", final=True)


def _decodes(path: Path, encoding: str, skip: int) -> None:
    """Decode the whole file, keeping nothing: raises UnicodeDecodeError where it fails."""
    for _ in _decode_pieces(path, encoding, skip):
        pass


def text_encoding(path: Path) -> tuple[str, int, str | None]:
    """How to decode a text file: UTF-8 (with or without BOM), UTF-16 with BOM, then
    Windows-1252. Returns the codec, the bytes of BOM to skip and a warning when a fallback
    encoding was used; refuses a file that none of them decodes."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    # (byte order marks, codec, BOM bytes to skip, name): a BOM says what the file must be.
    for marks, codec, skip, name in (((b"\xef\xbb\xbf",), "utf-8", 3, "UTF-8"),
                                     ((b"\xff\xfe", b"\xfe\xff"), "utf-16", 0, "UTF-16")):
        if head.startswith(marks):
            try:
                _decodes(path, codec, skip)
            except UnicodeDecodeError as e:
                raise IngestError(path, f"undecodable text: {name} byte order mark but bad "
                                        f"data at byte {e.start}") from e
            return codec, skip, None
    if b"\x00" in head:
        raise IngestError(path, "binary content (NUL bytes), not text; is the extension wrong?")
    try:
        _decodes(path, "utf-8", 0)
        return "utf-8", 0, None
    except UnicodeDecodeError:
        pass
    try:
        _decodes(path, "cp1252", 0)
        return "cp1252", 0, "decoded as Windows-1252, not UTF-8"
    except UnicodeDecodeError as e:
        with open(path, "rb") as fh:
            fh.seek(e.start)
            bad = fh.read(1)
        raise IngestError(path, f"undecodable text: not UTF-8, UTF-16 or Windows-1252 "
                                f"(byte 0x{bad.hex()} at offset {e.start}); "
                                "re-save the file as UTF-8") from e


def read_text_blocks(path: Path, *, markdown: bool, min_fraction: float,
                     edge_lines: int) -> tuple[list[Block], int, str | None]:
    """Blocks, page count and encoding warning of a text file, read in pieces."""
    encoding, skip, warning = text_encoding(path)
    blocks, pages = _blocks(lambda: _decode_pieces(path, encoding, skip), markdown=markdown,
                            min_fraction=min_fraction, edge_lines=edge_lines)
    return blocks, pages, warning


_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def text_to_blocks(text: str, *, markdown: bool, min_fraction: float,
                   edge_lines: int) -> tuple[list[Block], int]:
    """Blocks and page count from decoded text (form feeds separate pages)."""
    return _blocks(lambda: (text,), markdown=markdown, min_fraction=min_fraction,
                   edge_lines=edge_lines)


def _lines(pieces: Iterable[str]) -> Iterator[str | None]:
    """The lines of a text given in pieces (CR LF and CR count as LF); None marks a form
    feed, which also ends the line before it, as ``str.split`` would."""
    partial: list[str] = []  # the line under way, which may span pieces
    cr = False  # the last piece ended with CR: a LF opening the next one belongs to it
    for piece in pieces:
        if not piece:
            continue
        if cr and piece[0] == "\n":
            piece = piece[1:]
        cr = piece.endswith("\r")
        lines = piece.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        partial.append(lines.pop())
        if lines:
            lines[0] = "".join(partial[:-1]) + lines[0]
            partial = partial[-1:]
        for line in lines:
            if "\f" in line:
                yield from _split_pages(line)
            else:
                yield line
    yield from _split_pages("".join(partial))


def _split_pages(line: str) -> Iterator[str | None]:
    *before, last = line.split("\f")
    for text in before:
        yield text
        yield None
    yield last


def _position(i: int, n: int) -> int:
    """A line's position key: counted from the nearer page edge, so a footer lines up across
    pages of any length."""
    return i if i < n / 2 else 10_000 - (n - i)


def _blocks(pieces: Callable[[], Iterable[str]], *, markdown: bool, min_fraction: float,
            edge_lines: int) -> tuple[list[Block], int]:
    """Blocks and page count from a text that ``pieces()`` yields in pieces, as many times as
    asked.

    First pass: the running headers and footers (a line recurring at the same distance from a
    page edge among the first or last ``edge_lines`` non-blank lines of enough pages) and the
    hyphenated words. Second pass: blocks, paragraph by paragraph (blank lines separate them;
    furniture lines are dropped without separating them).
    """
    every_line = edge_lines <= 0  # lines[:0] + lines[-0:] is every line
    counts: Counter[tuple[str, int]] = Counter()
    shapes = array("q")  # per page: its lines, its non-blank lines
    vocabulary: set[str] = set()
    n = m = 0
    first: list[tuple[int, str]] = []
    last: deque[tuple[int, str]] = deque(maxlen=None if every_line else edge_lines)

    def end_page() -> None:
        nonlocal n, m
        counts.update({(cleanup.furniture_key(cleanup.normalise_chars(raw)), _position(i, n))
                       for i, raw in [*first, *last]})
        shapes.extend((n, m))
        n = m = 0
        first.clear()
        last.clear()

    for line in _lines(pieces()):
        if line is None:
            end_page()
            continue
        if "-" in line:
            vocabulary |= cleanup.hyphenated_vocabulary(line)
        # Normalising never blanks or un-blanks a plain ASCII line: most lines skip it here.
        if line.strip() if line.isascii() else cleanup.normalise_chars(line).strip():
            if not every_line and len(first) < edge_lines:
                first.append((n, line))
            last.append((n, line))
            m += 1
        n += 1
    end_page()
    n_pages = len(shapes) // 2
    needed = max(2, int(min_fraction * n_pages + 0.999))
    running = {k for k, c in counts.items() if c >= needed} if n_pages >= 2 else set()

    blocks: list[Block] = []
    heading = ""
    page = 1
    n, m = shapes[0], shapes[1]
    i = j = 0  # the line's index on its page, among all lines and among non-blank ones
    para: list[str] = []
    for line in _lines(pieces()):
        if line is None or not (text := cleanup.normalise_chars(line).rstrip()).strip():
            if para:
                heading = _para_blocks(para, page, heading, blocks, markdown, vocabulary)
                para = []
            if line is None:
                page += 1
                n, m = shapes[2 * page - 2], shapes[2 * page - 1]
                i = j = 0
            else:
                i += 1
            continue
        edge = every_line or j < edge_lines or j >= m - edge_lines
        if not cleanup.is_furniture(text) and not (
                edge and running and (cleanup.furniture_key(text), _position(i, n)) in running):
            para.append(text)
        i += 1
        j += 1
    if para:
        _para_blocks(para, page, heading, blocks, markdown, vocabulary)
    return blocks, n_pages


def _para_blocks(lines: list[str], page: int, heading: str, blocks: list[Block], markdown: bool,
                 vocabulary: set[str]) -> str:
    """Append the blocks of one blank-line-separated paragraph; return the current heading."""
    pending: list[str] = []
    kind = "paragraph"

    def flush() -> None:
        nonlocal pending
        if pending:
            blocks.append(Block(cleanup.join_lines(pending, vocabulary), page, kind, heading))
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
        if cleanup.is_bullet_line(stripped):
            flush()
            kind = "bullet"
            pending = [cleanup.strip_bullet(stripped)]
            continue
        if not pending:
            kind = "paragraph"
        pending.append(stripped)
    flush()
    if rows:
        _table_blocks(rows, page, heading, blocks)
    return heading


def _plain_heading(line: str) -> bool:
    return cleanup.looks_like_heading(line, max_words=10) and not line.endswith((",", "."))


def _table_blocks(rows: list[list[str]], page: int, heading: str, blocks: list[Block]) -> None:
    if len(rows) > 1 and all(len(c.split()) <= 5 for c in rows[0]):
        rows = rows[1:]
    for cells in rows:
        context = cells[0] if cells else ""
        for i, cell in enumerate(cells):
            if cell:
                blocks.append(Block(cell, page, "table_cell", heading, context if i else ""))
