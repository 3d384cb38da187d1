"""Depth of evidence: which sub-points a passage speaks to, the status of what it describes,
and whether it names anything concrete.

Three small linear heads share one word TF-IDF (:class:`DepthModel`):

- **sub-points**: for each category with more than one sub-point, a logistic regression per
  sub-point, trained only on passages that carry the category (``subpoints`` in the corpus):
  the probability that an evidence passage of that category speaks to the sub-point;
- **status**: ``in_place``, ``in_progress``, ``planned``, ``gap`` or ``not_stated``
  (multinomial logistic regression), from the depth annotations;
- **specificity**: the probability that the passage names a concrete team, role, system,
  partner, number or date rather than a general statement of intent (binary logistic
  regression, in the manner of ClimateBERT's specificity classifier), from the same
  annotations.

The heads are fitted from annotations by :mod:`pipeline.depthfit`. A head with too little
data is left out, and coverage then falls back (keyword sub-points, status ``not_stated``,
specificity unknown).

Columns of :meth:`DepthModel.predict`: ``status`` (the passage's likeliest), the five
``p_status_<status>``, ``p_specific``, and ``q_<subpoint>`` for every sub-point of a
multi-sub-point category (NaN where the model has no head for it).

``p_status_*`` are the probabilities of the passage's *most established* part: the passage
itself or one of its sentences, whichever is likelier to be ``in_place`` or ``in_progress``.
A passage that admits a gap and then describes the remedy ("the page had not been updated
since 2018 ... The page has now been rewritten") keeps ``status`` ``gap`` (it does admit
one), but counts in coverage for the remedy it describes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from .taxonomy import Taxonomy

# A sentence ends at . ! or ? followed by space and a capital, digit, quote or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“‘(])")
# Words that mark a status, counted beside the TF-IDF for the status head only: its rarer
# classes (planned, in progress) turn on a few words that TF-IDF spreads over many n-grams.
# Measured: macro-F1 0.46 -> 0.50 on held-out genres, 0.44 -> 0.54 on the field test part
# (summing the cues' vocabulary terms instead, which is faster, gave 0.50 and 0.45).
STATUS_CUES = (
    r"\b(will|shall|plan(s|ned)?|intend(s|ed)?|aim(s)? to|propos\w+|next (year|month)|by "
    r"(january|february|march|april|may|june|july|august|september|october|november|december"
    r"|the end|spring|summer|autumn|winter|q[1-4])|in 20(2[2-9]))\b",
    r"\b(is|are) being\b|\b(currently|now) (developing|reviewing|rolling|piloting|working)\b"
    r"|\b(under way|underway|ongoing|in progress|pilot(ing)?|rolling out|part(ly|ially))\b"
    r"|\b\d{1,3}\s?%",
    r"\b(not yet|no (dedicated|specific|formal)|do(es)? not (have|record|know)|lack(s|ing)?|gap"
    r"|inconsisten\w+|insufficient|inadequate|rarely|limited|too often|fail(ed|s|ing)?"
    r"|has not|have not|cannot|weakness\w*)\b",
    r"\b(has|have) (been )?(introduced|established|launched|delivered|completed|created|set up"
    r"|trained|appointed)\b|\b(in place|established|operates|runs)\b",
    r"\b(should|must|ought to|are expected to|need to)\b",
)
STATUSES = ("in_place", "in_progress", "planned", "gap", "not_stated")
SPECIFICITY = ("specific", "general")


@dataclass
class DepthModel:
    """The fitted heads (see the module docstring). Plain arrays, so it stores in
    ``model.npz`` without pickling (:func:`to_arrays`, :func:`from_arrays`)."""

    vectorizer: Any
    subpoints: list[str] = field(default_factory=list)
    subpoint_coef: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    subpoint_intercept: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    statuses: list[str] = field(default_factory=list)
    status_coef: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    status_intercept: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    specific_coef: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    specific_intercept: float = float("nan")
    all_subpoints: list[str] = field(default_factory=list)
    status_cues: list[str] = field(default_factory=lambda: list(STATUS_CUES))
    sentence_min: float = 0.6

    @cached_property
    def tfidf(self) -> Any:
        """The vectorizer's transform, a batch at a time (:mod:`.classifiers.batchtfidf`)."""
        from .classifiers.batchtfidf import BatchTfidf

        return BatchTfidf(self.vectorizer)

    def _status_proba(self, texts: list[str], X: Any) -> npt.NDArray[np.float64]:
        from scipy.special import softmax

        features = status_features(X, texts, self.status_cues)
        proba: npt.NDArray[np.float64] = softmax(
            np.asarray(features @ self.status_coef.T) + self.status_intercept, axis=1)
        return proba

    def _most_established(self, prepared: list[str],
                          probs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Each row's probabilities; for a row less than ``sentence_min`` likely to describe
        something in place or in progress, those of its sentence likeliest to, when that
        sentence is at least ``sentence_min`` likely to. ``prepared``: the texts as
        :func:`pipeline.classify.prepare_text` gives them."""
        established = [self.statuses.index(s) for s in ("in_place", "in_progress")
                       if s in self.statuses]
        # Only passages not already surely established need their sentences read.
        unsure = probs[:, established].sum(axis=1) < self.sentence_min
        sentences, owner = [], []
        for i, text in enumerate(prepared):
            if not unsure[i]:
                continue
            parts = [p for p in _SENTENCE_END.split(text) if p.strip()]
            if len(parts) > 1:
                sentences += parts
                owner += [i] * len(parts)
        if not sentences:
            return probs
        sent_probs = self._status_proba(sentences, self.tfidf.transform(sentences))
        best = probs.copy()
        for row, sp in zip(owner, sent_probs, strict=True):
            # Only a sentence that itself reads, surely enough, as in place or in progress
            # stands for the passage: not a lead-in ("I must be frank about the defence."),
            # nor half of a gap ("the pages were not carried across to the new intranet").
            if (sp[established].sum() >= self.sentence_min
                    and sp[established].sum() > best[row, established].sum()):
                best[row] = sp
        return best

    def predict(self, texts: list[str], prepared: list[str] | None = None) -> pd.DataFrame:
        """Depth columns for each text, aligned with the input. ``prepared``: the texts as
        :func:`pipeline.classify.prepare_text` gives them, when the caller has them."""
        from scipy.special import expit

        from .classify import prepare_text

        n = len(texts)
        out = pd.DataFrame(index=range(n))
        if not n:
            return with_depth_columns(out, self.all_subpoints)
        if prepared is None:
            prepared = [prepare_text(t) for t in texts]
        X = self.tfidf.transform(prepared)
        if self.statuses:
            probs = self._status_proba(prepared, X)
            out["status"] = [self.statuses[i] for i in probs.argmax(axis=1)]
            probs = self._most_established(prepared, probs)
            for s in STATUSES:
                out[f"p_status_{s}"] = (probs[:, self.statuses.index(s)].round(4)
                                        if s in self.statuses else 0.0)
        else:
            out["status"] = ""
            for s in STATUSES:
                out[f"p_status_{s}"] = np.nan
        if self.specific_coef.size:
            out["p_specific"] = expit(np.asarray(X @ self.specific_coef)
                                      + self.specific_intercept).round(4)
        else:
            out["p_specific"] = np.nan
        q = (expit(np.asarray(X @ self.subpoint_coef.T) + self.subpoint_intercept)
             if self.subpoints else np.zeros((n, 0)))
        for s in self.all_subpoints:
            out[f"q_{s}"] = (q[:, self.subpoints.index(s)].round(4) if s in self.subpoints
                             else np.nan)
        return out


@lru_cache(maxsize=8)
def _compiled(cues: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    # Matched against lower-cased text: a case-blind pattern is twice as slow.
    return tuple(re.compile(c) for c in cues)


def status_features(X: Any, texts: list[str], cues: list[str]) -> Any:
    """The status head's features: the TF-IDF rows and, beside them, log(1 + count) of each
    cue pattern (``STATUS_CUES``, lower case) in each text."""
    from scipy import sparse

    patterns = _compiled(tuple(cues))
    lowered = [t.lower() for t in texts]
    counts = np.array([[len(p.findall(t)) for p in patterns] for t in lowered],
                      dtype=float).reshape(len(texts), len(cues))
    return sparse.hstack([X, sparse.csr_matrix(np.log1p(counts))]).tocsr()


def depth_columns(subpoints: list[str]) -> list[str]:
    """The columns :meth:`DepthModel.predict` adds, for these sub-points."""
    return ["status", *(f"p_status_{s}" for s in STATUSES), "p_specific",
            *(f"q_{s}" for s in subpoints)]


def with_depth_columns(frame: pd.DataFrame, subpoints: list[str]) -> pd.DataFrame:
    """``frame`` with every depth column, blank ("" or NaN) where the model had no heads."""
    for col in depth_columns(subpoints):
        if col not in frame:
            frame[col] = "" if col == "status" else np.nan
    return frame


def multi_subpoints(taxonomy: Taxonomy) -> list[str]:
    """Sub-points of categories that have more than one (the only ones a head can tell)."""
    return [s for c in taxonomy.categories if len(c.subpoints) > 1 for s in c.subpoints]


def to_arrays(model: DepthModel, prefix: str = "depth.") -> dict[str, npt.NDArray[Any]]:
    """The depth model as plain arrays (keys under ``prefix``), for ``model.npz``."""
    from .modelarrays import _terms, _vectorizer_settings

    layout = {"subpoints": model.subpoints, "statuses": model.statuses,
              "all_subpoints": model.all_subpoints, "status_cues": model.status_cues,
              "sentence_min": model.sentence_min,
              "specific_intercept": model.specific_intercept,
              "tfidf": _vectorizer_settings(model.vectorizer)}
    return {f"{prefix}layout": np.array(json.dumps(layout)),
            f"{prefix}terms": _terms(model.vectorizer),
            f"{prefix}idf": np.asarray(model.vectorizer.idf_, dtype=np.float64),
            f"{prefix}subpoint_coef": np.asarray(model.subpoint_coef, dtype=np.float64),
            f"{prefix}subpoint_intercept": np.asarray(model.subpoint_intercept, np.float64),
            f"{prefix}status_coef": np.asarray(model.status_coef, dtype=np.float64),
            f"{prefix}status_intercept": np.asarray(model.status_intercept, np.float64),
            f"{prefix}specific_coef": np.asarray(model.specific_coef, dtype=np.float64)}


def from_arrays(arrays: dict[str, npt.NDArray[Any]], prefix: str = "depth.") -> DepthModel | None:
    """The depth model stored by :func:`to_arrays`, or None when the file has none."""
    from .modelarrays import _rebuild_vectorizer

    if f"{prefix}layout" not in arrays:
        return None
    layout = json.loads(str(arrays[f"{prefix}layout"]))
    vec = _rebuild_vectorizer(layout["tfidf"], arrays[f"{prefix}terms"], arrays[f"{prefix}idf"])
    return DepthModel(vectorizer=vec, subpoints=list(layout["subpoints"]),
                      subpoint_coef=arrays[f"{prefix}subpoint_coef"],
                      subpoint_intercept=arrays[f"{prefix}subpoint_intercept"],
                      statuses=list(layout["statuses"]),
                      status_coef=arrays[f"{prefix}status_coef"],
                      status_intercept=arrays[f"{prefix}status_intercept"],
                      specific_coef=arrays[f"{prefix}specific_coef"],
                      specific_intercept=float(layout["specific_intercept"]),
                      all_subpoints=list(layout["all_subpoints"]),
                      status_cues=list(layout.get("status_cues", [])),
                      sentence_min=float(layout.get("sentence_min", 0.6)))
