"""Evaluation on the field set (writing nobody here wrote): each approach trained exactly as
``forcecov train`` would ship it, then scored on the field set's test part; and how far
the field set's writing is from the training corpus's."""

from __future__ import annotations

import time
from typing import TypedDict

import numpy as np
import pandas as pd

from .classifiers.cv import leave_one_group_out
from .classify import TrainedModel, label_matrix
from .config import Params
from .metrics import (
    LabelScores,
    expected_calibration_error,
    group_scores,
    macro_f1,
    per_label_scores,
    unlabelled_share,
)
from .taxonomy import Taxonomy
from .train import train

# One row of a results table (approach, category or genre, then its figures).
Row = dict[str, object]


class FieldScores(TypedDict):
    """A trained model, with its own thresholds, on field passages."""

    n: int
    macro_f1: float
    per_label: dict[str, LabelScores]
    ece: float
    unlabelled: float
    by_genre: pd.DataFrame  # genre, n, and group_scores' columns


def classify_speed(model: TrainedModel, texts: list[str]) -> float:
    """Passages per second of ``model.predict`` (classifier and echo detection) in this
    process, on one batch of ``texts``."""
    # Numbered, so that no text is one an in-process embedding cache has already seen.
    frame = pd.DataFrame({"text": [f"{t} ({i})" for i, t in enumerate(texts)]})
    model.predict(frame.head(50))  # load lazily held resources outside the timing
    t0 = time.perf_counter()
    model.predict(frame)
    return len(frame) / max(time.perf_counter() - t0, 1e-9)


def field_scores(model: TrainedModel, field: pd.DataFrame, taxonomy: Taxonomy) -> FieldScores:
    """The model, with its own thresholds, on field passages (echo detection included)."""
    Y = label_matrix(field, taxonomy)
    frame = field[["text"]].assign(heading="", context="")
    preds = model.predict(frame)
    proba = preds[[f"p_{lab}" for lab in taxonomy.labels]].to_numpy()
    pred = np.array([[int(lab in labs) for lab in taxonomy.labels] for labs in preds["labels"]],
                    dtype=int).reshape(len(field), len(taxonomy.labels))
    by_genre = [{"genre": genre, "n": int(len(idx)), **group_scores(Y[idx], pred[idx])}
                for genre, idx in field.groupby("genre").indices.items()]
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
    corpus, ECE, training seconds, passages/s), ``field_per_category``, ``field_by_genre``
    and ``logo`` (per approach and genre).
    """
    calibration = field[field["part"] == "calibration"].reset_index(drop=True)
    test = field[field["part"] == "test"].reset_index(drop=True)
    speed_texts = list(corpus["text"].astype(str))[:4000]
    summary_rows: list[Row] = []
    category_rows: list[Row] = []
    genre_rows: list[Row] = []
    logo_rows: list[Row] = []
    for kind in kinds:
        kind_params = params.override("model", kind=kind)
        t0 = time.perf_counter()
        result = train(corpus, taxonomy, kind_params, version=kind, calibration=calibration)
        seconds = time.perf_counter() - t0
        scores = field_scores(result.model, test, taxonomy)
        per_label = scores["per_label"]
        row: Row = {"approach": kind, "field_macro_f1": scores["macro_f1"],
                    **{f"f1_{lab}": sc["f1"] for lab, sc in per_label.items()},
                    "min_precision": min(sc["precision"] for sc in per_label.values()),
                    "min_recall": min(sc["recall"] for sc in per_label.values()),
                    "unlabelled": scores["unlabelled"]}
        if logo:
            table = leave_one_group_out(corpus, taxonomy, kind_params,
                                        thresholds=result.model.thresholds,
                                        fallback_ratio=result.model.fallback_ratio,
                                        fallback_cues=result.model.fallback_cues)
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


def separability_table(corpus: pd.DataFrame, field: pd.DataFrame) -> pd.DataFrame:
    """:func:`separability_auc` of the field set against the whole training corpus, its
    first 12 voices, and its public-genre passages (columns sets, auc)."""
    public = corpus["source_url"].notna()
    return pd.DataFrame([
        {"sets": sets, "auc": separability_auc(list(a), list(field["text"]))}
        for sets, a in (("whole training corpus vs field set", corpus["text"]),
                        ("first corpus (12 voices) vs field set", corpus.loc[~public, "text"]),
                        ("public-genre passages vs field set", corpus.loc[public, "text"]))
        if len(a)])
