"""Which passages analysts should review: uncertainty scores, the queue's selection (least
sure first, near-duplicates skipped, optionally diverse), queue items and the context around
each passage in its scoring run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..corpus import normalise_text, read_records

STRATEGIES = ("uncertainty", "margin", "diverse")
ContextLookup = Callable[[dict[str, Any]], dict[str, Any] | None]


def uncertainty_scores(scored: pd.DataFrame, labels: list[str], thresholds: np.ndarray,
                       strategy: str) -> np.ndarray:
    """Higher means less sure. ``margin``: closeness of the nearest label to its threshold;
    ``uncertainty``/``diverse``: mean binary entropy of the labels' probabilities, with each
    probability re-centred so that its threshold sits at 0.5."""
    P: npt.NDArray[np.float64] = scored[[f"p_{lab}" for lab in labels]].to_numpy(dtype=float)
    if strategy == "margin":
        widest = np.maximum(thresholds, 1 - thresholds).min()
        margin: npt.NDArray[np.float64] = 1.0 - np.abs(P - thresholds).min(axis=1) / widest
        return margin
    # Map [0, t] -> [0, .5] and [t, 1] -> [.5, 1], so the entropy peaks at the threshold.
    centred = np.where(P < thresholds, 0.5 * P / thresholds,
                       0.5 + 0.5 * (P - thresholds) / (1 - thresholds))
    centred = np.clip(centred, 1e-6, 1 - 1e-6)
    entropy = -(centred * np.log2(centred) + (1 - centred) * np.log2(1 - centred))
    scores: npt.NDArray[np.float64] = entropy.mean(axis=1)
    return scores


def select_queue(scored: pd.DataFrame, scores: np.ndarray, n: int, *, dedup_similarity: float,
                 diverse: bool = False, diversity_weight: float = 0.3) -> list[int]:
    """Row positions to review, most uncertain first, skipping near-identical passages.

    With ``diverse``, maximal marginal relevance: uncertainty minus similarity to the queue.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(scored) == 0 or n <= 0:
        return []
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(scored["text"].astype(str))
    order = list(np.argsort(-scores, kind="stable"))
    chosen: list[int] = []
    pool = order[: max(n * 20, 200)] if diverse else order
    while len(chosen) < n and pool:
        if diverse and chosen:
            sims = (vectors[pool] @ vectors[chosen].T).max(axis=1).toarray().ravel()
            mmr = (1 - diversity_weight) * scores[pool] - diversity_weight * sims
            pick = pool[int(np.argmax(mmr))]
        else:
            pick = pool[0]
        pool = [i for i in pool if i != pick]
        if chosen:
            sim = float((vectors[pick] @ vectors[chosen].T).max())
            if sim >= dedup_similarity:
                continue
        chosen.append(int(pick))
    return chosen


def labelled_keys(labelled_dir: Path) -> tuple[set[str], set[str]]:
    """(normalised texts, passage ids) already labelled, authored or reviewed."""
    texts, ids = set(), set()
    for f in sorted(Path(labelled_dir).glob("*.jsonl")):
        for _, obj in read_records(f):
            texts.add(normalise_text(obj.get("text", "")))
            if obj.get("passage_id"):
                ids.add(str(obj["passage_id"]))
    return texts, ids


def build_queue(scored: pd.DataFrame, labels: list[str], thresholds: np.ndarray, *, n: int,
                strategy: str, dedup_similarity: float,
                labelled_dir: Path | None = None) -> pd.DataFrame:
    """The review queue: unlabelled, non-echo passages the model is least sure of."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    candidates = scored[~scored["echo"].astype(bool)].reset_index(drop=True)
    if labelled_dir is not None:
        texts, ids = labelled_keys(labelled_dir)
        keep = (~candidates["text"].map(normalise_text).isin(texts)
                & ~candidates["passage_id"].astype(str).isin(ids))
        candidates = candidates[keep].reset_index(drop=True)
    scores = uncertainty_scores(candidates, labels, thresholds, strategy)
    priority = scores
    if "ocr_low_confidence" in candidates:
        # Text from a scanned page that Tesseract was unsure of is checked first: its
        # words, not only its labels, may be wrong.
        low = candidates["ocr_low_confidence"].fillna(False).astype(bool).to_numpy()
        priority = np.where(low, scores + 1.0 + float(np.max(scores, initial=0.0)), scores)
    rows = select_queue(candidates, priority, n, dedup_similarity=dedup_similarity,
                        diverse=strategy == "diverse")
    queue = candidates.iloc[rows].copy()
    queue["uncertainty"] = scores[rows].round(4)
    return queue.reset_index(drop=True)


def _item(
    rec: dict[str, Any], labels: list[str], probs: dict[str, float], predicted: list[str]
) -> dict[str, Any]:
    page = rec.get("page")
    try:
        page = int(float(page)) if page not in (None, "") else 0
    except (TypeError, ValueError):
        page = 0
    return {
        "passage_id": str(rec.get("passage_id") or ""),
        "text": str(rec.get("text") or ""),
        "heading": str(rec.get("heading") or ""),
        "force": str(rec.get("force") or ""),
        "page": page,
        "source_path": str(rec.get("source_path") or ""),
        "model_version": str(rec.get("model_version") or ""),
        "probs": {lab: float(probs[lab]) for lab in labels if lab in probs},
        "labels": [lab for lab in labels if lab in set(predicted)],
    }


def items_from_frame(queue: Any, labels: list[str], model_version: str) -> list[dict[str, Any]]:
    """Queue items from a ``build_queue`` DataFrame (the same fields ``write_queue`` writes)."""
    out = []
    for r in queue.to_dict("records"):
        predicted = r.get("labels")
        predicted = (
            [str(x) for x in predicted]
            if predicted is not None and not isinstance(predicted, str)
            else []
        )
        out.append(
            _item(
                {**r, "model_version": model_version},
                labels,
                {lab: r[f"p_{lab}"] for lab in labels if f"p_{lab}" in r},
                predicted,
            )
        )
    return out


def passage_context(frame: Any) -> ContextLookup:
    """For each passage, the one before and the one after it in the same document.

    ``frame`` is a run's passages (doc_id, char_start, passage_id, text, heading, page).
    """
    cols = [
        c
        for c in ("passage_id", "doc_id", "char_start", "heading", "text", "page")
        if c in frame.columns
    ]
    if not {"passage_id", "doc_id", "char_start", "text"} <= set(cols):
        return lambda item: None
    ordered = frame[cols].sort_values(["doc_id", "char_start"], kind="stable").to_dict("records")
    neighbours: dict[str, dict[str, Any]] = {}

    def brief(rec: dict[str, Any] | None) -> dict[str, Any] | None:
        if rec is None:
            return None
        return {
            "passage_id": str(rec["passage_id"]),
            "heading": str(rec.get("heading") or ""),
            "text": str(rec["text"]),
            "page": int(rec.get("page") or 0),
        }

    for i, rec in enumerate(ordered):
        before = ordered[i - 1] if i > 0 and ordered[i - 1]["doc_id"] == rec["doc_id"] else None
        after = (
            ordered[i + 1]
            if i + 1 < len(ordered) and ordered[i + 1]["doc_id"] == rec["doc_id"]
            else None
        )
        neighbours[str(rec["passage_id"])] = {"before": brief(before), "after": brief(after)}
    return lambda item: neighbours.get(str(item.get("passage_id") or ""))


def run_model_and_thresholds(
    run_dir: Path, models_dir: Path, labels: list[str]
) -> tuple[str, list[str], npt.NDArray[np.float64]]:
    """Model version and thresholds behind a scoring run (from its summary and model card)."""
    from ..modelstore import read_card

    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    version = summary["model_version"]
    card = read_card(Path(models_dir) / version)
    return version, labels, np.array([card["thresholds"][lab] for lab in labels])
