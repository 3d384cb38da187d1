"""Training: labelled corpus -> calibrated classifier, thresholds, echo detector, metrics.

A frozen evaluation split (a stable hash of each passage id) is held out of every
training run, so that ``forcecov promote`` can compare models on passages neither saw.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .classifiers.cv import (
    choose_fallback,
    cv_set,
    labelled_frame,
    out_of_fold_proba,
    split_frozen,
    thresholds_under_shift,
)
from .classifiers.echo import make_echo_detector
from .classifiers.registry import make_classifier
from .classify import TrainedModel, label_matrix, on_subject
from .config import Params
from .depthfit import depth_labels_for, fit_depth
from .errors import ForcecovError
from .metrics import Scores, summary
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from .project import Project


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
    fallback = (fallback_on(calibration, field_proba, thresholds, taxonomy, params)
                if calibration is not None and field_proba is not None else None)
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
                         depth=fit_depth(train_rows, depth_labels, taxonomy, params.depth),
                         fallback_ratio=fallback, fallback_cues=taxonomy.fallback_cues)
    return TrainResult(model, cv_metrics, oof, train_rows, eval_rows, time.monotonic() - start)


def fallback_on(calibration: pd.DataFrame, proba: np.ndarray, thresholds: np.ndarray,
                taxonomy: Taxonomy, params: Params) -> float | None:
    """The fallback bar (:func:`~pipeline.classifiers.cv.choose_fallback`) chosen on the
    field set's calibration part, for a classifier whose probabilities on it are ``proba``
    under ``thresholds``; only passages on the subject may fall back."""
    return choose_fallback(label_matrix(calibration, taxonomy), proba, thresholds,
                           params.thresholds,
                           on_subject(list(calibration["text"]), taxonomy.fallback_cues))


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
    depth_labels = depth_labels_for(labelled_dir, corpus)
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


def retrain_depth(model: TrainedModel, corpus: pd.DataFrame, depth_labels: pd.DataFrame | None,
                  taxonomy: Taxonomy, params: Params, *, data_sha256: str = "",
                  version: str | None = None,
                  calibration: pd.DataFrame | None = None) -> TrainedModel:
    """A copy of ``model`` whose depth heads (sub-points, status, specificity) are refitted
    on the corpus's training rows and ``depth_labels``; its passage classifier, thresholds
    and echo detector are kept as they are. With ``calibration`` (the field set's
    calibration part), the fallback bar is chosen again for the kept classifier and
    thresholds (:func:`~pipeline.classifiers.cv.choose_fallback`); without, it is kept too.

    Why: new status annotations should reach users even when a full retrain's passage
    classifier does not pass the gate. The frozen split stays out of the fit, as in
    :func:`train`, so the gate can still compare the heads on passages neither model saw.
    """
    train_rows, _ = split_frozen(corpus, params)
    depth = fit_depth(train_rows, depth_labels, taxonomy, params.depth)
    if depth is None:
        raise ForcecovError("too few depth annotations to fit any depth head "
                         f"(need {params.depth.min_annotations}); label more passages first")
    fallback, cues = model.fallback_ratio, model.fallback_cues
    if calibration is not None and len(calibration):
        field_X, _ = labelled_frame(calibration, taxonomy)
        cues = taxonomy.fallback_cues
        fallback = fallback_on(calibration, model.classifier.predict_proba(field_X),
                               model.thresholds, taxonomy, params)
    version = version or dt.datetime.now(dt.timezone.utc).strftime("v%Y%m%d-%H%M%S")
    meta = {**model.meta, "depth_from_data_sha256": data_sha256,
            "depth_n_train": int(len(train_rows)), "classifier_from": model.version}
    return replace(model, depth=depth, version=version, meta=meta, fallback_ratio=fallback,
                   fallback_cues=cues)


def retrain_depth_and_save(labelled_dir: Path, models_dir: Path, base_dir: Path,
                           taxonomy: Taxonomy, params: Params, *, make_current: bool = True,
                           trust: bool = False,
                           field_dir: Path | None = None) -> tuple[TrainedModel, Path]:
    """:func:`retrain_depth` on the model in ``base_dir`` (checked as any model is) and the
    project's labelled data (and the calibration part of the field set in ``field_dir``);
    written as a new version whose card carries the base's training figures and says which
    parts are new."""
    from .corpus import corpus_sha256, load_corpus
    from .modelstore import load_model, read_card, save_model

    base = load_model(base_dir, taxonomy, trust=trust)
    corpus = load_corpus(Path(labelled_dir), taxonomy)
    labels = depth_labels_for(labelled_dir, corpus)
    model = retrain_depth(base, corpus, labels, taxonomy, params,
                          data_sha256=corpus_sha256(Path(labelled_dir)),
                          calibration=field_calibration(field_dir, taxonomy, params))
    base_card = read_card(base_dir)
    kept = ("training_data_sha256", "cv_metrics", "train_seconds", "taxonomy")
    card = {**{k: base_card[k] for k in kept if k in base_card},  # type: ignore[literal-required]
            "params": params.as_dict(),
            "retrained": "depth heads and fallback only; classifier, thresholds and echo "
                         f"from {base.version}"}
    return model, save_model(model, Path(models_dir), card, make_current=make_current)


def train_for_project(project: Project, *, data: Path | None = None, out_dir: Path | None = None,
                      kind: str | None = None, make_current: bool = True,
                      depth_only: bool = False) -> tuple[TrainResult | None, Path]:
    """``forcecov train``: a full training run on the project's labelled data (or ``data``)
    into its models folder (or ``out_dir``), or with ``depth_only`` a refit of models/current's
    depth heads (:func:`retrain_depth_and_save`; no training figures, so None for them)."""
    from .modelstore import resolve_model_dir

    paths = project.paths
    params = project.params.override("model", kind=kind) if kind else project.params
    # The field set is labelled against the packaged taxonomy: another one cannot use it.
    field_dir = paths.field if project.packaged_taxonomy else None
    if depth_only:
        _, folder = retrain_depth_and_save(data or paths.labelled, out_dir or paths.models,
                                           resolve_model_dir(paths.models), project.taxonomy,
                                           params, make_current=make_current,
                                           field_dir=field_dir)
        return None, folder
    return train_and_save(data or paths.labelled, out_dir or paths.models, project.taxonomy,
                          params, make_current=make_current, field_dir=field_dir)
