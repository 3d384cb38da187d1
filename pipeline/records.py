"""Plain record types passed between stages.

Ids are derived from content (document sha256 plus position), so a rerun on the same files
gives the same ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BLOCK_KINDS = ("heading", "paragraph", "bullet", "table_cell")


@dataclass
class Block:
    """One unit of a document's layout: a heading, paragraph, bullet item or table cell.

    ``page`` is 1-based; ``heading`` is the nearest heading above; ``context`` holds the
    row's first cell for table cells.
    """

    text: str
    page: int
    kind: str = "paragraph"
    heading: str = ""
    context: str = ""
    char_start: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}")
        if self.page < 1:
            raise ValueError("page numbers are 1-based")

    @property
    def char_end(self) -> int:
        return self.char_start + len(self.text)


@dataclass
class Document:
    """An extracted document. ``text`` is its blocks joined by newlines; block offsets index it."""

    doc_id: str
    path: str
    sha256: str
    format: str
    force: str
    pages: int
    blocks: list[Block]
    warnings: list[str] = field(default_factory=list)
    ocr_pages: dict[int, float] = field(default_factory=dict)  # page -> mean word confidence

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


@dataclass(frozen=True)
class Passage:
    """The unit the classifier scores: a paragraph, a bullet group with its lead-in, or a cell."""

    passage_id: str
    doc_id: str
    force: str
    source_path: str
    page: int
    heading: str
    text: str
    rec_refs: tuple[str, ...]
    char_start: int
    char_end: int
    kind: str = "paragraph"
    context: str = ""
    source: str = "text"  # text (the file's own text) | ocr (read from a scanned page)
    ocr_confidence: float | None = None  # the page's mean OCR word confidence, 0-100

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["rec_refs"] = list(self.rec_refs)
        return d


@dataclass(frozen=True)
class DocumentResult:
    """One input's outcome, as a row of documents.csv."""

    doc_id: str
    path: str
    sha256: str
    force: str
    format: str
    pages: int
    n_passages: int
    status: str  # ok | warning | error
    reason: str
    ocr_pages: int = 0  # pages read by OCR
    ocr_confidence: float | None = None  # their mean word confidence, 0-100

    def __post_init__(self) -> None:
        if self.status not in ("ok", "warning", "error"):
            raise ValueError(f"unknown status {self.status!r}")


DOCUMENT_COLUMNS = [
    "doc_id", "path", "sha256", "force", "format", "pages", "n_passages", "status", "reason",
    "ocr_pages", "ocr_confidence",
]
PASSAGE_COLUMNS = [
    "passage_id", "doc_id", "force", "source_path", "page", "heading", "text", "rec_refs",
    "char_start", "char_end", "kind", "context", "source", "ocr_confidence",
]
