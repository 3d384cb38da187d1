"""Plain record types passed between stages.

Ids are derived from content (document sha256 plus position), so a rerun on the same files
gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

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

    def to_json(self) -> dict[str, object]:
        # Every field is flat, so a shallow dict; dataclasses.asdict deep-copies each value
        # and took a second per 10,000 passages.
        d: dict[str, object] = {name: getattr(self, name) for name in PASSAGE_COLUMNS}
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


# Column order of documents.csv and of extracted passages: the records' own fields.
DOCUMENT_COLUMNS = [f.name for f in fields(DocumentResult)]
PASSAGE_COLUMNS = [f.name for f in fields(Passage)]

# Arrow types of the annotations used on Passage (annotations are strings here).
_ARROW_TYPES = {"str": "string", "int": "int64", "float | None": "float64",
                "tuple[str, ...]": "list<string>"}
# What the classify stage adds to each passage, in order, after one p_<category> per
# category: see :func:`scored_passage_schema`.
PREDICTION_COLUMNS = [("labels", "list<string>"), ("echo", "bool"), ("confidence", "float64"),
                      ("needs_review", "bool"), ("ocr_low_confidence", "bool")]


def scored_passage_schema(labels: list[str], depth_columns: list[str]) -> pa.Schema:
    """The one DataFrame schema of a scored passage (``passages.parquet``), as Arrow.

    Columns, in order:

    * the :class:`Passage` fields (``passage_id`` ... ``ocr_confidence``);
    * ``p_<category>`` for each category: the classifier's probability;
    * ``labels`` (categories at or above their thresholds, echoes excluded), ``echo`` (a
      restated recommendation), ``confidence`` (distance of the least sure category from
      its threshold), ``needs_review``, ``ocr_low_confidence``;
    * ``depth_columns`` (:func:`pipeline.depth.depth_columns`): ``status`` (text) and the
      status, specificity and sub-point probabilities, blank without depth heads.

    Fixed, so that batches append to one file and every stage reads the same columns.
    """
    import pyarrow as pa

    arrow = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "bool": pa.bool_(), "list<string>": pa.list_(pa.string())}
    columns = [(f.name, _ARROW_TYPES[str(f.type)]) for f in fields(Passage)]
    columns += [(f"p_{lab}", "float64") for lab in labels]
    columns += PREDICTION_COLUMNS
    columns += [(col, "string" if col == "status" else "float64") for col in depth_columns]
    return pa.schema([(name, arrow[kind]) for name, kind in columns])


def write_documents_csv(path: Path, results: list[DocumentResult]) -> None:
    """documents.csv: one row per input (:data:`DOCUMENT_COLUMNS`), written atomically."""
    import pandas as pd

    from .atomic import write_frame_csv
    frame = pd.DataFrame([r.__dict__ for r in results], columns=DOCUMENT_COLUMNS)
    write_frame_csv(path, frame)


def read_documents_csv(path: Path) -> list[DocumentResult]:
    """The rows :func:`write_documents_csv` wrote (spreadsheet-safe text restored)."""
    import pandas as pd

    from .atomic import from_spreadsheet_safe

    results = []
    for row in pd.read_csv(path, keep_default_na=False, dtype=str).to_dict("records"):
        text = {str(k): from_spreadsheet_safe(str(v)) for k, v in row.items()}
        results.append(DocumentResult(
            doc_id=text["doc_id"], path=text["path"], sha256=text["sha256"],
            force=text["force"], format=text["format"], pages=int(text["pages"] or 0),
            n_passages=int(text["n_passages"] or 0), status=text["status"],
            reason=text["reason"], ocr_pages=int(text["ocr_pages"] or 0),
            ocr_confidence=float(text["ocr_confidence"]) if text["ocr_confidence"] else None))
    return results


@dataclass(frozen=True)
class Extracted:
    """One input's outcome: its documents.csv row and its passages (empty on error)."""

    result: DocumentResult
    passages: list[Passage]
