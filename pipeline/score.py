"""The main job: extract -> classify -> coverage -> report, over a folder of submissions,
in one process (the DVC chain runs the same stages one command each: extract,
:mod:`pipeline.predict`, :mod:`pipeline.findings`).

Outputs in the run folder (columns documented in the README):
passages.parquet, coverage.csv, coverage_matrix.csv, documents.csv, practices.csv,
themes.csv, summary.json, report.html, figures/heatmap.png, figures/score_distribution.png.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .classify import TrainedModel
from .config import Params
from .depth import multi_subpoints
from .extract import extract_many
from .findings import EvidenceCollector, ScoreSummary, warm_figures, write_findings
from .inputfiles import find_inputs
from .passagefile import PassageWriter
from .predict import predict_passages
from .records import PASSAGE_COLUMNS, Extracted
from .runfolder import load_previous_run, staging_folder
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from .compare import RunTables
    from .records import DocumentResult


def run_score(inputs: Sequence[str | Path], out_dir: Path, *, model: TrainedModel,
              params: Params, taxonomy: Taxonomy, manifest: dict[str, str] | None = None,
              on_done: Callable[[Extracted], None] | None = None, jobs: int | None = None,
              backend: str | None = None, scheduler: str | None = None,
              cache_dir: Path | None = None, shared_output: bool = False,
              previous_run: Path | None = None, profile: bool = False) -> ScoreSummary:
    """Score every input and write the run folder: the whole chain in one process.

    With ``previous_run`` (an earlier run folder, read before anything is written, so it
    may be ``out_dir`` itself), the run also writes changes.csv and a report section on what
    changed since then (:mod:`pipeline.compare`). With ``profile``, the run is profiled
    (cProfile, this process only: with ``jobs`` > 1 extraction runs in workers) and
    profile.txt lists the 30 functions with the most cumulative time.

    Documents stream through: each chunk is extracted (in parallel if asked), classified,
    appended to passages.parquet and reduced to its evidence, so memory holds one chunk
    plus the evidence, never every document. With ``cache_dir``, unchanged documents are
    not extracted again, so an interrupted run resumes quickly. The whole run is written
    into a staging folder and published at the end (:func:`pipeline.runfolder.publish_run`),
    so ``out_dir`` never holds files of two runs.
    """
    import time
    import uuid

    t_start = time.perf_counter()
    jobs = jobs if jobs is not None else params.score.jobs
    backend = backend or params.score.backend
    out_dir = Path(out_dir)
    previous = load_previous_run(previous_run, taxonomy)
    run_id = uuid.uuid4().hex[:16]
    with staging_folder(out_dir, shared=shared_output) as staging:
        profiler = _start_profile() if profile else None
        try:
            summary_out = _score_into(staging, inputs, model=model, params=params,
                                      taxonomy=taxonomy, manifest=manifest, on_done=on_done,
                                      jobs=jobs, backend=backend, scheduler=scheduler,
                                      cache_dir=cache_dir, run_id=run_id, previous=previous)
        finally:
            if profiler is not None:
                profiler.disable()
        if profiler is not None:
            _write_profile(profiler, staging / "profile.txt")
    seconds = {**summary_out.seconds, "total": time.perf_counter() - t_start}
    return replace(summary_out, out_dir=out_dir, seconds=seconds)


def _start_profile() -> Any:
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _write_profile(profiler: Any, path: Path, top: int = 30) -> None:
    import io
    import pstats

    from .atomic import write_text

    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    write_text(path, text.getvalue())


def _score_into(out_dir: Path, inputs: Sequence[str | Path], *, model: TrainedModel,
                params: Params, taxonomy: Taxonomy, manifest: dict[str, str] | None,
                on_done: Callable[[Extracted], None] | None, jobs: int, backend: str,
                scheduler: str | None, cache_dir: Path | None, run_id: str,
                previous: RunTables | None = None) -> ScoreSummary:
    """Every output of a run, written into ``out_dir`` (the staging folder)."""
    import time

    from .extractcache import ExtractCache

    files = find_inputs(inputs)
    cache = ExtractCache(cache_dir, ingest=params.ingest, seg=params.segment, taxonomy=taxonomy,
                         manifest=manifest) if cache_dir else None
    # "coverage" starts with the evidence collected batch by batch during the run.
    seconds = {"extract": 0.0, "classify": 0.0, "coverage": 0.0}
    results: list[DocumentResult] = []
    collected = EvidenceCollector(taxonomy)
    writer = PassageWriter(out_dir / "passages.parquet", model.labels,
                           multi_subpoints(taxonomy), run_id, model.version)
    warmed = None
    try:
        t0 = time.perf_counter()
        batch: list[dict[str, object]] = []

        def flush() -> None:
            nonlocal batch
            if not batch:
                return
            t1 = time.perf_counter()
            # In this process: with --jobs, the workers are busy extracting the next files,
            # and splitting a batch across processes again competed with them for the cores
            # (--jobs 2 ran no faster than --jobs 1).
            scored = predict_passages(pd.DataFrame(batch, columns=PASSAGE_COLUMNS), model, params)
            writer.write(scored)
            seconds["classify"] += time.perf_counter() - t1
            t2 = time.perf_counter()
            collected.add(scored)  # the coverage stage's work, done while the reader reads on
            seconds["coverage"] += time.perf_counter() - t2
            batch = []

        for extracted in extract_many(files, ingest=params.ingest, seg=params.segment,
                                      taxonomy=taxonomy, manifest=manifest, on_done=on_done,
                                      jobs=jobs, backend=backend, scheduler=scheduler,
                                      cache=cache):
            results.append(extracted.result)
            batch += [p.to_json() for p in extracted.passages]
            if len(batch) >= 2000:  # classify as we go, while workers extract the next files
                flush()
        warmed = warm_figures(params)  # every document is read: the worker is free
        flush()
        seconds["extract"] = (time.perf_counter() - t0 - seconds["classify"]
                              - seconds["coverage"])
        writer.close()
    except BaseException:
        writer.abort()
        if warmed is not None:
            warmed.abandon()
        raise
    summary_out = write_findings(out_dir, collected, results, model_version=model.version,
                                 run_id=run_id, params=params, taxonomy=taxonomy,
                                 previous=previous, seconds=seconds, warmed=warmed)
    return replace(summary_out, n_files=len(files), n_cached=cache.hits if cache else 0)


