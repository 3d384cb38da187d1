"""The default classifier: TF-IDF n-grams into one linear model per label, calibrated.

Word 1..n-grams and character n-grams of the passage, plus word n-grams of its
heading/row context, into one-vs-rest logistic regression (``linear="lr"``) or a linear
SVM (``linear="svm"``), with sigmoid calibration so that every label has a probability.
Fitted, it needs no code of its own to predict: :mod:`pipeline.modelarrays` stores it as
plain arrays.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from ..config import FeatureParams, ModelParams
from .inputs import check_label_matrix

LINEAR_MODELS = ("lr", "svm")


def build_features(params: FeatureParams, *, context: bool = True) -> ColumnTransformer:
    """Word 1..n-grams and character n-grams of the text; word n-grams of the context
    (left out with ``context=False``: training passages with no heading have no context
    vocabulary to learn)."""
    blocks = [("word", TfidfVectorizer(ngram_range=(1, params.word_ngram_max), min_df=params.min_df,
                                       max_features=params.max_features_word,
                                       sublinear_tf=params.sublinear_tf, lowercase=True), "text")]
    if params.char_ngram_max > 0:  # character n-grams: robust to spelling, about 7x slower
        char = TfidfVectorizer(analyzer="char_wb",
                               ngram_range=(params.char_ngram_min, params.char_ngram_max),
                               min_df=params.min_df, max_features=params.max_features_char,
                               sublinear_tf=params.sublinear_tf, lowercase=True)
        blocks.append(("char", char, "text"))
    if context:
        blocks.append(("context", TfidfVectorizer(ngram_range=(1, 2), min_df=1,
                                                  sublinear_tf=True), "context"))
    weights = {"word": 1.0, "char": 1.0, "context": params.heading_weight}
    return ColumnTransformer(blocks, transformer_weights=weights)


def base_estimator(linear: str, *, C: float, class_weight: str | None, max_iter: int,
                   calibration: str) -> Any:
    """The per-label linear model: logistic regression or a linear SVM, calibrated unless
    ``calibration`` is ``none`` (which only logistic regression allows)."""
    if linear == "lr":
        est: Any = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter,
                                      solver="liblinear")
    elif linear == "svm":
        # model.C is set for logistic regression; the SVM takes an eighth of it (as every
        # shipped SVM model was trained).
        est = LinearSVC(C=C / 8, class_weight=class_weight, max_iter=max_iter)
    else:
        raise ValueError(f"linear must be one of {LINEAR_MODELS}, not {linear!r}")
    if calibration in ("sigmoid", "isotonic"):
        return CalibratedClassifierCV(est, method=calibration, cv=3)
    if linear == "svm":
        raise ValueError("a linear SVM needs calibration (sigmoid or isotonic) to give "
                         "probabilities")
    return est


# scikit-learn ships no type information, so its base classes are Any to mypy.
class PassageClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Multi-label TF-IDF + linear classifier with the scikit-learn estimator contract.

    Parameters are flat (``get_params()`` lists ``C``, ``char_ngram_max``... so a grid
    search reaches each one); their defaults are those of :class:`~pipeline.config.
    ModelParams` and :class:`~pipeline.config.FeatureParams`, and :meth:`from_params`
    builds one from those sections of params.yaml.
    """

    def __init__(self, labels: tuple[str, ...] = (), linear: str = "svm",
                 C: float = ModelParams.C, class_weight: str | None = ModelParams.class_weight,
                 max_iter: int = ModelParams.max_iter,
                 calibration: str = ModelParams.calibration,
                 word_ngram_max: int = FeatureParams.word_ngram_max,
                 char_ngram_min: int = FeatureParams.char_ngram_min,
                 char_ngram_max: int = FeatureParams.char_ngram_max,
                 min_df: int = FeatureParams.min_df,
                 max_features_word: int = FeatureParams.max_features_word,
                 max_features_char: int = FeatureParams.max_features_char,
                 sublinear_tf: bool = FeatureParams.sublinear_tf,
                 heading_weight: float = FeatureParams.heading_weight):
        self.labels = labels
        self.linear = linear
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.calibration = calibration
        self.word_ngram_max = word_ngram_max
        self.char_ngram_min = char_ngram_min
        self.char_ngram_max = char_ngram_max
        self.min_df = min_df
        self.max_features_word = max_features_word
        self.max_features_char = max_features_char
        self.sublinear_tf = sublinear_tf
        self.heading_weight = heading_weight

    @classmethod
    def from_params(cls, labels: tuple[str, ...], linear: str, features: FeatureParams,
                    model: ModelParams) -> PassageClassifier:
        """One built from the ``features`` and ``model`` sections of params.yaml."""
        return cls(labels, linear, C=model.C, class_weight=model.class_weight,
                   max_iter=model.max_iter, calibration=model.calibration, **asdict(features))

    def feature_params(self) -> FeatureParams:
        """This estimator's feature parameters, as the section :func:`build_features` reads."""
        return FeatureParams(**{f.name: getattr(self, f.name) for f in fields(FeatureParams)})

    def fit(self, X: pd.DataFrame, Y: Any) -> PassageClassifier:
        Y = check_label_matrix(Y, tuple(self.labels), len(X))
        linear = base_estimator(self.linear, C=self.C, class_weight=self.class_weight,
                                max_iter=self.max_iter, calibration=self.calibration)
        self.pipeline_ = Pipeline([
            ("features", build_features(self.feature_params(),
                                        context=bool(X["context"].astype(str).str.strip().any()))),
            ("clf", OneVsRestClassifier(linear)),
        ])
        self.pipeline_.fit(X, Y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.predict_proba(X))
