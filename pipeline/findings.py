"""The coverage and report stages: scored passages reduced to evidence, then coverage,
practices, themes, the national summary and report.html, written into a run folder.

``forcecov score`` feeds :class:`EvidenceCollector` batch by batch as it classifies;
``forcecov report`` (:func:`report_classified`) feeds it from a classified passages.parquet.
Both finish with :func:`write_findings`, so the two routes write the same files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from .atomic import write_frame_csv, write_json
from .config import Params
from .coverage import (
    NationalSummary,
    coverage_from_evidence,
    coverage_matrix,
    evidence_table,
    national_summary,
    stated_gaps,
)
from .forces import territorial_forces
from .passagefile import MODEL_VERSION_KEY, copy_passage_file, passage_file_metadata
from .practices import practices_by_force, practices_by_row
from .records import DocumentResult, read_documents_csv, write_documents_csv
from .runfolder import load_previous_run, staging_folder
from .taxonomy import Taxonomy
from .themes import national_rows, themes

if TYPE_CHECKING:
    from .compare import RunTables
    from .ingest.budget import Pending
    from .report import Figures

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ScoreSummary:
    n_files: int
    n_ok: int
    n_warning: int
    n_error: int
    n_passages: int
    n_needs_review: int
    out_dir: Path
    summary: NationalSummary
    results: list[DocumentResult]
    seconds: dict[str, float]  # per stage: extract, classify, coverage, report, total
    n_cached: int = 0
    n_pages: int = 0


def stage_timings(seconds: dict[str, float], *, n_pages: int,
                  n_passages: int) -> dict[str, dict[str, float]]:
    """Wall time per stage with its throughput: pages/s for extraction (with --jobs it runs
    in workers while the main process classifies, so the stages overlap), passages/s for
    the rest."""
    out = {}
    for stage, secs in seconds.items():
        per_s = (n_pages if stage == "extract" else n_passages) / secs if secs > 0 else 0.0
        unit = "pages_per_s" if stage == "extract" else "passages_per_s"
        out[stage] = {"seconds": round(secs, 3), unit: round(per_s, 1)}
    return out


class EvidenceCollector:
    """Reduces scored passages, batch by batch, to what coverage and the report need: the
    evidence table (:func:`pipeline.coverage.evidence_table`), three counts, and each
    evidence row's named practices and national-work flag (found here, batch by batch,
    while the next documents are read, rather than all at the end)."""

    def __init__(self, taxonomy: Taxonomy):
        self.taxonomy = taxonomy
        self.parts: list[pd.DataFrame] = []
        self.practices: list[frozenset[tuple[str, str]]] = []  # per evidence row, in order
        self.national: list[bool] = []  # per evidence row, in order
        self.n_passages = self.n_echo = self.n_needs_review = 0

    def add(self, scored: pd.DataFrame) -> None:
        part = evidence_table(scored, self.taxonomy)
        self.parts.append(part)
        self.practices += practices_by_row(part, self.taxonomy)
        self.national += national_rows(part, self.taxonomy).tolist()
        self.n_passages += len(scored)
        self.n_echo += int(scored["echo"].sum())
        self.n_needs_review += int(scored["needs_review"].sum())

    def evidence(self) -> pd.DataFrame:
        return (pd.concat(self.parts, ignore_index=True) if self.parts
                else evidence_table(pd.DataFrame(), self.taxonomy))


def warm_figures(params: Params) -> Pending[None] | None:
    """Import the plotting library in the reading worker as soon as the last document is
    read, while this process classifies the last batch, so that :func:`start_figures` later
    waits on drawing alone. None where figures are drawn in this process."""
    from .report import import_plotting

    if not params.ingest.isolate:
        return None
    return _in_reading_worker(params, import_plotting)


def start_figures(cov: pd.DataFrame, taxonomy: Taxonomy, params: Params) -> Pending[Figures]:
    """Start rendering the report's figures in the reading worker, idle once every document
    is read, so that matplotlib (its import alone takes about a second) works while this
    process finds practices and themes. The call queues behind :func:`warm_figures`'s, if
    any, in the same worker; :func:`figures_of` takes the two answers in that order."""
    from .ingest import budget
    from .report import render_figures

    if not params.ingest.isolate:  # no worker processes wanted: render here, now
        return budget.Pending(done=budget.Outcome(render_figures(cov, taxonomy)))
    # Only the columns the figures read: a call larger than the pipe holds would block
    # here until the worker, still importing plotting, takes it.
    drawn = cov[["level", "force", "category", "score"]]
    return _in_reading_worker(params, render_figures, drawn, taxonomy)


def _in_reading_worker(params: Params, fn: Callable[..., T], *args: Any) -> Pending[T]:
    """``fn(*args)`` started in this thread's reading worker, with the readers' budget and
    priority (so that the same worker takes it)."""
    from .ingest import budget

    return budget.submit(fn, *args, timeout=params.ingest.timeout_seconds,
                         max_memory_mb=params.ingest.max_memory_mb,
                         nice=params.ingest.worker_nice)


def figures_of(pending: Pending[Figures], warmed: Pending[None] | None = None
               ) -> Figures | None:
    """The figures :func:`start_figures` rendered, or None (rendered again in this process,
    with a warning) when the worker could not. ``warmed``, the call queued before them in
    that worker, is answered first."""
    if warmed is not None:
        try:
            warmed.result()
        except Exception as e:  # noqa: BLE001 - a failed warm-up only costs time
            log.debug("plotting could not be imported ahead in a worker: %s", e)
    try:
        return pending.result()
    except Exception as e:  # noqa: BLE001 - the report still gets its figures
        log.warning("figures could not be rendered in a worker (%s); rendering them here", e)
        return None


@contextlib.contextmanager
def _abandoned_on_error(calls: list[Pending[Any]]) -> Iterator[None]:
    """Abandon ``calls`` (those still unanswered) if the block fails: their answers must not
    reach the worker's next caller."""
    try:
        yield
    except BaseException:
        for call in calls:
            call.abandon()
        raise


def write_findings(out_dir: Path, collected: EvidenceCollector, results: list[DocumentResult],
                   *, model_version: str, run_id: str, params: Params, taxonomy: Taxonomy,
                   previous: RunTables | None = None,
                   seconds: dict[str, float] | None = None,
                   warmed: Pending[None] | None = None) -> ScoreSummary:
    """The coverage and report stages: from the collected evidence and the documents'
    outcomes, write coverage.csv, coverage_matrix.csv, practices.csv, themes.csv,
    documents.csv, changes.csv (with ``previous``), report.html and, last, summary.json.
    ``warmed``: :func:`warm_figures`'s call, when the caller started one."""
    import time

    # Coverage time already spent collecting evidence during the run is kept and added to.
    seconds = dict(seconds or {})
    seconds["coverage"], seconds["report"] = seconds.get("coverage", 0.0), 0.0
    t2 = time.perf_counter()
    evidence = collected.evidence()
    documents = pd.DataFrame([r.__dict__ for r in results]) if results else pd.DataFrame(
        columns=["doc_id", "force", "status"])
    calls: list[Pending[Any]] = [warmed] if warmed is not None else []
    with _abandoned_on_error(calls):
        cov = coverage_from_evidence(evidence, documents, taxonomy, params.coverage)
        figures = start_figures(cov, taxonomy, params)
        calls.append(figures)
        practices = practices_by_force(evidence, taxonomy, collected.practices)
        theme_table = themes(evidence, taxonomy, params.themes,
                             pd.Series(collected.national, index=evidence.index, dtype=bool))
        summary = national_summary(cov, taxonomy, territorial_forces(),
                                   stated_gaps(evidence, taxonomy))
        summary.update({
            "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": run_id, "model_version": model_version, "n_documents": len(results),
            "n_documents_error": sum(r.status == "error" for r in results),
            "n_passages": collected.n_passages, "n_echo": collected.n_echo,
            "n_needs_review": collected.n_needs_review,
        })
        write_frame_csv(out_dir / "coverage.csv", cov)
        write_frame_csv(out_dir / "coverage_matrix.csv", coverage_matrix(cov, taxonomy))
        write_frame_csv(out_dir / "practices.csv", practices)
        write_frame_csv(out_dir / "themes.csv", theme_table)
        write_documents_csv(out_dir / "documents.csv", results)
        changes = None
        if previous is not None:
            from .compare import RunTables, compare_runs

            now = RunTables(cov[cov["level"] == "force"].reset_index(drop=True), evidence)
            changes = compare_runs(previous, now, taxonomy)
            write_frame_csv(out_dir / "changes.csv", changes)
        seconds["coverage"] += time.perf_counter() - t2
        t3 = time.perf_counter()
        from .report import write_report

        write_report(out_dir, coverage=cov, evidence=evidence, practices=practices,
                     summary=summary, documents=results, taxonomy=taxonomy, changes=changes,
                     themes=theme_table, theme_min_forces=params.themes.min_forces,
                     previous_run=previous.name if previous else "",
                     figures=figures_of(figures, warmed))
    seconds["report"] = time.perf_counter() - t3
    n_pages = sum(r.pages for r in results)
    # Written last, with where the time went beside the figures it explains.
    summary["stages"] = stage_timings(seconds, n_pages=n_pages, n_passages=collected.n_passages)
    write_json(out_dir / "summary.json", summary)
    return ScoreSummary(len(results), sum(r.status == "ok" for r in results),
                        sum(r.status == "warning" for r in results),
                        sum(r.status == "error" for r in results), collected.n_passages,
                        collected.n_needs_review, out_dir, summary, results, seconds,
                        0, n_pages)


def report_classified(passages_file: Path, documents_csv: Path, out_dir: Path, *,
                      params: Params, taxonomy: Taxonomy, shared_output: bool = False,
                      previous_run: Path | None = None) -> ScoreSummary:
    """The coverage and report stages of the chain, from classified passages and extract's
    documents.csv: a complete run folder, as ``forcecov score`` writes one."""
    import time
    import uuid

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    previous = load_previous_run(previous_run, taxonomy)
    run_id = uuid.uuid4().hex[:16]
    model_version = passage_file_metadata(passages_file)[MODEL_VERSION_KEY]
    collected = EvidenceCollector(taxonomy)
    with staging_folder(out_dir, shared=shared_output) as staging:
        copy_passage_file(passages_file, staging / "passages.parquet", run_id=run_id,
                          on_batch=collected.add)
        summary_out = write_findings(staging, collected, read_documents_csv(documents_csv),
                                     model_version=model_version, run_id=run_id,
                                     params=params, taxonomy=taxonomy, previous=previous)
    seconds = {**summary_out.seconds, "total": time.perf_counter() - t_start}
    return replace(summary_out, out_dir=out_dir, seconds=seconds)
