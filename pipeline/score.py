"""The main job: extract -> classify -> coverage -> report, over a folder of submissions.

Outputs in the run folder (columns documented in the README):
passages.parquet, coverage.csv, coverage_matrix.csv, documents.csv, practices.csv,
summary.json, report.html, figures/heatmap.png, figures/score_distribution.png.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .atomic import write_frame_csv, write_frame_parquet, write_json
from .classify import TrainedModel
from .config import Params
from .coverage import coverage, coverage_matrix, evidence_table, national_summary
from .extract import Extracted, extract_many, find_inputs, write_documents_csv
from .forces import territorial_forces
from .practices import practices_by_force
from .records import PASSAGE_COLUMNS
from .taxonomy import Taxonomy


@dataclass(frozen=True)
class ScoreSummary:
    n_files: int
    n_ok: int
    n_warning: int
    n_error: int
    n_passages: int
    n_needs_review: int
    out_dir: Path
    summary: dict
    results: list


def predict_passages(passages: pd.DataFrame, model: TrainedModel, params: Params) -> pd.DataFrame:
    """Passages with the model's probabilities, labels, echo flag, confidence, needs_review."""
    preds = model.predict(passages, review_margin=params.coverage.review_margin)
    return pd.concat([passages.reset_index(drop=True), preds.reset_index(drop=True)], axis=1)


def run_score(inputs: list[str | Path], out_dir: Path, *, model: TrainedModel, params: Params,
              taxonomy: Taxonomy, manifest: dict[str, str] | None = None,
              on_done: Callable[[Extracted], None] | None = None) -> ScoreSummary:
    """Score every input and write the run folder."""
    files = find_inputs(inputs)
    results, passage_rows = [], []
    for extracted in extract_many(files, ingest=params.ingest, seg=params.segment, taxonomy=taxonomy,
                                  manifest=manifest, on_done=on_done):
        results.append(extracted.result)
        passage_rows += [p.to_json() for p in extracted.passages]
    passages = pd.DataFrame(passage_rows, columns=PASSAGE_COLUMNS)
    scored = predict_passages(passages, model, params)
    documents = pd.DataFrame([r.__dict__ for r in results])
    if documents.empty:
        documents = pd.DataFrame(columns=["doc_id", "force", "status"])
    cov = coverage(scored, documents, taxonomy, params.coverage)
    evidence = evidence_table(scored, taxonomy)
    practices = practices_by_force(evidence, taxonomy)
    summary = national_summary(cov, taxonomy, territorial_forces())
    summary.update({
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model_version": model.version, "n_documents": len(results),
        "n_documents_error": sum(r.status == "error" for r in results),
        "n_passages": int(len(scored)), "n_echo": int(scored["echo"].sum()) if len(scored) else 0,
        "n_needs_review": int(scored["needs_review"].sum()) if len(scored) else 0,
    })

    out_dir.mkdir(parents=True, exist_ok=True)
    write_frame_parquet(out_dir / "passages.parquet", scored)
    write_frame_csv(out_dir / "coverage.csv", cov)
    write_frame_csv(out_dir / "coverage_matrix.csv", coverage_matrix(cov, taxonomy))
    write_frame_csv(out_dir / "practices.csv", practices)
    write_documents_csv(out_dir / "documents.csv", results)
    write_json(out_dir / "summary.json", summary)
    from .report import write_report

    write_report(out_dir, scored=scored, coverage=cov, evidence=evidence, practices=practices,
                 summary=summary, documents=results, taxonomy=taxonomy)
    return ScoreSummary(len(files), sum(r.status == "ok" for r in results),
                        sum(r.status == "warning" for r in results),
                        sum(r.status == "error" for r in results), int(len(scored)),
                        summary["n_needs_review"], out_dir, summary, results)
