"""Thresholds under shift: which rows set them, and how the field calibration part weighs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.train import shifted_rows, thresholds_under_shift
from tests.conftest import fast_params


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
