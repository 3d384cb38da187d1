"""The cross-validation recipe, in one place, for training, evaluation, simulation and audit.

* The frozen split (:func:`split_frozen`): a stable hash of each passage id holds a share
  of the corpus out of every training run, so that models can be compared on it.
* Grouped folds (:func:`groups_for`, :func:`grouped_folds`, :func:`folds_for`): a group
  (genre, voice...) never straddles training and test, so scores say how the model does on
  writing it has not seen.
* What the estimators read (:func:`labelled_frame`, :func:`cv_set`), built once.
* Out-of-fold probabilities (:func:`out_of_fold_proba`), per-label thresholds chosen on them
  (:func:`choose_thresholds`, :func:`thresholds_under_shift`), and training on every group
  but one (:func:`leave_one_group_out`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold

from ..classify import label_matrix, model_frame, on_subject, with_fallback
from ..config import CVParams, Params, ThresholdParams
from ..corpus import in_hashed_fraction
from ..metrics import group_scores, macro_f1, per_label_scores, unlabelled_share
from ..taxonomy import Taxonomy
from .registry import Estimator, make_classifier

# (training row indices, test row indices)
Fold = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def split_frozen(corpus: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, frozen evaluation rows)."""
    mask = corpus["id"].map(lambda i: in_hashed_fraction(str(i), params.promote.eval_fraction,
                                                         params.promote.eval_seed))
    return corpus[~mask].reset_index(drop=True), corpus[mask].reset_index(drop=True)


def groups_for(corpus: pd.DataFrame, group_by: str) -> np.ndarray:
    """Each row's cross-validation group: the ``group_by`` column (``none``: every row its
    own group)."""
    if group_by == "none":
        return np.arange(len(corpus))
    if group_by not in corpus:
        raise ValueError(f"cv.group_by={group_by!r} is not a corpus column")
    groups: np.ndarray = corpus[group_by].fillna("unknown").astype(str).to_numpy()
    return groups


def grouped_folds(groups: np.ndarray, n_splits: int, seed: int) -> list[Fold]:
    """GroupKFold splits (a group never straddles train and test), shuffled by seed."""
    unique = np.unique(groups)
    n = min(n_splits, len(unique))
    if n < 2:
        raise ValueError("cross-validation needs at least two groups")
    rng = np.random.default_rng(seed)
    relabel = {g: i for i, g in enumerate(rng.permutation(unique))}
    coded = np.array([relabel[g] for g in groups])
    return list(GroupKFold(n_splits=n).split(np.zeros(len(groups)), groups=coded))


def folds_for(rows: pd.DataFrame, cv: CVParams) -> list[Fold]:
    """The grouped folds params.yaml's ``cv`` section asks for."""
    return grouped_folds(groups_for(rows, cv.group_by), cv.n_splits, cv.seed)


def labelled_frame(rows: pd.DataFrame,
                   taxonomy: Taxonomy) -> tuple[pd.DataFrame, npt.NDArray[np.int_]]:
    """Labelled rows as the estimators read them: the frame ``X`` and label matrix ``Y``."""
    X = model_frame(rows["text"], rows.get("heading"), rows.get("context"))
    return X, label_matrix(rows, taxonomy)


@dataclass(frozen=True)
class CVSet:
    """Training rows, what the estimators read of them, and their grouped folds."""

    rows: pd.DataFrame
    X: pd.DataFrame
    Y: npt.NDArray[np.int_]
    folds: list[Fold]


def cv_set(rows: pd.DataFrame, taxonomy: Taxonomy, params: Params) -> CVSet:
    """The cross-validation set of ``rows`` (the training side of :func:`split_frozen`)."""
    X, Y = labelled_frame(rows, taxonomy)
    return CVSet(rows, X, Y, folds_for(rows, params.cv))


@dataclass
class FoldTiming:
    """Seconds spent fitting and predicting, summed over the folds."""

    fit_seconds: float = 0.0
    predict_seconds: float = 0.0


def out_of_fold_proba(estimator: Estimator, X: pd.DataFrame, Y: np.ndarray, folds: list[Fold],
                      *, timing: FoldTiming | None = None) -> np.ndarray:
    """Probabilities for every row from a model that never saw it (a fresh clone of
    ``estimator`` per fold). ``timing``, when given, adds up what fitting and predicting took."""
    proba = np.zeros(Y.shape, dtype=float)
    timing = timing if timing is not None else FoldTiming()
    for train_idx, test_idx in folds:
        est = clone(estimator)
        t0 = time.perf_counter()
        est.fit(X.iloc[train_idx].reset_index(drop=True), Y[train_idx])
        t1 = time.perf_counter()
        proba[test_idx] = est.predict_proba(X.iloc[test_idx].reset_index(drop=True))
        timing.fit_seconds += t1 - t0
        timing.predict_seconds += time.perf_counter() - t1
    return proba


def choose_thresholds(Y: np.ndarray, proba: np.ndarray, params: ThresholdParams, *,
                      sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-label threshold maximising F1 on the given probabilities (or the fixed one).

    ``cv_f1`` and ``shift`` both take the best F1 here; they differ in which out-of-fold
    rows the caller passes in (see :func:`thresholds_under_shift`).
    """
    k = Y.shape[1]
    if params.policy == "fixed":
        return np.full(k, params.fixed)
    if params.policy not in ("cv_f1", "shift"):
        raise ValueError(f"unknown threshold policy {params.policy!r}")
    grid = np.arange(params.grid_min, params.grid_max + 1e-9, params.grid_step)
    out = np.empty(k)
    for j in range(k):
        scores = [f1_score(Y[:, j], proba[:, j] >= t, zero_division=0,
                           sample_weight=sample_weight) for t in grid]
        best = max(scores)
        # Of the thresholds within a hair of the best F1, take the middle one: more stable.
        near = [t for t, s in zip(grid, scores, strict=True) if s >= best - 1e-9]
        out[j] = float(near[len(near) // 2])
    return out
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
    Other policies: :func:`choose_thresholds` on every out-of-fold row.
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


def choose_fallback(Y: np.ndarray, proba: np.ndarray, thresholds: np.ndarray,
                    params: ThresholdParams,
                    eligible: np.ndarray | None = None) -> float | None:
    """The fallback bar (:func:`pipeline.classify.with_fallback`) for a model whose
    probabilities on real writing are ``proba`` (the field set's calibration part).

    Bars from 1 down to ``params.fallback_min_ratio`` of the thresholds, in steps of 0.05,
    and no fallback at all, are tried. Of those leaving at most ``params.max_unlabelled`` of
    the labelled passages with no label, the one with the best macro-F1 wins (on a tie, the
    higher bar: fewer labels added); when none does, the best macro-F1 of all. None when
    ``max_unlabelled`` is null or there is nothing to choose on. ``eligible``: the rows the
    fallback may label (:func:`pipeline.classify.on_subject`), all when None.
    """
    if params.max_unlabelled is None or not len(Y):
        return None
    above = proba >= thresholds
    bars: list[float | None] = [None, *np.round(
        np.arange(1.0, params.fallback_min_ratio - 1e-9, -0.05), 2).tolist()]
    scored = []
    for bar in bars:
        pred = with_fallback(above, proba, thresholds, bar, eligible).astype(int)
        scored.append((bar, macro_f1(Y, pred), unlabelled_share(Y, pred)))
    meeting = [s for s in scored if s[2] <= params.max_unlabelled] or scored
    best = max(f1 for _, f1, _ in meeting)
    return next(bar for bar, f1, _ in meeting if f1 >= best - 1e-9)


def leave_one_group_out(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params, *,
                        group: str = "genre",
                        thresholds: np.ndarray | None = None,
                        fallback_ratio: float | None = None,
                        fallback_cues: tuple[str, ...] = ()) -> pd.DataFrame:
    """Train on every ``group`` (genre or voice) but one, test on that one.

    With ``thresholds``, those are applied (the shipped ones, and the shipped
    ``fallback_ratio`` and ``fallback_cues``); without, each round chooses its own by
    grouped cross-validation inside its training groups.

    Columns: the group, n, macro_f1 (over the categories present in the group; NaN when none
    is), any_label (share of the group's passages given a label: for a genre of hard
    negatives, its false-positive rate), unlabelled (labelled passages given none), and
    f1_<category>.
    """
    rows, _ = split_frozen(corpus, params)
    X, Y = labelled_frame(rows, taxonomy)
    groups = rows[group].to_numpy()
    subject = on_subject(list(rows["text"]), fallback_cues)
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
        proba = est.predict_proba(X[test].reset_index(drop=True))
        pred = with_fallback(proba >= chosen, proba, chosen, fallback_ratio,
                             subject[test]).astype(int)
        scores = per_label_scores(Y[test], pred, taxonomy.labels)
        records.append({group: name, "n": int(test.sum()), **group_scores(Y[test], pred),
                        **{f"f1_{lab}": scores[lab]["f1"] for lab in taxonomy.labels}})
    return pd.DataFrame(records)
