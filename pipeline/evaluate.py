"""Evaluation: the model on the frozen split, approaches compared on the same folds,
leave-one-voice-out robustness, echo detection, calibration, coverage against gold.

Every function returns plain data (dicts and DataFrames); the CLI prints and writes them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from .classify import (
    TrainedModel,
    choose_thresholds,
    grouped_folds,
    label_matrix,
    make_echo_detector,
    model_frame,
    out_of_fold_proba,
)
from .config import Params
from .metrics import (
    calibration_curve,
    expected_calibration_error,
    macro_f1,
    per_label_scores,
    summary,
)
from .taxonomy import Taxonomy
from .train import groups_for, make_classifier, split_frozen


def evaluate_model(model: TrainedModel, rows: pd.DataFrame, taxonomy: Taxonomy) -> dict[str, Any]:
    """Scores of a trained model on labelled rows (the frozen evaluation split)."""
    X = model_frame(rows["text"], rows["heading"], rows.get("context"))
    Y = label_matrix(rows, taxonomy)
    proba = model.classifier.predict_proba(X)
    out = summary(Y, proba, model.thresholds, taxonomy.labels)
    out["n"] = int(len(rows))
    out["calibration"] = calibration_curve(Y, proba)
    return out


def echo_metrics(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params) -> dict[str, float]:
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
    rows_train, _ = split_frozen(corpus, params)
    X = model_frame(rows_train["text"], rows_train["heading"], rows_train.get("context"))
    Y = label_matrix(rows_train, taxonomy)
    folds = grouped_folds(groups_for(rows_train, params.cv.group_by), params.cv.n_splits,
                          params.cv.seed)
    records = []
    for kind in kinds:
        estimator = make_classifier(taxonomy, params.override("model", kind=kind))
        proba = np.zeros(Y.shape)
        fit_s = pred_s = 0.0
        for train_idx, test_idx in folds:
            est = clone(estimator)
            t0 = time.perf_counter()
            est.fit(X.iloc[train_idx].reset_index(drop=True), Y[train_idx])
            t1 = time.perf_counter()
            proba[test_idx] = est.predict_proba(X.iloc[test_idx].reset_index(drop=True))
            t2 = time.perf_counter()
            fit_s += t1 - t0
            pred_s += t2 - t1
        thresholds = choose_thresholds(Y, proba, params.thresholds)
        pred = (proba >= thresholds).astype(int)
        scores = per_label_scores(Y, pred, taxonomy.labels)
        records.append({"approach": kind,
                        **{f"f1_{lab}": scores[lab]["f1"] for lab in taxonomy.labels},
                        "macro_f1": macro_f1(Y, pred), "ece": expected_calibration_error(Y, proba),
                        "train_seconds": fit_s / len(folds),
                        "passages_per_s": len(Y) / max(pred_s, 1e-9)})
    return pd.DataFrame(records)


def leave_one_voice_out(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params) -> pd.DataFrame:
    """Train on every voice but one (thresholds by inner grouped CV), test on that one."""
    rows, _ = split_frozen(corpus, params)
    X = model_frame(rows["text"], rows["heading"], rows.get("context"))
    Y = label_matrix(rows, taxonomy)
    voices = rows["voice"].to_numpy()
    estimator = make_classifier(taxonomy, params)
    records = []
    for voice in sorted(set(voices)):
        test = voices == voice
        Xtr, Ytr = X[~test].reset_index(drop=True), Y[~test]
        inner = grouped_folds(voices[~test], min(3, params.cv.n_splits), params.cv.seed)
        thresholds = choose_thresholds(Ytr, out_of_fold_proba(estimator, Xtr, Ytr, inner),
                                       params.thresholds)
        est = clone(estimator).fit(Xtr, Ytr)
        proba = est.predict_proba(X[test].reset_index(drop=True))
        pred = (proba >= thresholds).astype(int)
        scores = per_label_scores(Y[test], pred, taxonomy.labels)
        records.append({"voice": voice, "n": int(test.sum()), "macro_f1": macro_f1(Y[test], pred),
                        **{f"f1_{lab}": scores[lab]["f1"] for lab in taxonomy.labels}})
    return pd.DataFrame(records)


def coverage_vs_gold(run_dir: Path, gold_csv: Path) -> pd.DataFrame:
    """Document-level agreement of ``addressed`` with the gold file, per category and overall.

    Documents are matched by file name. Columns: category, n, agreement, false_positives,
    false_negatives (the last row is ``overall``).
    """
    cov = pd.read_csv(run_dir / "coverage.csv")
    docs = pd.read_csv(run_dir / "documents.csv")
    gold = pd.read_csv(gold_csv)
    docs["file"] = docs["path"].map(lambda p: Path(str(p)).name)
    merged = (cov[cov["level"] == "document"].merge(docs[["doc_id", "file"]], on="doc_id")
              .merge(gold[["file", "category", "addressed"]], on=["file", "category"],
                     suffixes=("", "_gold")))
    if merged.empty:
        raise ValueError(f"no documents of {run_dir} match {gold_csv} by file name")
    merged["pred"] = merged["addressed"].astype(bool)
    merged["gold"] = merged["addressed_gold"].astype(int) == 1
    rows = []
    for cat, g in list(merged.groupby("category", sort=False)) + [("overall", merged)]:
        rows.append({"category": cat, "n": int(len(g)),
                     "agreement": float((g["pred"] == g["gold"]).mean()),
                     "false_positives": int((g["pred"] & ~g["gold"]).sum()),
                     "false_negatives": int((~g["pred"] & g["gold"]).sum())})
    return pd.DataFrame(rows)


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
                   gold_csv: Path | None = None) -> dict[str, Any]:
    """Run the requested evaluations and write metrics.json, plots and tables into ``out_dir``.

    Returns the metrics dict plus DataFrames under ``tables`` for printing.
    """
    from .atomic import write_bytes, write_frame_csv, write_json

    _, frozen = split_frozen(corpus, params)
    held_out = evaluate_model(model, frozen, taxonomy)
    metrics: dict[str, Any] = {
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
        table = leave_one_voice_out(corpus, taxonomy, params)
        tables["lovo"] = table
        write_frame_csv(out_dir / "lovo.csv", table)
        metrics["lovo_worst_macro_f1"] = float(table["macro_f1"].min())
        metrics["lovo_mean_macro_f1"] = float(table["macro_f1"].mean())
    if coverage_run is not None:
        table = coverage_vs_gold(coverage_run, gold_csv or coverage_run / "gold_coverage.csv")
        tables["coverage"] = table
        write_frame_csv(out_dir / "coverage_agreement.csv", table)
        metrics["coverage_agreement"] = table.set_index("category")["agreement"].to_dict()
    write_json(out_dir / "metrics.json", metrics)
    return {**metrics, "tables": tables}
