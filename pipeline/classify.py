"""The runtime model: what the classifiers read (:func:`prepare_text`, :func:`model_frame`,
:func:`label_matrix`), the trained model that applies classifier, thresholds, echo
detection and depth heads to passages (:class:`TrainedModel`), and classifying passage
records read from JSON lines.

The estimators themselves live in :mod:`pipeline.classifiers`, one module per approach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from .ingest.cleanup import strip_bullet
from .taxonomy import Taxonomy, cue_pattern

if TYPE_CHECKING:  # the echo detector reads prepare_text from here: no import at run time
    from .classifiers.echo import EchoDetector

_SPACES = re.compile(r"\s+")


def prepare_text(text: str) -> str:
    """What the model reads: bullet glyphs stripped from each line, whitespace folded."""
    return _SPACES.sub(" ", " ".join(strip_bullet(line) for line in str(text).split("\n"))).strip()


def model_frame(texts: Any, headings: Any = None, contexts: Any = None) -> pd.DataFrame:
    """The two-column frame the classifier reads."""
    texts = list(texts)
    headings = list(headings) if headings is not None else [""] * len(texts)
    contexts = list(contexts) if contexts is not None else [""] * len(texts)
    joined = [f"{h or ''} {c or ''}" for h, c in zip(headings, contexts, strict=True)]
    prepared = {c: prepare_text(c) for c in set(joined)}  # passages share their heading
    return pd.DataFrame({"text": [prepare_text(t) for t in texts],
                         "context": [prepared[c] for c in joined]})


@dataclass
class TrainedModel:
    """What ``model.npz`` (or ``model.joblib``) holds: classifier, thresholds, echo detector,
    label order, and the depth heads (:mod:`pipeline.depth`) when it was trained with them."""

    labels: list[str]
    classifier: Any
    thresholds: np.ndarray
    echo: EchoDetector
    version: str = ""
    meta: dict[str, object] = field(default_factory=dict)  # into the model card
    depth: Any = None
    fallback_ratio: float | None = None  # see with_fallback; None: thresholds alone
    fallback_cues: tuple[str, ...] = ()  # see on_subject: which passages the fallback may label

    def predict(self, passages: pd.DataFrame, *, review_margin: float = 0.15,
                min_words: int = 0) -> pd.DataFrame:
        """Predictions for passages (columns text, and optionally heading, context).

        Returns ``p_<label>`` per label, ``labels`` (list), ``echo``, ``confidence`` and
        ``needs_review``, aligned with the input rows. Echo passages get no labels, nor do
        passages of fewer than ``min_words`` words (a table's row label, a status cell, a line
        cut off at a page end): by the labelling guide they cannot evidence anything, and no
        labelled passage is that short. A passage that reaches no threshold but comes within
        ``fallback_ratio`` of one, and is on the subject (:func:`on_subject`), gets its
        likeliest category (:func:`with_fallback`), and always ``needs_review``. With depth
        heads, passages that carry a label also get their columns (:mod:`pipeline.depth`):
        empty or NaN on the others, which are not evidence.
        """
        X = model_frame(passages["text"], passages.get("heading"), passages.get("context"))
        if len(X) == 0:
            cols = [f"p_{lab}" for lab in self.labels] + ["labels", "echo", "confidence",
                                                          "needs_review"]
            return pd.DataFrame(columns=cols)
        proba = self.classifier.predict_proba(X)
        prepared = X["text"].tolist()
        echo = self.echo.predict(list(passages["text"]), prepared)
        too_short = np.array([len(t.split()) < min_words for t in passages["text"]], dtype=bool)
        eligible = ~(echo | too_short)
        above = (proba >= self.thresholds) & eligible[:, None]
        may_fall_back = (eligible & on_subject(list(passages["text"]), self.fallback_cues)
                         if self.fallback_ratio is not None else eligible)
        hits = with_fallback(above, proba, self.thresholds, self.fallback_ratio, may_fall_back)
        distance = np.abs(proba - self.thresholds)
        span = np.maximum(self.thresholds, 1 - self.thresholds)
        confidence = (distance / span).min(axis=1)
        out = pd.DataFrame({f"p_{lab}": proba[:, j].round(4) for j, lab in enumerate(self.labels)})
        out["labels"] = [[lab for lab, h in zip(self.labels, row, strict=True) if h]
                         for row in hits]
        out["echo"] = echo
        out["confidence"] = confidence.round(4)
        labelled = np.asarray(hits.any(axis=1), dtype=bool)
        # A label from the fallback alone is, by construction, one the model is unsure of.
        out["needs_review"] = (((distance.min(axis=1) < review_margin) & eligible)
                               | (labelled & ~above.any(axis=1)))
        if self.depth is not None:
            out = out.join(self._depth(list(passages["text"]), prepared, labelled))
        return out

    def _depth(self, texts: list[str], prepared: list[str], evidence: np.ndarray) -> pd.DataFrame:
        """Depth columns for every row, predicted only where the row is evidence."""
        from .depth import with_depth_columns

        rows = np.flatnonzero(evidence)
        frame = with_depth_columns(pd.DataFrame(index=range(len(texts))),
                                   self.depth.all_subpoints)
        frame.loc[rows] = self.depth.predict([texts[i] for i in rows],
                                             [prepared[i] for i in rows]).set_axis(rows)
        return frame


def with_fallback(hits: np.ndarray, proba: np.ndarray, thresholds: np.ndarray,
                  ratio: float | None,
                  eligible: np.ndarray | None = None) -> npt.NDArray[np.bool_]:
    """``hits`` with the fallback applied: a row given no label, whose likeliest category
    (by ``proba / thresholds``) reaches ``ratio`` of its threshold, gets that category.
    ``eligible``: the rows that may (not echoes, not too short); ``ratio`` None: unchanged.

    Why: real writing scores lower than ours, and a threshold low enough for every real
    passage would label too much of ours; a passage that is plainly about something, just
    not surely enough for any one threshold, is better given its best category than none.
    """
    hits = np.asarray(hits, dtype=bool)
    if ratio is None or not len(hits):
        return hits
    relative = proba / thresholds
    best = relative.argmax(axis=1)
    add = ~hits.any(axis=1) & (relative.max(axis=1) >= ratio)
    if eligible is not None:
        add &= eligible
    out = hits.copy()
    out[np.flatnonzero(add), best[add]] = True
    return out


def on_subject(texts: list[str], cues: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    """Which texts match any of ``cues`` (the taxonomy's ``fallback_cues``, case ignored):
    all of them when there are no cues."""
    pattern = cue_pattern(cues)
    if pattern is None:
        return np.ones(len(texts), dtype=bool)
    return np.array([pattern.search(t) is not None for t in texts], dtype=bool)


def label_matrix(frame: pd.DataFrame, taxonomy: Taxonomy) -> npt.NDArray[np.int_]:
    """The 0/1 label columns of ``frame`` as an (n, k) matrix, in taxonomy label order."""
    matrix: npt.NDArray[np.int_] = frame[taxonomy.labels].to_numpy(dtype=int)
    return matrix


def read_passage_lines(path: Any) -> list[dict[str, object]]:
    """Objects with ``id`` and ``text`` (and optionally ``heading``), one per line.

    Raises :class:`~pipeline.errors.DataValidationError` naming every bad line.
    """
    from .corpus import iter_jsonl
    from .errors import DataValidationError

    records: list[dict[str, object]] = []
    problems: list[str] = []
    for n, obj, problem in iter_jsonl(path):
        if problem:
            problems.append(f"line {n}: {problem}")
        elif not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("text"), str):
            problems.append(f"line {n}: needs an object with 'id' and 'text'")
        else:
            records.append(obj)
    if problems:
        raise DataValidationError(str(path), problems)
    return records


def classify_records(records: list[dict[str, object]],
                     model: TrainedModel) -> list[dict[str, object]]:
    """Each input object, with ``probs``, ``labels`` and ``echo`` added (extra fields kept)."""
    frame = pd.DataFrame({"text": [str(r["text"]) for r in records],
                          "heading": [str(r.get("heading") or "") for r in records],
                          "context": [str(r.get("context") or "") for r in records]})
    preds = model.predict(frame)
    out = []
    for rec, (_, row) in zip(records, preds.iterrows(), strict=True):
        out.append({**rec, "probs": {lab: float(row[f"p_{lab}"]) for lab in model.labels},
                    "labels": list(row["labels"]), "echo": bool(row["echo"])})
    return out
