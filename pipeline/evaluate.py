"""Evaluation: the model on the frozen split, approaches compared on the same folds,
leave-one-voice-out robustness (:func:`~pipeline.classifiers.cv.leave_one_group_out`), echo
detection, calibration, coverage against gold, scanned documents against their text twins;
the field set through :mod:`pipeline.fieldeval`.

Every function returns plain data (typed dicts and DataFrames); the CLI prints and writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

from .agreement import document_files, gold_cells, status_agreement, subpoint_agreement
from .classifiers.cv import (
    FoldTiming,
    choose_thresholds,
    cv_set,
    labelled_frame,
    leave_one_group_out,
    out_of_fold_proba,
    split_frozen,
)
from .classifiers.echo import make_echo_detector
from .classifiers.registry import make
from .classify import TrainedModel
from .config import Params
from .fieldeval import field_comparison, separability_table
from .metrics import (
    Scores,
    calibration_curve,
    expected_calibration_error,
    macro_f1,
    per_label_scores,
    summary,
)
from .taxonomy import Taxonomy


class HeldOutScores(Scores):
    """A trained model's scores on labelled rows it never saw, with its calibration curve."""

    n: int
    calibration: list[dict[str, float]]


class EchoScores(TypedDict):
    """Echo detection on the corpus: recall on restated passages, precision against content."""

    recall: float
    precision: float
    n_restated: int
    n_content: int
    false_positives: int


class FrozenSplitMetrics(TypedDict):
    """The model on the frozen split, and echo detection: in every metrics.json."""

    model_version: str
    macro_f1: float
    ece: float
    n_eval: int
    per_label: dict[str, float]
    echo: EchoScores


class EvaluationMetrics(FrozenSplitMetrics, total=False):
    """metrics.json: what each requested evaluation adds (by approach, voice, category,
    status or set, as named)."""

    comparison: dict[str, float]
    lovo_worst_macro_f1: float
    lovo_mean_macro_f1: float
    field: dict[str, dict[str, float]]
    separability_auc: dict[str, float]
    coverage_agreement: dict[str, float]
    subpoint_f1: dict[str, float]
    status_agreement: dict[str, float]
    scanned: dict[str, float]


class Evaluation(EvaluationMetrics, total=False):
    """What :func:`run_evaluation` returns: metrics.json's content, and tables to print."""

    tables: dict[str, pd.DataFrame]


def evaluate_model(model: TrainedModel, rows: pd.DataFrame, taxonomy: Taxonomy) -> HeldOutScores:
    """Scores of a trained model on labelled rows (the frozen evaluation split)."""
    X, Y = labelled_frame(rows, taxonomy)
    proba = model.classifier.predict_proba(X)
    return HeldOutScores(**summary(Y, proba, model.thresholds, taxonomy.labels),
                         n=int(len(rows)), calibration=calibration_curve(Y, proba))


def echo_metrics(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params) -> EchoScores:
    """Echo detection on the corpus: recall on restated passages, precision against content."""
    detector = make_echo_detector(taxonomy, params.echo).fit(list(corpus["text"]))
    flagged = detector.predict(list(corpus["text"]))
    restated = (corpus["kind"] == "restated").to_numpy()
    content = (corpus["kind"] == "content").to_numpy()
    tp = int((flagged & restated).sum())
    fp = int((flagged & content).sum())
    return {"recall": tp / max(int(restated.sum()), 1), "precision": tp / max(tp + fp, 1),
            "n_restated": int(restated.sum()), "n_content": int(content.sum()),
            "false_positives": fp}


def compare(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params,
            kinds: list[str]) -> pd.DataFrame:
    """Each approach on the same grouped folds: per-label F1, macro-F1, ECE, speed.

    Thresholds are chosen on each approach's own out-of-fold probabilities, as in training.
    """
    rows, _ = split_frozen(corpus, params)
    data = cv_set(rows, taxonomy, params)
    records = []
    for kind in kinds:
        timing = FoldTiming()
        proba = out_of_fold_proba(make(kind, taxonomy, params), data.X, data.Y, data.folds,
                                  timing=timing)
        thresholds = choose_thresholds(data.Y, proba, params.thresholds)
        pred = (proba >= thresholds).astype(int)
        scores = per_label_scores(data.Y, pred, taxonomy.labels)
        records.append({"approach": kind,
                        **{f"f1_{lab}": scores[lab]["f1"] for lab in taxonomy.labels},
                        "macro_f1": macro_f1(data.Y, pred),
                        "ece": expected_calibration_error(data.Y, proba),
                        "train_seconds": timing.fit_seconds / len(data.folds),
                        "passages_per_s": len(data.Y) / max(timing.predict_seconds, 1e-9)})
    return pd.DataFrame(records)


def coverage_vs_gold(run_dir: Path, gold_csv: Path) -> pd.DataFrame:
    """Document-level agreement of ``addressed`` with the gold file, per category and overall.

    Documents are matched by file name. Columns: category, n, agreement, false_positives,
    false_negatives (the last row is ``overall``).
    """
    merged = gold_cells(run_dir, gold_csv)
    merged["pred"] = merged["addressed"].astype(bool)
    merged["gold"] = merged["addressed_gold"].astype(int) == 1
    rows = []
    for cat, g in list(merged.groupby("category", sort=False)) + [("overall", merged)]:
        rows.append({"category": cat, "n": int(len(g)),
                     "agreement": float((g["pred"] == g["gold"]).mean()),
                     "false_positives": int((g["pred"] & ~g["gold"]).sum()),
                     "false_negatives": int((~g["pred"] & g["gold"]).sum())})
    return pd.DataFrame(rows)


def character_error_rate(reference: str, read: str) -> float:
    """Edit distance over the reference's length, after collapsing white space (a line break
    read as a space is not an error)."""
    from rapidfuzz.distance import Levenshtein

    reference, read = " ".join(reference.split()), " ".join(read.split())
    return Levenshtein.distance(reference, read) / max(len(reference), 1)


def scanned_vs_twins(run_dir: Path, scanned_gold: Path) -> pd.DataFrame:
    """How well scanned documents, read by OCR, stand in for their text versions.

    ``scanned_gold`` lists each scanned file with its ``twin`` (the text version) and ``dpi``;
    both must have been scored in ``run_dir`` (``forcecov score data/raw --ocr``). One row per
    scanned file, then ``overall``. Columns: file, dpi, pages, ocr_pages, ocr_confidence, cer
    (character error rate of the OCR'd passages against the twin's), passages and
    passages_twin (how many passages each was cut into: a layout read wrongly shows here
    before it shows in the characters), cells (categories compared), agree_twin (share of
    categories whose ``addressed`` matches the twin's), agree_gold (the same against the gold
    file), same_subpoints (share of categories whose evidenced sub-points are the twin's)
    and score_gap (mean absolute difference of the
    coverage score from the twin's)."""
    docs = document_files(run_dir)
    gold = pd.read_csv(scanned_gold)
    cov = pd.read_csv(run_dir / "coverage.csv")
    indexed = (cov[cov["level"] == "document"].merge(docs[["doc_id", "file"]], on="doc_id")
               .set_index(["file", "category"]))
    addressed = indexed["addressed"].astype(bool)
    score = indexed["score"].astype(float)
    subpoints = indexed["subpoints"].fillna("").astype(str)
    passages = pd.read_parquet(run_dir / "passages.parquet",
                               columns=["doc_id", "char_start", "text"])
    texts = {d: " ".join(g.sort_values("char_start")["text"])
             for d, g in passages.groupby("doc_id")}
    by_file = docs.set_index("file")
    rows = []
    for (file, twin, dpi), g in gold.groupby(["file", "twin", "dpi"], sort=False):
        missing = [f for f in (file, twin) if f not in by_file.index]
        if missing:
            raise ValueError(f"{run_dir} has no scored document named {missing[0]!r}: score the "
                             "scanned files and their text twins together "
                             "(forcecov score data/raw --ocr)")
        scan, text = by_file.loc[file], by_file.loc[twin]
        if scan["status"] != "ok":
            raise ValueError(f"{file} was not read ({scan['reason']}): score with --ocr")
        cats = list(g["category"])
        mine = [bool(addressed.get((file, c), False)) for c in cats]
        twins = [bool(addressed.get((twin, c), False)) for c in cats]
        same_subpoints = [set(subpoints.get((file, c), "").split(";"))
                          == set(subpoints.get((twin, c), "").split(";")) for c in cats]
        score_gap = [abs(score.get((file, c), 0.0) - score.get((twin, c), 0.0)) for c in cats]
        golds = [int(a) == 1 for a in g["addressed"]]
        rows.append({
            "file": file, "dpi": int(dpi), "pages": int(scan["pages"]),
            "ocr_pages": int(scan.get("ocr_pages", 0) or 0),
            "ocr_confidence": float(scan.get("ocr_confidence", float("nan"))),
            "cer": round(character_error_rate(texts.get(text["doc_id"], ""),
                                              texts.get(scan["doc_id"], "")), 4),
            "passages": int(scan["n_passages"]), "passages_twin": int(text["n_passages"]),
            "cells": len(cats),
            "agree_twin": float(np.mean([a == b for a, b in zip(mine, twins, strict=True)])),
            "agree_gold": float(np.mean([a == b for a, b in zip(mine, golds, strict=True)])),
            "same_subpoints": float(np.mean(same_subpoints)),
            "score_gap": float(np.mean(score_gap)),
        })
    table = pd.DataFrame(rows)
    cells = table["cells"].sum()
    table.loc[len(table)] = {
        "file": "overall", "dpi": 0, "pages": int(table["pages"].sum()),
        "ocr_pages": int(table["ocr_pages"].sum()),
        "ocr_confidence": float(np.average(table["ocr_confidence"], weights=table["ocr_pages"]))
        if table["ocr_pages"].sum() else float("nan"),
        "cer": float(table["cer"].mean()), "passages": int(table["passages"].sum()),
        "passages_twin": int(table["passages_twin"].sum()), "cells": int(cells),
        "agree_twin": float((table["agree_twin"] * table["cells"]).sum() / cells),
        "agree_gold": float((table["agree_gold"] * table["cells"]).sum() / cells),
        "same_subpoints": float((table["same_subpoints"] * table["cells"]).sum() / cells),
        "score_gap": float((table["score_gap"] * table["cells"]).sum() / cells)}
    return table


def calibration_png(curve: list[dict[str, float]]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect")
    ax.plot([c["predicted"] for c in curve], [c["observed"] for c in curve], marker="o",
            label="model")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration on the frozen evaluation split")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def run_evaluation(model: TrainedModel, corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params,
                   out_dir: Path, *, compare_kinds: list[str] | None = None, lovo: bool = False,
                   coverage_run: Path | None = None,
                   gold_csv: Path | None = None, field: pd.DataFrame | None = None,
                   field_kinds: list[str] | None = None, logo: bool = True,
                   scanned_run: Path | None = None,
                   scanned_gold: Path | None = None) -> Evaluation:
    """Run the requested evaluations and write metrics.json, plots and tables into ``out_dir``.

    Returns the metrics dict plus DataFrames under ``tables`` for printing.
    """
    from .atomic import write_bytes, write_frame_csv, write_json

    _, frozen = split_frozen(corpus, params)
    held_out = evaluate_model(model, frozen, taxonomy)
    metrics: EvaluationMetrics = {
        "model_version": model.version,
        "macro_f1": held_out["macro_f1"], "ece": held_out["ece"], "n_eval": held_out["n"],
        "per_label": {lab: s["f1"] for lab, s in held_out["per_label"].items()},
        "echo": echo_metrics(corpus, taxonomy, params),
    }
    tables: dict[str, pd.DataFrame] = {}
    per_cat = pd.DataFrame([{"category": lab, **s} for lab, s in held_out["per_label"].items()])
    tables["per_category"] = per_cat
    plots = out_dir / "plots"
    write_frame_csv(plots / "per_category.csv", per_cat)
    write_frame_csv(plots / "calibration.csv", pd.DataFrame(held_out["calibration"]))
    write_bytes(plots / "calibration.png", calibration_png(held_out["calibration"]))
    if compare_kinds:
        table = compare(corpus, taxonomy, params, compare_kinds)
        tables["comparison"] = table
        write_frame_csv(out_dir / "comparison.csv", table)
        metrics["comparison"] = table.set_index("approach")["macro_f1"].to_dict()
    if lovo:
        table = leave_one_group_out(corpus, taxonomy, params, group="voice")
        tables["lovo"] = table
        write_frame_csv(out_dir / "lovo.csv", table)
        metrics["lovo_worst_macro_f1"] = float(table["macro_f1"].min())
        metrics["lovo_mean_macro_f1"] = float(table["macro_f1"].mean())
    if field is not None:
        tables.update(field_comparison(corpus, field, taxonomy, params,
                                       field_kinds or [params.model.kind], logo=logo))
        for name in ("field", "field_per_category", "field_by_genre", "logo"):
            if not tables[name].empty:
                write_frame_csv(out_dir / f"{name}.csv", tables[name])
        metrics["field"] = tables["field"].set_index("approach").to_dict("index")
        tables["separability"] = separability_table(corpus, field)
        write_frame_csv(out_dir / "separability.csv", tables["separability"])
        metrics["separability_auc"] = tables["separability"].set_index("sets")["auc"].to_dict()
    if coverage_run is not None:
        gold_file = gold_csv or coverage_run / "gold_coverage.csv"
        table = coverage_vs_gold(coverage_run, gold_file)
        tables["coverage"] = table
        write_frame_csv(out_dir / "coverage_agreement.csv", table)
        metrics["coverage_agreement"] = table.set_index("category")["agreement"].to_dict()
        gold_columns = set(pd.read_csv(gold_file, nrows=0).columns)
        if "subpoints" in gold_columns:
            table = subpoint_agreement(coverage_run, gold_file, taxonomy)
            tables["subpoints"] = table
            write_frame_csv(out_dir / "subpoint_agreement.csv", table)
            metrics["subpoint_f1"] = table.set_index("subpoint")["f1"].to_dict()
        if "status" in gold_columns:
            table = status_agreement(coverage_run, gold_file)
            tables["status"] = table
            write_frame_csv(out_dir / "status_agreement.csv", table)
            metrics["status_agreement"] = table.set_index("status")["f1"].to_dict()
    if scanned_run is not None:
        table = scanned_vs_twins(scanned_run, scanned_gold or scanned_run / "gold_coverage.csv")
        tables["scanned"] = table
        write_frame_csv(out_dir / "scanned_agreement.csv", table)
        overall = table.iloc[-1]
        metrics["scanned"] = {"cer": float(overall["cer"]),
                              "cer_300dpi": float(table.loc[table["dpi"] == 300, "cer"].mean()),
                              "agree_twin": float(overall["agree_twin"]),
                              "agree_gold": float(overall["agree_gold"])}
    write_json(out_dir / "metrics.json", metrics)
    return Evaluation(**metrics, tables=tables)
