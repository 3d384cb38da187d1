"""Training: labelled corpus -> calibrated classifier, thresholds, echo detector, metrics.

A frozen evaluation split (a stable hash of each passage id) is held out of every
training run, so that ``forcecov promote`` can compare models on passages neither saw.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .classifiers.echo import make_echo_detector
from .classifiers.registry import make_classifier as make_classifier  # re-export: review.audit
from .classify import (
    TrainedModel,
    choose_thresholds,
    grouped_folds,
    label_matrix,
    model_frame,
    out_of_fold_proba,
)
from .config import Params
from .corpus import in_hashed_fraction
from .depth import DEPTH_FOLDER, fit_depth, load_depth_labels
from .metrics import summary
from .taxonomy import Taxonomy


def split_frozen(corpus: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, frozen evaluation rows)."""
    mask = corpus["id"].map(lambda i: in_hashed_fraction(str(i), params.promote.eval_fraction,
                                                         params.promote.eval_seed))
    return corpus[~mask].reset_index(drop=True), corpus[mask].reset_index(drop=True)


def groups_for(corpus: pd.DataFrame, group_by: str) -> np.ndarray:
    if group_by == "none":
        return np.arange(len(corpus))
    if group_by not in corpus:
        raise ValueError(f"cv.group_by={group_by!r} is not a corpus column")
    groups: np.ndarray = corpus[group_by].fillna("unknown").astype(str).to_numpy()
    return groups


@dataclass
class TrainResult:
    model: TrainedModel
    cv_metrics: dict[str, Any]
    oof_proba: np.ndarray
    train_rows: pd.DataFrame
    eval_rows: pd.DataFrame
    seconds: float


def shifted_rows(rows: pd.DataFrame) -> np.ndarray:
    """Rows written after reading real public pages (they name a ``source_url``): the
    passages closest to writing the model has never seen."""
    if "source_url" not in rows:
        return np.zeros(len(rows), dtype=bool)
    mask: np.ndarray = rows["source_url"].notna().to_numpy()
    return mask


def thresholds_under_shift(Y: np.ndarray, oof: np.ndarray, rows: pd.DataFrame,
                           params: Params, *, field_Y: np.ndarray | None = None,
                           field_proba: np.ndarray | None = None) -> np.ndarray:
    """Per-label thresholds that hold on writing unlike the training data.

    Policy ``shift``: best weighted F1 over the out-of-fold probabilities (folds grouped by
    genre, so each passage is scored by a model that never saw its genre) of the
    public-genre rows, pooled with the final model's probabilities on the field set's
    calibration part, the two halves weighing the same however many rows each has. Real
    writing scores lower than ours, so thresholds chosen on our corpus alone sit too high;
    the calibration part alone is too small to set a threshold for a rare category.
    Other policies: :func:`~pipeline.classify.choose_thresholds` on every out-of-fold row.
    """
    if params.thresholds.policy != "shift":
        return choose_thresholds(Y, oof, params.thresholds)
    mask = shifted_rows(rows)
    pool_Y, pool_p = (Y[mask], oof[mask]) if mask.any() else (Y, oof)
    weights = np.ones(len(pool_Y))
    if field_Y is not None and field_proba is not None and len(field_Y):
        weights = np.concatenate([weights, np.full(len(field_Y), len(pool_Y) / len(field_Y))])
        pool_Y = np.vstack([pool_Y, field_Y])
        pool_p = np.vstack([pool_p, field_proba])
    return choose_thresholds(pool_Y, pool_p, params.thresholds, sample_weight=weights)


def train(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params, *, version: str | None = None,
          data_sha256: str = "", calibration: pd.DataFrame | None = None,
          depth_labels: pd.DataFrame | None = None) -> TrainResult:
    """Cross-validate (grouped), choose thresholds, then fit on all training rows.

    ``calibration``: labelled rows never trained on (the field set's calibration part) on
    which the ``shift`` threshold policy also chooses thresholds. ``depth_labels``: status
    and specificity annotations of corpus passages, for the depth heads (:mod:`pipeline.depth`).
    """
    start = time.monotonic()
    train_rows, eval_rows = split_frozen(corpus, params)
    X = model_frame(train_rows["text"], train_rows["heading"], train_rows.get("context"))
    Y = label_matrix(train_rows, taxonomy)
    estimator = make_classifier(taxonomy, params)
    folds = grouped_folds(groups_for(train_rows, params.cv.group_by), params.cv.n_splits,
                          params.cv.seed)
    oof = out_of_fold_proba(estimator, X, Y, folds)
    final = estimator.fit(X, Y)
    field_Y = field_proba = None
    if calibration is not None and len(calibration):
        field_Y = label_matrix(calibration, taxonomy)
        field_proba = final.predict_proba(model_frame(calibration["text"],
                                                      calibration.get("heading")))
    thresholds = thresholds_under_shift(Y, oof, train_rows, params, field_Y=field_Y,
                                        field_proba=field_proba)
    cv_metrics = summary(Y, oof, thresholds, taxonomy.labels)
    cv_metrics["n_folds"] = len(folds)
    cv_metrics["group_by"] = params.cv.group_by
    cv_metrics["threshold_policy"] = params.thresholds.policy
    cv_metrics["n_threshold_calibration"] = int(0 if field_Y is None else len(field_Y))
    echo = make_echo_detector(taxonomy, params.echo).fit(list(train_rows["text"]))
    version = version or dt.datetime.now(dt.timezone.utc).strftime("v%Y%m%d-%H%M%S")
    n_per_label = {lab: int(Y[:, j].sum()) for j, lab in enumerate(taxonomy.labels)}
    model = TrainedModel(labels=taxonomy.labels, classifier=final, thresholds=thresholds, echo=echo,
                         version=version,
                         meta={"data_sha256": data_sha256, "n_train": int(len(train_rows)),
                               "n_eval": int(len(eval_rows)), "n_per_label": n_per_label},
                         depth=fit_depth(train_rows, depth_labels, taxonomy, params.depth))
    return TrainResult(model, cv_metrics, oof, train_rows, eval_rows, time.monotonic() - start)


def field_calibration(field_dir: Path | None, taxonomy: Taxonomy,
                      params: Params) -> pd.DataFrame | None:
    """The field set's calibration part, when the threshold policy uses it and it exists."""
    from .fieldset import load_field

    if (params.thresholds.policy != "shift" or field_dir is None
            or not any(Path(field_dir).glob("*.jsonl"))):
        return None
    field = load_field(field_dir, taxonomy, calibration_fraction=params.field.calibration_fraction,
                       seed=params.field.seed)
    return field[field["part"] == "calibration"].reset_index(drop=True)


def train_and_save(labelled_dir: Any, models_dir: Any, taxonomy: Taxonomy, params: Params, *,
                   make_current: bool = True, field_dir: Path | None = None,
                   extra_card: dict[str, Any] | None = None) -> tuple[TrainResult, Path]:
    """Load and validate the corpus, train, and write the model with its card.

    ``field_dir``: the field set, whose calibration part the ``shift`` policy uses to set
    thresholds (its test part is never touched here).
    """
    from .corpus import corpus_sha256, load_corpus
    from .modelstore import save_model

    corpus = load_corpus(Path(labelled_dir), taxonomy)
    depth_labels = load_depth_labels(Path(labelled_dir) / DEPTH_FOLDER, set(corpus["id"]))
    result = train(corpus, taxonomy, params, data_sha256=corpus_sha256(Path(labelled_dir)),
                   calibration=field_calibration(field_dir, taxonomy, params),
                   depth_labels=depth_labels)
    card = {
        "training_data_sha256": result.model.meta["data_sha256"],
        "params": params.as_dict(),
        "cv_metrics": result.cv_metrics,
        "train_seconds": round(result.seconds, 2),
        "taxonomy": taxonomy.name,
        **(extra_card or {}),
    }
    folder = save_model(result.model, Path(models_dir), card, make_current=make_current)
    return result, folder
