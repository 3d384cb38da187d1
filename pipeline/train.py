"""Training: labelled corpus -> calibrated classifier, thresholds, echo detector, metrics.

A frozen evaluation split (a stable hash of each passage id) is held out of every
training run, so that ``forcecov promote`` can compare models on passages neither saw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .classify import (
    PassageClassifier,
    TrainedModel,
    choose_thresholds,
    grouped_folds,
    label_matrix,
    make_echo_detector,
    model_frame,
    out_of_fold_proba,
)
from .config import Params
from .metrics import summary
from .taxonomy import Taxonomy


def in_frozen_eval(passage_id: str, fraction: float, seed: int) -> bool:
    """Stable membership of the frozen evaluation split, by a hash of the id."""
    h = hashlib.sha256(f"{seed}:{passage_id}".encode()).hexdigest()
    return int(h[:8], 16) / 0xFFFFFFFF < fraction


def split_frozen(corpus: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, frozen evaluation rows)."""
    mask = corpus["id"].map(lambda i: in_frozen_eval(str(i), params.promote.eval_fraction,
                                                     params.promote.eval_seed))
    return corpus[~mask].reset_index(drop=True), corpus[mask].reset_index(drop=True)


def groups_for(corpus: pd.DataFrame, group_by: str) -> np.ndarray:
    if group_by == "none":
        return np.arange(len(corpus))
    if group_by not in corpus:
        raise ValueError(f"cv.group_by={group_by!r} is not a corpus column")
    groups: np.ndarray = corpus[group_by].fillna("unknown").astype(str).to_numpy()
    return groups


def make_classifier(taxonomy: Taxonomy, params: Params) -> Any:
    """The estimator named by ``model.kind`` (TF-IDF linear models, or an alternative)."""
    kind = params.model.kind
    if kind in ("tfidf_lr", "tfidf_svm"):
        return PassageClassifier(tuple(taxonomy.labels), params.features, params.model)
    from . import approaches

    return approaches.make(kind, taxonomy, params)


@dataclass
class TrainResult:
    model: TrainedModel
    cv_metrics: dict[str, Any]
    oof_proba: np.ndarray
    train_rows: pd.DataFrame
    eval_rows: pd.DataFrame
    seconds: float


def train(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params, *, version: str | None = None,
          data_sha256: str = "") -> TrainResult:
    """Cross-validate (grouped), choose thresholds, then fit on all training rows."""
    start = time.monotonic()
    train_rows, eval_rows = split_frozen(corpus, params)
    X = model_frame(train_rows["text"], train_rows["heading"], train_rows.get("context"))
    Y = label_matrix(train_rows, taxonomy)
    estimator = make_classifier(taxonomy, params)
    folds = grouped_folds(groups_for(train_rows, params.cv.group_by), params.cv.n_splits,
                          params.cv.seed)
    oof = out_of_fold_proba(estimator, X, Y, folds)
    thresholds = choose_thresholds(Y, oof, params.thresholds)
    cv_metrics = summary(Y, oof, thresholds, taxonomy.labels)
    cv_metrics["n_folds"] = len(folds)
    cv_metrics["group_by"] = params.cv.group_by
    final = estimator.fit(X, Y)
    echo = make_echo_detector(taxonomy, params.echo).fit(list(train_rows["text"]))
    version = version or dt.datetime.now(dt.timezone.utc).strftime("v%Y%m%d-%H%M%S")
    n_per_label = {lab: int(Y[:, j].sum()) for j, lab in enumerate(taxonomy.labels)}
    model = TrainedModel(labels=taxonomy.labels, classifier=final, thresholds=thresholds, echo=echo,
                         version=version,
                         meta={"data_sha256": data_sha256, "n_train": int(len(train_rows)),
                               "n_eval": int(len(eval_rows)), "n_per_label": n_per_label})
    return TrainResult(model, cv_metrics, oof, train_rows, eval_rows, time.monotonic() - start)


def train_and_save(labelled_dir: Any, models_dir: Any, taxonomy: Taxonomy, params: Params, *,
                   make_current: bool = True,
                   extra_card: dict[str, Any] | None = None) -> tuple[TrainResult, Path]:
    """Load and validate the corpus, train, and write the model with its card."""
    from .corpus import corpus_sha256, load_corpus
    from .modelstore import save_model

    corpus = load_corpus(Path(labelled_dir), taxonomy)
    result = train(corpus, taxonomy, params, data_sha256=corpus_sha256(Path(labelled_dir)))
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
