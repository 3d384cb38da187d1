"""Scores shared by training, evaluation and promotion."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score


def per_label_scores(Y: np.ndarray, pred: np.ndarray,
                     labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each label."""
    out: dict[str, dict[str, float]] = {}
    for j, lab in enumerate(labels):
        out[lab] = {
            "precision": float(precision_score(Y[:, j], pred[:, j], zero_division=0)),
            "recall": float(recall_score(Y[:, j], pred[:, j], zero_division=0)),
            "f1": float(f1_score(Y[:, j], pred[:, j], zero_division=0)),
            "support": int(Y[:, j].sum()),
        }
    return out


def macro_f1(Y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(Y, pred, average="macro", zero_division=0))


def expected_calibration_error(Y: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """ECE over every (passage, label) probability, equal-width bins."""
    y = np.asarray(Y).ravel().astype(float)
    p = np.asarray(proba).ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece)


def calibration_curve(Y: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted probability against observed frequency per bin (for plots)."""
    y = np.asarray(Y).ravel().astype(float)
    p = np.asarray(proba).ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    return [{"bin": b, "predicted": float(p[bins == b].mean()),
             "observed": float(y[bins == b].mean()), "count": int((bins == b).sum())}
            for b in range(n_bins) if (bins == b).any()]


def summary(Y: np.ndarray, proba: np.ndarray, thresholds: np.ndarray,
            labels: list[str]) -> dict[str, Any]:
    pred = (proba >= thresholds).astype(int)
    return {"macro_f1": macro_f1(Y, pred), "ece": expected_calibration_error(Y, proba),
            "per_label": per_label_scores(Y, pred, labels)}
