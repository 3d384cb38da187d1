"""The cross-validation recipe: grouped folds, out-of-fold probabilities, thresholds (and,
under shift, which rows set them and how the field calibration part weighs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from pipeline.classifiers.cv import (
    FoldTiming,
    choose_fallback,
    choose_thresholds,
    cv_set,
    grouped_folds,
    out_of_fold_proba,
    shifted_rows,
    split_frozen,
    thresholds_under_shift,
)
from pipeline.config import ThresholdParams
from pipeline.taxonomy import load_taxonomy
from tests.conftest import fast_params, small_corpus


def _separable(n: int, cut: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One label whose positives score above ``cut`` and negatives below it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.where(y == 1, rng.uniform(cut + 0.02, 0.95, n), rng.uniform(0.0, cut - 0.02, n))
    return y.reshape(-1, 1), p.reshape(-1, 1)


def test_shift_sets_thresholds_on_public_genre_rows_only():
    params = fast_params().override("thresholds", policy="shift")
    y_ours, p_ours = _separable(400, 0.7, 1)     # our own voices: positives above 0.7
    y_pub, p_pub = _separable(100, 0.3, 2)       # public genres: positives above 0.3
    rows = pd.DataFrame({"source_url": [None] * 400 + ["https://example.org/p"] * 100})
    assert shifted_rows(rows).sum() == 100
    thr = thresholds_under_shift(np.vstack([y_ours, y_pub]), np.vstack([p_ours, p_pub]), rows,
                                 params)
    assert 0.25 <= thr[0] <= 0.33
    # Policy cv_f1 uses every row, and lands elsewhere.
    cv = thresholds_under_shift(np.vstack([y_ours, y_pub]), np.vstack([p_ours, p_pub]), rows,
                                params.override("thresholds", policy="cv_f1"))
    assert cv[0] != thr[0]


def test_a_small_calibration_part_weighs_as_much_as_the_out_of_fold_rows():
    params = fast_params().override("thresholds", policy="shift")
    y_pub, p_pub = _separable(900, 0.6, 3)
    rows = pd.DataFrame({"source_url": ["https://example.org/p"] * 900})
    without = thresholds_under_shift(y_pub, p_pub, rows, params)
    # 60 field passages whose positives score low (real writing scores lower than ours).
    y_cal, p_cal = _separable(60, 0.2, 4)
    with_field = thresholds_under_shift(y_pub, p_pub, rows, params, field_Y=y_cal,
                                        field_proba=p_cal)
    assert 0.55 <= without[0] <= 0.62
    # Unweighted, 60 rows against 900 would barely move it; weighted equally, it moves down.
    assert with_field[0] < without[0] - 0.1


def test_thresholds_maximise_out_of_fold_f1():
    Y = np.array([[1], [1], [0], [0], [1], [0]])
    P = np.array([[0.9], [0.6], [0.55], [0.1], [0.7], [0.2]])
    t = choose_thresholds(Y, P, ThresholdParams(grid_min=0.1, grid_max=0.9, grid_step=0.05))
    assert 0.55 < t[0] <= 0.6


def test_grouped_folds_test_every_row_once_and_never_split_a_group():
    groups = np.array(["a", "a", "b", "c", "c", "c", "d", "e"])
    folds = grouped_folds(groups, n_splits=3, seed=1)
    assert len(folds) == 3
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(groups)))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(ValueError, match="at least two groups"):
        grouped_folds(np.array(["a", "a"]), n_splits=3, seed=1)


class _Memoriser(BaseEstimator):
    """Probability 1 for the passages it was fitted on, 0 for any other."""

    def fit(self, X, Y):
        self.seen_ = set(X["text"])
        self.k_ = Y.shape[1]
        return self

    def predict_proba(self, X):
        return np.array([[float(t in self.seen_)] * self.k_ for t in X["text"]])


def test_out_of_fold_probabilities_come_from_models_that_never_saw_the_row():
    data = cv_set(split_frozen(small_corpus(per_voice=8), fast_params())[0], load_taxonomy(),
                  fast_params())
    assert len(data.X) == len(data.Y) == len(data.rows) and data.folds
    timing = FoldTiming()
    proba = out_of_fold_proba(_Memoriser(), data.X, data.Y, data.folds, timing=timing)
    assert proba.shape == data.Y.shape and not proba.any()
    assert timing.fit_seconds > 0 and timing.predict_seconds > 0


def _near_misses() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two categories at threshold 0.5: four clear hits of each, four positives of the first
    at 0.35 (0.7 of its threshold: unlabelled by thresholds alone), and four passages that
    carry nothing, at 0.2 (0.4 of it)."""
    Y = np.array([[1, 0]] * 8 + [[0, 0]] * 4 + [[0, 1]] * 4)
    proba = np.array([[0.8, 0.1]] * 4 + [[0.35, 0.1]] * 4 + [[0.2, 0.1]] * 4 + [[0.1, 0.9]] * 4)
    return Y, proba, np.array([0.5, 0.5])


def test_the_fallback_bar_is_the_highest_that_labels_the_near_misses_and_nothing_else():
    Y, proba, thresholds = _near_misses()
    params = ThresholdParams(policy="shift", max_unlabelled=0.1, fallback_min_ratio=0.3)
    # 0.70 labels the four near misses; 0.40 and below would also label the four that
    # carry nothing (lower F1); 0.75 and above leave a third of the positives unlabelled.
    assert choose_fallback(Y, proba, thresholds, params) == pytest.approx(0.7)


def test_no_fallback_when_thresholds_alone_meet_the_target_or_it_is_switched_off():
    Y, proba, thresholds = _near_misses()
    Y_clear = Y.copy()
    Y_clear[4:8] = 0  # the near misses carry nothing: the fallback could only add errors
    params = ThresholdParams(policy="shift", max_unlabelled=0.1)
    assert choose_fallback(Y_clear, proba, thresholds, params) is None
    off = ThresholdParams(policy="shift", max_unlabelled=None)
    assert choose_fallback(Y, proba, thresholds, off) is None


def test_the_fallback_is_not_chosen_for_rows_it_may_not_label():
    Y, proba, thresholds = _near_misses()
    params = ThresholdParams(policy="shift", max_unlabelled=0.1)
    off_subject = np.ones(len(Y), dtype=bool)
    off_subject[4:8] = False  # the near misses are on another subject: nothing to gain
    assert choose_fallback(Y, proba, thresholds, params, off_subject) is None
