"""From positioned text segments (either PDF engine) to blocks: lines, furniture, tables.

Both PDF engines hand this module the same thing, a list of :class:`PageText`, so the
layout logic (and the parity between engines) lives in one place.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from ..records import Block
from .cleanup import (
    ends_sentence,
    furniture_key,
    hyphenated_vocabulary,
    is_bullet_line,
    is_furniture,
    join_lines,
    looks_like_heading,
    normalise_chars,
    strip_bullet,
)


@dataclass
class Segment:
    """A run of text on one line, with its box in points (top-left origin)."""

    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    size: float = 0.0  # font size in points (0 when the engine cannot tell)
    bold: bool = False

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 0.1)


@dataclass
class PageText:
    number: int
    width: float
    height: float
    segments: list[Segment]
    n_chars: int
    n_images: int
    broken: bool = False  # the page could not be read; the rest of the document still can


@dataclass
class Line:
    cells: list[Segment]
    top: float
    bottom: float

    @property
    def size(self) -> float:
        """Font size of the line: its largest segment's, else its height."""
        return max((c.size for c in self.cells), default=0.0) or self.height

    @property
    def bold(self) -> bool:
        return all(c.bold for c in self.cells)

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.cells)

    @property
    def x0(self) -> float:
        return self.cells[0].x0

    @property
    def x1(self) -> float:
        return self.cells[-1].x1

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 0.1)


_FOOTNOTE_MARK = re.compile(r"^[\d*†‡]{1,3}$")


def _char_width(seg: Segment) -> float:
    return (seg.x1 - seg.x0) / max(len(seg.text), 1)


def build_lines(segments: list[Segment]) -> list[Line]:
    """Group segments into lines by vertical overlap; split a line into cells at wide gaps."""
    rows: list[list[Segment]] = []
    bounds: list[list[float]] = []  # each row's top and bottom, kept as segments join it
    for seg in sorted(segments, key=lambda s: (round(s.top, 1), s.x0)):
        seg = Segment(normalise_chars(seg.text), seg.x0, seg.x1, seg.top, seg.bottom, seg.size,
                      seg.bold)
        if not seg.text.strip():
            continue
        centre = (seg.top + seg.bottom) / 2
        for row, bound in zip(rows[-3:], bounds[-3:], strict=True):
            if bound[0] - 0.5 <= centre <= bound[1] + 0.5:
                row.append(seg)
                bound[0], bound[1] = min(bound[0], seg.top), max(bound[1], seg.bottom)
                break
        else:
            rows.append([seg])
            bounds.append([seg.top, seg.bottom])
    lines = []
    for row in rows:
        row.sort(key=lambda s: s.x0)
        heights = sorted(s.height for s in row)
        median_h = heights[len(heights) // 2]
        kept = [
            s for i, s in enumerate(row)
            # Raised small digits right after a word are footnote markers, not text.
            if not (i > 0 and _FOOTNOTE_MARK.match(s.text.strip()) and s.height < 0.85 * median_h
                    and s.x0 - row[i - 1].x1 < 2.5)
        ]
        cells: list[Segment] = []
        for s in kept:
            if cells:
                prev = cells[-1]
                gap = s.x0 - prev.x1
                width = max(_char_width(prev), _char_width(s), 2.0)
                lone_bullet = (len(prev.text.strip()) == 1
                               and is_bullet_line(prev.text.strip() + " x"))
                if gap < 2.6 * width or lone_bullet:
                    if lone_bullet:
                        gap = width  # a bullet glyph and its text belong to one cell
                    sep = "" if gap < 0.15 * width else " "
                    cells[-1] = Segment(prev.text.rstrip() + sep + s.text.lstrip() if sep else
                                        prev.text + s.text, prev.x0, s.x1,
                                        min(prev.top, s.top), max(prev.bottom, s.bottom),
                                        max(prev.size, s.size), prev.bold and s.bold)
                    continue
            cells.append(Segment(s.text, s.x0, s.x1, s.top, s.bottom, s.size, s.bold))
        for c in cells:
            c.text = " ".join(c.text.split())
        cells = [c for c in cells if c.text]
        if cells:
            lines.append(Line(cells, min(c.top for c in cells), max(c.bottom for c in cells)))
    lines.sort(key=lambda ln: ln.top)
    return lines


def remove_furniture(pages: list[list[Line]], *, min_fraction: float, edge_lines: int,
                     page_heights: list[float] | None = None,
                     margin: float = 0.12) -> list[list[Line]]:
    """Drop running headers/footers (recurring at page edges) and bare numbers or markings.

    An edge line is one of the first or last ``edge_lines`` of a page; where page heights
    are known it must also sit in the top or bottom ``margin`` of the page.
    """
    n = len(pages)

    def edge(i: int, lines: list[Line]) -> list[Line]:
        cand = lines[:edge_lines] + lines[-edge_lines:]
        if page_heights:
            h = page_heights[i]
            cand = [ln for ln in cand if ln.top < margin * h or ln.bottom > (1 - margin) * h]
        return cand

    def key(ln: Line) -> tuple[str, int]:
        # Running headers sit at the same height on every page; body text drifts.
        return furniture_key(ln.text), round(ln.top / 6)

    counts: Counter[tuple[str, int]] = Counter()
    for i, lines in enumerate(pages):
        counts.update({key(ln) for ln in edge(i, lines)})
    needed = max(2, int(min_fraction * n + 0.999))
    running = {k for k, c in counts.items() if c >= needed} if n >= 2 else set()
    out = []
    for i, lines in enumerate(pages):
        edge_ids = {id(ln) for ln in edge(i, lines)}
        kept = []
        for ln in lines:
            if is_furniture(ln.text):
                continue
            if id(ln) in edge_ids and key(ln) in running:
                continue
            kept.append(ln)
        out.append(kept)
    return out


@dataclass
class _Group:
    """Lines that belong together before they become a block."""

    kind: str
    page: int
    lines: list[str] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    bold: bool = True
    cells: list[list[str]] = field(default_factory=list)  # table rows: one text list per column


def _column_of(x0: float, columns: list[float]) -> int:
    best = 0
    for i, c in enumerate(columns):
        if x0 >= c - 6:
            best = i
    return best


def lines_to_blocks(pages: list[list[Line]], *, paragraph_gap: float) -> list[Block]:
    """Turn cleaned lines into heading, paragraph, bullet and table-cell blocks."""
    all_heights = [ln.height for lines in pages for ln in lines]
    median_h = statistics.median(all_heights) if all_heights else 10.0
    all_sizes = [ln.size for lines in pages for ln in lines]
    median_size = statistics.median(all_sizes) if all_sizes else 10.0
    vocabulary = hyphenated_vocabulary(" ".join(ln.text for lines in pages for ln in lines))
    groups: list[_Group] = []
    columns: list[float] = []
    for page_no, lines in enumerate(pages, start=1):
        prev: Line | None = None
        for ln in lines:
            gap = (ln.top - prev.bottom) if prev else 1e9
            new_para = gap > paragraph_gap * median_h
            cur = groups[-1] if groups else None
            # A table may run over a page break, so table mode survives the page change.
            in_table = cur is not None and cur.kind == "table"
            if len(ln.cells) > 1:
                if not in_table or (columns and len(ln.cells) > len(columns)):
                    columns = [c.x0 for c in ln.cells]
                    groups.append(_Group("table", page_no, cells=[]))
                    cur = groups[-1]
                    new_para = True
                assert cur is not None
                if new_para or not cur.cells:
                    cur.cells.append(["" for _ in columns])
                for c in ln.cells:
                    col = _column_of(c.x0, columns)
                    row = cur.cells[-1]
                    row[col] = (row[col] + "\n" + c.text).strip("\n")
                prev = ln
                continue
            if in_table and cur is not None and columns:
                spans = ln.x0 < columns[-1] - 6 and ln.x1 > columns[-1] + 6
                outside = ln.x0 < columns[0] - 3 or gap > 2.5 * median_h
                if not spans and not outside:
                    if new_para:
                        cur.cells.append(["" for _ in columns])
                    col = _column_of(ln.x0, columns)
                    row = cur.cells[-1]
                    row[col] = (row[col] + "\n" + ln.text).strip("\n")
                    prev = ln
                    continue
                new_para = True
            text = ln.text
            if is_bullet_line(text):
                groups.append(_Group("bullet", page_no, [strip_bullet(text)], [ln.size], ln.bold))
            elif new_para or cur is None or cur.kind == "table":
                groups.append(_Group("paragraph", page_no, [text], [ln.size], ln.bold))
            else:
                cur.lines.append(text)
                cur.sizes.append(ln.size)
                cur.bold = cur.bold and ln.bold
            prev = ln
    return _groups_to_blocks(groups, median_size, vocabulary)


_HEADING_PATTERN = re.compile(
    r"^(recommendation|rec\b|\d{1,2}(\.\d{1,2})?[a-z]?[.)]?\s+[A-Z])", re.I
)


def _is_heading(g: _Group, text: str, median_size: float) -> bool:
    """Short, title-like, and set apart by size, weight, capitals or numbering."""
    if len(g.lines) > 2 or not looks_like_heading(text, max_words=16):
        return False
    large = min(g.sizes) >= 1.08 * median_size if g.sizes else False
    if g.kind == "bullet":
        return large  # a numbered heading ("3. Recommendation 2") is set larger than list items
    if len(g.lines) == 2:
        return large
    return large or g.bold or text.isupper() or bool(_HEADING_PATTERN.match(text))


def _groups_to_blocks(groups: list[_Group], median_size: float,
                      vocabulary: set[str]) -> list[Block]:
    blocks: list[Block] = []
    heading = ""
    for g in groups:
        if g.kind == "table":
            rows = [r for r in g.cells if any(c.strip() for c in r)]
            if rows and all(len(c.split()) <= 5 for c in rows[0]) and len(rows) > 1:
                rows = rows[1:]  # a header row ("Recommendation | Response") is not content
            context = ""
            for row in rows:
                cells = [join_lines(c.split("\n"), vocabulary) for c in row]
                context = cells[0] or context
                for i, cell in enumerate(cells):
                    if cell:
                        blocks.append(Block(cell, g.page, "table_cell", heading,
                                            context if i > 0 else ""))
            continue
        text = join_lines(g.lines, vocabulary)
        if not text:
            continue
        if _is_heading(g, text, median_size):
            heading = text
            blocks.append(Block(text, g.page, "heading", heading))
            continue
        if g.kind == "paragraph" and blocks and _continues(blocks[-1], text, g.page):
            prev = blocks[-1]
            blocks[-1] = Block(join_lines([prev.text, text], vocabulary), prev.page, prev.kind,
                               prev.heading, prev.context)
            continue
        blocks.append(Block(text, g.page, g.kind, heading))
    return blocks


def _continues(prev: Block, text: str, page: int) -> bool:
    """A paragraph broken across a page boundary: previous page's last block ends mid-sentence."""
    return (prev.kind in ("paragraph", "bullet") and page == prev.page + 1
            and not ends_sentence(prev.text) and bool(text))
