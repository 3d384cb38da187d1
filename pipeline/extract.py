"""The extract stage over a batch: files -> documents.csv rows and passages.

One document never stops the batch: every input ends as a :class:`DocumentResult` with
status ok, warning or error and a one-line reason.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import IngestParams, SegmentParams
from .errors import IngestError
from .ingest import read_document, sha256_file
from .records import DocumentResult, Passage
from .segment import segment
from .taxonomy import Taxonomy

log = logging.getLogger(__name__)

IGNORE_FILE = ".forcecovignore"


def _ignored(path: Path, root: Path, patterns: list[str]) -> bool:
    rel = path.relative_to(root).as_posix()
    for pat in patterns:
        pat = pat.strip()
        if not pat or pat.startswith("#"):
            continue
        if pat.endswith("/"):
            if rel.startswith(pat) or f"/{pat}" in f"/{rel}":
                return True
        elif fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat):
            return True
    return False


def find_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named, plus every file under folders named (recursive, sorted).

    Hidden files are skipped, and so is whatever a folder's ``.forcecovignore`` lists
    (glob patterns, one a line; ``name/`` for a folder).
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            ignore_file = p / IGNORE_FILE
            patterns = ignore_file.read_text(encoding="utf-8").splitlines() if ignore_file.exists() else []
            for f in sorted(p.rglob("*")):
                rel_parts = f.relative_to(p).parts
                if f.is_file() and not any(part.startswith(".") for part in rel_parts) \
                        and not _ignored(f, p, patterns):
                    found.append(f)
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


@dataclass(frozen=True)
class Extracted:
    """One input's outcome: its documents.csv row and its passages (empty on error)."""

    result: DocumentResult
    passages: list[Passage]


def extract_one(path: Path, *, ingest: IngestParams, seg: SegmentParams,
                taxonomy: Taxonomy | None = None, manifest: dict[str, str] | None = None) -> Extracted:
    """Read and segment one file. Never raises: failures become an error row."""
    valid = None
    if taxonomy is not None:
        valid = set(taxonomy.subpoints) | {c.recommendation for c in taxonomy.categories}
    try:
        doc = read_document(path, params=ingest, manifest=manifest)
        passages = segment(doc, params=seg, valid_refs=valid)
        status = "warning" if doc.warnings else "ok"
        if not passages:
            status, doc.warnings = "warning", doc.warnings + ["no passages found"]
        result = DocumentResult(doc.doc_id, str(path), doc.sha256, doc.force, doc.format,
                                doc.pages, len(passages), status, "; ".join(doc.warnings))
        return Extracted(result, passages)
    except IngestError as e:
        reason = e.reason
    except Exception as e:  # the per-document boundary: report, count, go on
        log.exception("unexpected failure on %s", path)
        reason = f"internal error ({type(e).__name__}: {str(e)[:100]}); please report this file"
    try:
        sha = sha256_file(path)
    except OSError:
        sha = ""
    return Extracted(DocumentResult(sha[:16], str(path), sha, "unknown", path.suffix.lower().lstrip("."),
                                    0, 0, "error", reason), [])


def extract_many(files: list[Path], *, ingest: IngestParams, seg: SegmentParams,
                 taxonomy: Taxonomy | None = None, manifest: dict[str, str] | None = None,
                 on_done: Callable[[Extracted], None] | None = None) -> Iterator[Extracted]:
    """Extract files one after another, yielding each outcome as soon as it is ready."""
    for f in files:
        out = extract_one(f, ingest=ingest, seg=seg, taxonomy=taxonomy, manifest=manifest)
        if on_done:
            on_done(out)
        yield out


@dataclass(frozen=True)
class ExtractSummary:
    n_files: int
    n_ok: int
    n_warning: int
    n_error: int
    n_passages: int
    results: list[DocumentResult]


def write_documents_csv(path: Path, results: list[DocumentResult]) -> None:
    import pandas as pd

    from .atomic import write_frame_csv
    from .records import DOCUMENT_COLUMNS

    frame = pd.DataFrame([r.__dict__ for r in results], columns=DOCUMENT_COLUMNS)
    write_frame_csv(path, frame)


def run_extract(inputs: list[str | Path], out_dir: Path, *, ingest: IngestParams, seg: SegmentParams,
                taxonomy: Taxonomy | None = None, manifest: dict[str, str] | None = None,
                on_done: Callable[[Extracted], None] | None = None) -> ExtractSummary:
    """Extract every input into ``out_dir/passages.jsonl`` and ``out_dir/documents.csv``.

    Passages are streamed to a temporary file as each document finishes, then moved into
    place, so a crash never leaves a half-written passages.jsonl.
    """
    import json

    from .atomic import atomic_open

    files = find_inputs(inputs)
    results: list[DocumentResult] = []
    n_passages = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / "passages.jsonl") as fh:
        for out in extract_many(files, ingest=ingest, seg=seg, taxonomy=taxonomy,
                                manifest=manifest, on_done=on_done):
            results.append(out.result)
            for p in out.passages:
                fh.write(json.dumps(p.to_json(), ensure_ascii=False) + "\n")
            n_passages += len(out.passages)
    write_documents_csv(out_dir / "documents.csv", results)
    return ExtractSummary(
        n_files=len(files),
        n_ok=sum(r.status == "ok" for r in results),
        n_warning=sum(r.status == "warning" for r in results),
        n_error=sum(r.status == "error" for r in results),
        n_passages=n_passages,
        results=results,
    )
