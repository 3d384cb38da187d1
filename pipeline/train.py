"""Training: labelled corpus -> calibrated classifier, thresholds, echo detector, metrics.

A frozen evaluation split (a stable hash of each passage id) is held out of every
training run, so that ``forcecov promote`` can compare models on passages neither saw.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .classifiers.cv import (
    cv_set,
    labelled_frame,
    out_of_fold_proba,
    split_frozen,
    thresholds_under_shift,
)
from .classifiers.echo import make_echo_detector
from .classifiers.registry import make_classifier
from .classify import TrainedModel
from .config import Params
from .depthfit import DEPTH_FOLDER, fit_depth, load_depth_labels
from .metrics import Scores, summary
from .taxonomy import Taxonomy


class CVMetrics(Scores):
    """Grouped cross-validation scores of a training run, and how they were made."""

    n_folds: int
    group_by: str
    threshold_policy: str
    n_threshold_calibration: int


@dataclass
class TrainResult:
    """A training run: the model, its cross-validation scores and out-of-fold probabilities,
    the rows it trained on and those it held out, and how long it took."""

    model: TrainedModel
    cv_metrics: CVMetrics
    oof_proba: np.ndarray
    train_rows: pd.DataFrame
    eval_rows: pd.DataFrame
    seconds: float


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
    data = cv_set(train_rows, taxonomy, params)
    estimator = make_classifier(taxonomy, params)
    oof = out_of_fold_proba(estimator, data.X, data.Y, data.folds)
    final = estimator.fit(data.X, data.Y)
    field_Y = field_proba = None
    if calibration is not None and len(calibration):
        field_X, field_Y = labelled_frame(calibration, taxonomy)
        field_proba = final.predict_proba(field_X)
    thresholds = thresholds_under_shift(data.Y, oof, train_rows, params, field_Y=field_Y,
                                        field_proba=field_proba)
    cv_metrics = CVMetrics(**summary(data.Y, oof, thresholds, taxonomy.labels),
                           n_folds=len(data.folds), group_by=params.cv.group_by,
                           threshold_policy=params.thresholds.policy,
                           n_threshold_calibration=int(0 if field_Y is None else len(field_Y)))
    echo = make_echo_detector(taxonomy, params.echo).fit(list(train_rows["text"]))
    version = version or dt.datetime.now(dt.timezone.utc).strftime("v%Y%m%d-%H%M%S")
    n_per_label = {lab: int(data.Y[:, j].sum()) for j, lab in enumerate(taxonomy.labels)}
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
                   extra_card: Mapping[str, object] | None = None) -> tuple[TrainResult, Path]:
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
