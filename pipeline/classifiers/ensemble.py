"""An ensemble: the weighted mean of its members' probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted


# scikit-learn ships no type information, so its base classes are Any to mypy.
class EnsembleClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """The weighted mean of its members' probabilities (each an estimator of this package).

    Members that learn different things (character n-grams of our corpus's wording, and
    word meanings from a sentence model) fail on different passages, so the mean transfers
    to unseen writing better than either.

    ``members`` are unfitted estimators, as scikit-learn's ``VotingClassifier`` takes them:
    a parameter of one member is set on that member before it joins (``get_params(deep=True)``
    does not reach into them, because members have no names to address them by).
    """

    def __init__(self, members: tuple[Any, ...] = (), weights: tuple[float, ...] | None = None):
        self.members = members
        self.weights = weights

    def fit(self, X: pd.DataFrame, Y: Any) -> EnsembleClassifier:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError("need one weight per member")
        self.members_ = [clone(m).fit(X, Y) for m in self.members]
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "members_")
        weights = np.asarray(self.weights or [1.0] * len(self.members_), dtype=float)
        stacked = np.stack([m.predict_proba(X) for m in self.members_])
        mean: np.ndarray = np.tensordot(weights / weights.sum(), stacked, axes=1)
        return mean
