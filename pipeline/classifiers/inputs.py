"""What every estimator reads: the passage frame as one string per passage, and the label
matrix, checked against the estimator's labels before anything is learnt."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd


def check_label_matrix(Y: Any, labels: tuple[str, ...], n: int, *,
                       need_positives: bool = True) -> npt.NDArray[np.int_]:
    """``Y`` as an ``(n, len(labels))`` 0/1 integer matrix, or a ValueError saying why not.

    With ``need_positives`` (for every estimator that learns), a label with no positive
    example is refused too: no model can learn it, and calibration fails on one class.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape != (n, len(labels)):
        raise ValueError(f"Y must be ({n}, {len(labels)}): one row per passage, one column per "
                         f"label; got {Y.shape}")
    matrix: npt.NDArray[np.int_] = Y.astype(int)
    missing = [lab for lab, k in zip(labels, matrix.sum(axis=0), strict=True) if k == 0]
    if need_positives and missing:
        raise ValueError(f"no positive examples for {missing}")
    return matrix


def joined_text(X: pd.DataFrame, sep: str = " | ") -> list[str]:
    """Context and passage as one string (just the passage when there is no context)."""
    texts = X["text"].fillna("").astype(str)
    contexts = X["context"].fillna("").astype(str) if "context" in X else pd.Series([""] * len(X))
    return [f"{c}{sep}{t}" if c.strip() else t for c, t in zip(contexts, texts, strict=True)]
