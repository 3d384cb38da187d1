"""Scores shared by training, evaluation and promotion."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score


class LabelScores(TypedDict):
    """One label's scores."""

    precision: float
    recall: float
    f1: float
    support: int


class Scores(TypedDict):
    """Scores of probabilities under thresholds: what :func:`summary` gives."""

    macro_f1: float
    ece: float
    per_label: dict[str, LabelScores]


def per_label_scores(Y: np.ndarray, pred: np.ndarray,
                     labels: list[str]) -> dict[str, LabelScores]:
    """Precision, recall, F1 and support for each label."""
    out: dict[str, LabelScores] = {}
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


def macro_f1_over_present(Y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the categories that occur in ``Y`` (NaN when none does): a genre with
    no passage of a category says nothing about recall on it."""
    present = Y.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(f1_score(Y[:, present], pred[:, present], average="macro", zero_division=0))


def unlabelled_share(Y: np.ndarray, pred: np.ndarray) -> float:
    """Of the passages that carry a label, the share given none."""
    carries = Y.sum(axis=1) > 0
    return float((pred[carries].sum(axis=1) == 0).mean()) if carries.any() else float("nan")


class GroupScores(TypedDict):
    """Scores of one group of passages (a genre, a voice) that may lack some categories."""

    macro_f1: float
    any_label: float
    unlabelled: float


def group_scores(Y: np.ndarray, pred: np.ndarray) -> GroupScores:
    """Macro-F1 over the categories present, the share of passages given any label (for a
    group of hard negatives, its false-positive rate), and :func:`unlabelled_share`."""
    return {"macro_f1": macro_f1_over_present(Y, pred),
            "any_label": float(pred.any(axis=1).mean()),
            "unlabelled": unlabelled_share(Y, pred)}


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
            labels: list[str], fallback_ratio: float | None = None,
            eligible: np.ndarray | None = None) -> Scores:
    """Macro-F1, calibration error and per-label scores of ``proba`` under ``thresholds``
    (and the model's fallback, :func:`pipeline.classify.with_fallback`, for the ``eligible``
    rows)."""
    from .classify import with_fallback

    pred = with_fallback(proba >= thresholds, proba, thresholds, fallback_ratio,
                         eligible).astype(int)
    return {"macro_f1": macro_f1(Y, pred), "ece": expected_calibration_error(Y, proba),
            "per_label": per_label_scores(Y, pred, labels)}
