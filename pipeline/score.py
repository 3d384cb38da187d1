"""The main job: extract -> classify -> coverage -> report, over a folder of submissions.

Outputs in the run folder (columns documented in the README):
passages.parquet, coverage.csv, coverage_matrix.csv, documents.csv, practices.csv,
themes.csv, summary.json, report.html, figures/heatmap.png, figures/score_distribution.png.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .atomic import write_frame_csv, write_json
from .classify import TrainedModel
from .config import Params
from .coverage import (
    coverage_from_evidence,
    coverage_matrix,
    evidence_table,
    national_summary,
    stated_gaps,
)
from .depth import depth_columns, multi_subpoints, with_depth_columns
from .extract import Extracted, extract_many, find_inputs, write_documents_csv
from .forces import territorial_forces
from .practices import practices_by_force
from .records import PASSAGE_COLUMNS
from .taxonomy import Taxonomy
from .themes import themes

if TYPE_CHECKING:
    import pyarrow as pa

    from .compare import RunTables
    from .records import DocumentResult


@dataclass(frozen=True)
class ScoreSummary:
    n_files: int
    n_ok: int
    n_warning: int
    n_error: int
    n_passages: int
    n_needs_review: int
    out_dir: Path
    summary: dict[str, Any]
    results: list[DocumentResult]
    seconds: dict[str, float]  # per stage: extract, classify, coverage, report, total
    n_cached: int = 0
    n_pages: int = 0


def predict_passages(passages: pd.DataFrame, model: TrainedModel, params: Params, *,
                     jobs: int = 1) -> pd.DataFrame:
    """Passages with the model's probabilities, labels, echo flag, confidence, needs_review.

    With ``jobs`` > 1 and enough passages, the rows are split across worker processes:
    feature extraction is pure Python, so threads would not help.
    """
    margin = params.coverage.review_margin
    if jobs > 1 and len(passages) >= 500 * jobs:
        from joblib import Parallel, delayed

        parts = [passages.iloc[i::jobs] for i in range(jobs)]
        results = Parallel(n_jobs=jobs)(delayed(model.predict)(part, review_margin=margin)
                                        for part in parts)
        preds = pd.concat([r.set_axis(part.index) for r, part in zip(results, parts, strict=True)])
        preds = preds.loc[passages.index]
    else:
        preds = model.predict(passages, review_margin=margin)
    scored = pd.concat([passages.reset_index(drop=True), preds.reset_index(drop=True)], axis=1)
    # Text read from a page Tesseract was unsure of goes to an analyst, whatever the model says.
    ocr_conf = pd.to_numeric(scored.get("ocr_confidence", pd.Series(np.nan, index=scored.index)),
                             errors="coerce")
    scored["ocr_low_confidence"] = (ocr_conf < params.ingest.ocr_min_confidence).to_numpy()
    scored["needs_review"] = scored["needs_review"].astype(bool) | scored["ocr_low_confidence"]
    return scored


def passage_schema(labels: list[str], subpoints: list[str]) -> pa.Schema:
    """Arrow schema of passages.parquet, fixed so that batches append to one file.
    ``subpoints``: those with a ``q_`` column (:func:`pipeline.depth.multi_subpoints`)."""
    import pyarrow as pa

    fields = [("passage_id", pa.string()), ("doc_id", pa.string()), ("force", pa.string()),
              ("source_path", pa.string()), ("page", pa.int64()), ("heading", pa.string()),
              ("text", pa.string()), ("rec_refs", pa.list_(pa.string())),
              ("char_start", pa.int64()), ("char_end", pa.int64()), ("kind", pa.string()),
              ("context", pa.string()), ("source", pa.string()), ("ocr_confidence", pa.float64())]
    fields += [(f"p_{lab}", pa.float64()) for lab in labels]
    fields += [("labels", pa.list_(pa.string())), ("echo", pa.bool_()),
               ("confidence", pa.float64()), ("needs_review", pa.bool_()),
               ("ocr_low_confidence", pa.bool_())]
    fields += [(col, pa.string() if col == "status" else pa.float64())
               for col in depth_columns(subpoints)]
    return pa.schema(fields)


class PassageWriter:
    """Appends scored passages to passages.parquet batch by batch; moved into place on close."""

    def __init__(self, path: Path, labels: list[str], subpoints: list[str], run_id: str = ""):
        import os
        import tempfile

        import pyarrow.parquet as pq

        self.path = path
        self.subpoints = subpoints
        self.schema = passage_schema(labels, subpoints).with_metadata({"forcecov_run_id": run_id})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        self.writer = pq.ParquetWriter(self.tmp, self.schema)

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if len(frame):
            frame = with_depth_columns(frame, self.subpoints)
            table = pa.Table.from_pandas(frame[self.schema.names], schema=self.schema,
                                         preserve_index=False)
            self.writer.write_table(table)

    def close(self) -> None:
        import os

        self.writer.close()
        with open(self.tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        import contextlib
        import os

        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


# What a scoring run writes into its folder; only temporary files of these are its own.
RUN_OUTPUTS = ("passages.parquet", "coverage.csv", "coverage_matrix.csv", "practices.csv",
               "themes.csv", "documents.csv", "summary.json", "report.html")
# Written only when asked for (--compare-with, --profile); a run without them still removes
# an earlier run's, so the folder never mixes two runs.
OPTIONAL_OUTPUTS = ("changes.csv", "profile.txt")
# atomic_open's temporary names: ".<output>.<8 random characters>.tmp"
_OWN_TEMP = re.compile(r"^\.(?:" + "|".join(map(re.escape, RUN_OUTPUTS + OPTIONAL_OUTPUTS))
                       + r")\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(out_dir: Path) -> int:
    """Temporary files an interrupted run of ours left (never read; safe to delete). Other
    hidden ``.tmp`` files in the folder are not ours and are left alone."""
    n = 0
    for tmp in out_dir.glob(".*.tmp") if out_dir.is_dir() else []:
        if _OWN_TEMP.match(tmp.name):
            tmp.unlink(missing_ok=True)
            n += 1
    return n


RUN_FIGURES = "figures"
_STAGING = re.compile(r"^\.(?P<name>.+)\.run-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out_dir: Path) -> int:
    """Staging folders that killed runs into ``out_dir`` left beside it (their process is
    gone); a staging folder of a run still going is left alone."""
    import shutil

    n = 0
    parent = out_dir.parent
    for folder in parent.glob(f".{out_dir.name}.run-*") if parent.is_dir() else []:
        m = _STAGING.match(folder.name)
        if m and m["name"] == out_dir.name and not _pid_alive(int(m["pid"])):
            shutil.rmtree(folder, ignore_errors=True)
            n += 1
    return n


def publish_run(staging: Path, out_dir: Path, *, shared: bool = False) -> None:
    """Move a finished run from its staging folder into ``out_dir``.

    The old run's outputs go first, summary.json before the rest; the new ones come in with
    summary.json last. A kill at any point leaves outputs of one run only, and a folder
    without summary.json is an incomplete run that :func:`check_run` refuses. Files that are
    not outputs of a run (queues, notes) are left alone. Outputs quote documents, so they
    are private to the user (files 0600, folders 0700) unless ``shared``.
    """
    import os
    import shutil

    umask = os.umask(0)
    os.umask(umask)
    file_mode, dir_mode = (0o666 & ~umask, 0o777 & ~umask) if shared else (0o600, 0o700)
    if not out_dir.exists():
        out_dir.mkdir(parents=True, mode=dir_mode)
        os.chmod(out_dir, dir_mode)  # mkdir's mode is masked by the umask
    old = ["summary.json", *[n for n in RUN_OUTPUTS + OPTIONAL_OUTPUTS if n != "summary.json"],
           RUN_FIGURES]
    for name in old:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for name in reversed(old):
        source = staging / name
        if not source.exists():
            continue
        if source.is_dir():
            os.chmod(source, dir_mode)
            for f in source.rglob("*"):
                os.chmod(f, dir_mode if f.is_dir() else file_mode)
        else:
            os.chmod(source, file_mode)
        os.replace(source, out_dir / name)
    with contextlib.suppress(OSError):
        fd = os.open(out_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_run(run_dir: Path) -> str:
    """The run id of a complete scoring run folder, or :class:`ForcecovError` saying why not:
    no run there, a run interrupted while it was being published, or files of two runs."""
    import json

    import pyarrow.parquet as pq

    from .errors import ForcecovError

    parquet, summary = Path(run_dir) / "passages.parquet", Path(run_dir) / "summary.json"
    if not parquet.is_file():
        raise ForcecovError(
            f"{run_dir}: no passages.parquet; run `forcecov score ... --out {run_dir}` first")
    if not summary.is_file():
        raise ForcecovError(f"{run_dir}: incomplete run (no summary.json: the run was stopped "
                            f"while its files were moved into place); run `forcecov score` again")
    try:
        run_id = str(json.loads(summary.read_text(encoding="utf-8")).get("run_id", ""))
    except (ValueError, AttributeError) as e:
        raise ForcecovError(f"{summary}: not valid JSON; run `forcecov score` again") from e
    meta = pq.read_schema(parquet).metadata or {}
    parquet_id = meta.get(b"forcecov_run_id", b"").decode()
    if run_id and parquet_id and run_id != parquet_id:
        raise ForcecovError(f"{run_dir}: summary.json and passages.parquet come from different "
                            "runs; run `forcecov score` again")
    return run_id


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


def run_score(inputs: Sequence[str | Path], out_dir: Path, *, model: TrainedModel,
              params: Params, taxonomy: Taxonomy, manifest: dict[str, str] | None = None,
              on_done: Callable[[Extracted], None] | None = None, jobs: int | None = None,
              backend: str | None = None, scheduler: str | None = None,
              cache_dir: Path | None = None, shared_output: bool = False,
              previous_run: Path | None = None, profile: bool = False) -> ScoreSummary:
    """Score every input and write the run folder.

    With ``previous_run`` (an earlier run folder, read before anything is written, so it
    may be ``out_dir`` itself), the run also writes changes.csv and a report section on what
    changed since then (:mod:`pipeline.compare`). With ``profile``, the run is profiled
    (cProfile, this process only: with ``jobs`` > 1 extraction runs in workers) and
    profile.txt lists the 30 functions with the most cumulative time.

    Documents stream through: each chunk is extracted (in parallel if asked), classified,
    appended to passages.parquet and reduced to its evidence, so memory holds one chunk
    plus the evidence, never every document. With ``cache_dir``, unchanged documents are
    not extracted again, so an interrupted run resumes quickly. The whole run is written
    into a staging folder beside ``out_dir`` and published at the end
    (:func:`publish_run`), so ``out_dir`` never holds files of two runs.
    """
    import os
    import shutil
    import tempfile
    import time
    import uuid

    t_start = time.perf_counter()
    jobs = jobs if jobs is not None else params.score.jobs
    backend = backend or params.score.backend
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)
    remove_stale_staging(out_dir)
    previous = None
    if previous_run is not None:
        from .compare import load_run

        previous = load_run(previous_run, taxonomy)
    run_id = uuid.uuid4().hex[:16]
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.run-{os.getpid()}-",
                                    dir=out_dir.parent))  # 0700, on the same file system
    try:
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
        publish_run(staging, out_dir, shared=shared_output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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

    from .extract import ExtractCache

    files = find_inputs(inputs)
    cache = ExtractCache(cache_dir, ingest=params.ingest, seg=params.segment, taxonomy=taxonomy,
                         manifest=manifest) if cache_dir else None
    seconds = {"extract": 0.0, "classify": 0.0, "coverage": 0.0, "report": 0.0}
    results: list[DocumentResult] = []
    evidence_parts: list[pd.DataFrame] = []
    flags: list[pd.DataFrame] = []
    writer = PassageWriter(out_dir / "passages.parquet", model.labels,
                           multi_subpoints(taxonomy), run_id)
    try:
        t0 = time.perf_counter()
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal batch
            if not batch:
                return
            t1 = time.perf_counter()
            scored = predict_passages(pd.DataFrame(batch, columns=PASSAGE_COLUMNS), model, params,
                                      jobs=jobs if backend == "local" else 1)
            writer.write(scored)
            seconds["classify"] += time.perf_counter() - t1
            evidence_parts.append(evidence_table(scored, taxonomy))
            flags.append(scored[["echo", "needs_review"]])
            batch = []

        for extracted in extract_many(files, ingest=params.ingest, seg=params.segment,
                                      taxonomy=taxonomy, manifest=manifest, on_done=on_done,
                                      jobs=jobs, backend=backend, scheduler=scheduler,
                                      cache=cache):
            results.append(extracted.result)
            batch += [p.to_json() for p in extracted.passages]
            if len(batch) >= 2000:  # classify as we go, while workers extract the next files
                flush()
        flush()
        seconds["extract"] = time.perf_counter() - t0 - seconds["classify"]
        writer.close()
    except BaseException:
        writer.abort()
        raise

    t2 = time.perf_counter()
    evidence = (pd.concat(evidence_parts, ignore_index=True) if evidence_parts
                else evidence_table(pd.DataFrame(), taxonomy))
    flag_frame = (pd.concat(flags, ignore_index=True) if flags
                  else pd.DataFrame({"echo": [], "needs_review": []}))
    documents = pd.DataFrame([r.__dict__ for r in results]) if results else pd.DataFrame(
        columns=["doc_id", "force", "status"])
    cov = coverage_from_evidence(evidence, documents, taxonomy, params.coverage)
    practices = practices_by_force(evidence, taxonomy)
    theme_table = themes(evidence, taxonomy, params.themes)
    summary = national_summary(cov, taxonomy, territorial_forces(),
                               stated_gaps(evidence, taxonomy))
    summary.update({
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id, "model_version": model.version, "n_documents": len(results),
        "n_documents_error": sum(r.status == "error" for r in results),
        "n_passages": int(len(flag_frame)), "n_echo": int(flag_frame["echo"].sum()),
        "n_needs_review": int(flag_frame["needs_review"].sum()),
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
    seconds["coverage"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    from .report import write_report

    write_report(out_dir, coverage=cov, evidence=evidence, practices=practices, summary=summary,
                 documents=results, taxonomy=taxonomy, changes=changes, themes=theme_table,
                 theme_min_forces=params.themes.min_forces,
                 previous_run=previous.name if previous else "")
    seconds["report"] = time.perf_counter() - t3
    # Written last, with where the time went beside the figures it explains.
    summary["stages"] = stage_timings(seconds, n_pages=sum(r.pages for r in results),
                                      n_passages=int(len(flag_frame)))
    write_json(out_dir / "summary.json", summary)
    return ScoreSummary(len(files), sum(r.status == "ok" for r in results),
                        sum(r.status == "warning" for r in results),
                        sum(r.status == "error" for r in results), int(len(flag_frame)),
                        summary["n_needs_review"], out_dir, summary, results, seconds,
                        cache.hits if cache else 0, sum(r.pages for r in results))
