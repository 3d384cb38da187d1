"""Keyword rules: the taxonomy's keyword lists, matched on word boundaries ("what an analyst
has today"). Nothing is learnt; it is also the bootstrap model for a new taxonomy."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .inputs import check_label_matrix, joined_text


def keyword_pattern(keywords: tuple[str, ...] | list[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation of the keywords, each on word boundaries.

    Longest first, so "crime allocation" counts once rather than also as "allocation";
    spaces in a keyword match any run of whitespace.
    """
    words = sorted({k.strip().lower() for k in keywords if k and k.strip()}, key=len, reverse=True)
    if not words:
        return None
    alts = [r"\s+".join(re.escape(part) for part in w.split()) for w in words]
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


# scikit-learn ships no type information, so its base classes are Any to mypy.
class KeywordClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Keyword rules: score ``1 - decay ** hits`` per category, over context + text.

    ``keywords[j]`` holds the keywords of ``labels[j]``. Fitting learns nothing; it only
    compiles the patterns (and checks ``Y`` when one is given).
    """

    def __init__(self, labels: tuple[str, ...] = (), keywords: tuple[tuple[str, ...], ...] = (),
                 decay: float = 0.5):
        self.labels = labels
        self.keywords = keywords
        self.decay = decay

    def fit(self, X: pd.DataFrame, Y: Any = None) -> KeywordClassifier:
        if len(self.keywords) != len(self.labels):
            raise ValueError(f"need one keyword list per label ({len(self.labels)}), "
                             f"got {len(self.keywords)}")
        if not 0 < self.decay < 1:
            raise ValueError(f"decay must be between 0 and 1, not {self.decay}")
        if Y is not None:
            check_label_matrix(Y, tuple(self.labels), len(X), need_positives=False)
        self.patterns_ = [keyword_pattern(kws) for kws in self.keywords]
        return self

    def hits(self, X: pd.DataFrame) -> np.ndarray:
        """Keyword matches per passage and category, shape (n, k)."""
        check_is_fitted(self, "patterns_")
        texts = joined_text(X, sep=" ")
        out = np.zeros((len(texts), len(self.patterns_)), dtype=int)
        for j, pat in enumerate(self.patterns_):
            if pat is not None:
                out[:, j] = [len(pat.findall(t)) for t in texts]
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "patterns_")
        proba: npt.NDArray[np.float64] = 1.0 - np.power(self.decay, self.hits(X))
        return proba
