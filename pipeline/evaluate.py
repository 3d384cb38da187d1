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

from .agreement import document_files, gold_cells, status_agreement, subpoint_agreement
from .classifiers.echo import make_echo_detector
from .classifiers.registry import make_classifier
from .classify import (
    TrainedModel,
    choose_thresholds,
    grouped_folds,
    label_matrix,
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
from .train import groups_for, split_frozen


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


def _macro_over_present(Y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the categories that occur in ``Y`` (NaN when none does): a genre with
    no passage of a category says nothing about recall on it."""
    from sklearn.metrics import f1_score

    present = Y.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(f1_score(Y[:, present], pred[:, present], average="macro", zero_division=0))


def unlabelled_share(Y: np.ndarray, pred: np.ndarray) -> float:
    """Of the passages that carry a label, the share given none."""
    carries = Y.sum(axis=1) > 0
    return float((pred[carries].sum(axis=1) == 0).mean()) if carries.any() else float("nan")


def leave_one_group_out(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params, *,
                        group: str = "genre",
                        thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Train on every ``group`` (genre or voice) but one, test on that one.

    With ``thresholds``, those are applied (the shipped ones); without, each round chooses
    its own by grouped cross-validation inside its training groups.

    Columns: the group, n, macro_f1 (over the categories present in the group; NaN when none
    is), any_label (share of the group's passages given a label: for a genre of hard
    negatives, its false-positive rate), unlabelled (labelled passages given none), and
    f1_<category>.
    """
    rows, _ = split_frozen(corpus, params)
    X = model_frame(rows["text"], rows["heading"], rows.get("context"))
    Y = label_matrix(rows, taxonomy)
    groups = rows[group].to_numpy()
    estimator = make_classifier(taxonomy, params)
    records = []
    for name in sorted(set(groups)):
        test = groups == name
        Xtr, Ytr = X[~test].reset_index(drop=True), Y[~test]
        chosen = thresholds
        if chosen is None:
            inner = grouped_folds(groups[~test], min(3, params.cv.n_splits), params.cv.seed)
            chosen = choose_thresholds(Ytr, out_of_fold_proba(estimator, Xtr, Ytr, inner),
                                       params.thresholds)
        est = clone(estimator).fit(Xtr, Ytr)
        pred = (est.predict_proba(X[test].reset_index(drop=True)) >= chosen).astype(int)
        scores = per_label_scores(Y[test], pred, taxonomy.labels)
        records.append({group: name, "n": int(test.sum()),
                        "macro_f1": _macro_over_present(Y[test], pred),
                        "any_label": float(pred.any(axis=1).mean()),
                        "unlabelled": unlabelled_share(Y[test], pred),
                        **{f"f1_{lab}": scores[lab]["f1"] for lab in taxonomy.labels}})
    return pd.DataFrame(records)


def classify_speed(model: TrainedModel, texts: list[str]) -> float:
    """Passages per second of ``model.predict`` (classifier and echo detection) in this
    process, on one batch of ``texts``."""
    # Numbered, so that no text is one an in-process embedding cache has already seen.
    frame = pd.DataFrame({"text": [f"{t} ({i})" for i, t in enumerate(texts)]})
    model.predict(frame.head(50))  # load lazily held resources outside the timing
    t0 = time.perf_counter()
    model.predict(frame)
    return len(frame) / max(time.perf_counter() - t0, 1e-9)


def field_scores(model: TrainedModel, field: pd.DataFrame, taxonomy: Taxonomy) -> dict[str, Any]:
    """The model, with its own thresholds, on field passages (echo detection included)."""
    Y = label_matrix(field, taxonomy)
    frame = field[["text"]].assign(heading="", context="")
    preds = model.predict(frame)
    proba = preds[[f"p_{lab}" for lab in taxonomy.labels]].to_numpy()
    pred = np.array([[int(lab in labs) for lab in taxonomy.labels] for labs in preds["labels"]],
                    dtype=int).reshape(len(field), len(taxonomy.labels))
    by_genre = []
    for genre, idx in field.groupby("genre").indices.items():
        by_genre.append({"genre": genre, "n": int(len(idx)),
                         "macro_f1": _macro_over_present(Y[idx], pred[idx]),
                         "any_label": float(pred[idx].any(axis=1).mean()),
                         "unlabelled": unlabelled_share(Y[idx], pred[idx])})
    return {"n": int(len(field)), "macro_f1": macro_f1(Y, pred),
            "per_label": per_label_scores(Y, pred, taxonomy.labels),
            "ece": expected_calibration_error(Y, proba), "unlabelled": unlabelled_share(Y, pred),
            "by_genre": pd.DataFrame(by_genre)}


def field_comparison(corpus: pd.DataFrame, field: pd.DataFrame, taxonomy: Taxonomy,
                     params: Params, kinds: list[str], *,
                     logo: bool = True) -> dict[str, pd.DataFrame]:
    """Each approach trained exactly as ``forcecov train`` would ship it, then scored on the
    field set's test part (thresholds from its policy, which may use the calibration part).

    Tables: ``field`` (one row per approach: field macro-F1, F1/precision/recall per
    category, unlabelled share, leave-one-genre-out worst and mean, grouped CV on our
    corpus, ECE, training seconds, passages/s), ``field_by_genre`` and ``logo`` (per
    approach and genre).
    """
    from .train import train

    calibration = field[field["part"] == "calibration"].reset_index(drop=True)
    test = field[field["part"] == "test"].reset_index(drop=True)
    speed_texts = list(corpus["text"].astype(str))[:4000]
    summary_rows: list[dict[str, Any]] = []
    category_rows: list[dict[str, Any]] = []
    genre_rows: list[dict[str, Any]] = []
    logo_rows: list[dict[str, Any]] = []
    for kind in kinds:
        kind_params = params.override("model", kind=kind)
        t0 = time.perf_counter()
        result = train(corpus, taxonomy, kind_params, version=kind, calibration=calibration)
        seconds = time.perf_counter() - t0
        scores = field_scores(result.model, test, taxonomy)
        per_label = scores["per_label"]
        row: dict[str, Any] = {"approach": kind, "field_macro_f1": scores["macro_f1"],
                               **{f"f1_{lab}": sc["f1"] for lab, sc in per_label.items()},
                               "min_precision": min(sc["precision"] for sc in per_label.values()),
                               "min_recall": min(sc["recall"] for sc in per_label.values()),
                               "unlabelled": scores["unlabelled"]}
        if logo:
            table = leave_one_group_out(corpus, taxonomy, kind_params,
                                        thresholds=result.model.thresholds)
            logo_rows += [{"approach": kind, **r} for r in table.to_dict("records")]
            row["logo_worst"] = float(table["macro_f1"].min())
            row["logo_mean"] = float(table["macro_f1"].mean())
        row.update({"cv_macro_f1": result.cv_metrics["macro_f1"], "field_ece": scores["ece"],
                    "train_seconds": seconds,
                    "passages_per_s": classify_speed(result.model, speed_texts)})
        summary_rows.append(row)
        category_rows += [{"approach": kind, "category": lab, **sc}
                          for lab, sc in per_label.items()]
        genre_rows += [{"approach": kind, **r} for r in scores["by_genre"].to_dict("records")]
    return {"field": pd.DataFrame(summary_rows), "field_per_category": pd.DataFrame(category_rows),
            "field_by_genre": pd.DataFrame(genre_rows), "logo": pd.DataFrame(logo_rows)}


def separability_auc(texts_a: list[str], texts_b: list[str], *, seed: int = 0) -> float:
    """How well a plain classifier tells two sets of passages apart: cross-validated ROC AUC
    of word TF-IDF + logistic regression (0.5 = indistinguishable, 1.0 = always told apart).

    A low figure between the training corpus and the field set means the model cannot lean
    on how our writers write."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = list(texts_a) + list(texts_b)
    y = np.array([0] * len(texts_a) + [1] * len(texts_b))
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         LogisticRegression(max_iter=2000, class_weight="balanced"))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    proba = cross_val_predict(pipe, texts, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


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
                   scanned_gold: Path | None = None) -> dict[str, Any]:
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
        public = corpus["source_url"].notna()
        tables["separability"] = pd.DataFrame([
            {"sets": sets, "auc": separability_auc(list(a), list(field["text"]))}
            for sets, a in (("whole training corpus vs field set", corpus["text"]),
                            ("first corpus (12 voices) vs field set", corpus.loc[~public, "text"]),
                            ("public-genre passages vs field set", corpus.loc[public, "text"]))
            if len(a)])
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
    return {**metrics, "tables": tables}
