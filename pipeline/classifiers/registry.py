"""The one place that turns a ``model.kind`` (params.yaml) into an estimator.

Each kind maps to an :class:`Approach`: a factory building the unfitted estimator from the
taxonomy and params, whether it can be built on this install, and what to install if not.

Kinds (:data:`KINDS`):

* ``keywords``: the taxonomy's keyword lists (:mod:`.keywords`). Nothing is learnt.
* ``tfidf_lr`` / ``tfidf_svm``: the TF-IDF linear model (:mod:`.tfidf`), word and
  character n-grams; ``tfidf_lr_word`` / ``tfidf_svm_word``: word n-grams only, several
  times faster to apply.
* ``spacy``: spaCy ``textcat_multilabel`` on a blank pipeline (:mod:`.spacy_textcat`).
* ``embeddings``: MiniLM sentence embeddings (optional extra), ``static``: static word
  embeddings distilled from it, shipped in ``models/static`` (:mod:`.embeddings`).
* ``ensemble_*``: the mean of two of the above (:mod:`.ensemble`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..config import Params
from ..taxonomy import Taxonomy
from . import embeddings
from .embeddings import EMBEDDINGS_HINT, EmbeddingClassifier, StaticEmbeddingClassifier
from .ensemble import EnsembleClassifier
from .keywords import KeywordClassifier
from .spacy_textcat import SpacyTextcat
from .tfidf import PassageClassifier


class Estimator(Protocol):
    """What every approach gives: scikit-learn's fit / predict_proba on passage frames."""

    def fit(self, X: pd.DataFrame, Y: Any) -> Any: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


def _installed() -> bool:
    return True


@dataclass(frozen=True)
class Approach:
    """How to build one kind, and whether (else with what install) it can be built here."""

    build: Callable[[Taxonomy, Params], Estimator]
    installed: Callable[[], bool] = _installed
    hint: str = ""


def _tfidf(linear: str, *, words_only: bool = False) -> Approach:
    def build(taxonomy: Taxonomy, params: Params) -> Estimator:
        features = replace(params.features, char_ngram_max=0) if words_only else params.features
        return PassageClassifier.from_params(tuple(taxonomy.labels), linear, features,
                                             params.model)

    return Approach(build)


def _keywords(taxonomy: Taxonomy, params: Params) -> Estimator:
    return KeywordClassifier(tuple(taxonomy.labels),
                             tuple(tuple(c.keywords) for c in taxonomy.categories))


def _spacy(taxonomy: Taxonomy, params: Params) -> Estimator:
    return SpacyTextcat(tuple(taxonomy.labels))


def _embeddings(taxonomy: Taxonomy, params: Params) -> Estimator:
    m = params.model
    return EmbeddingClassifier(tuple(taxonomy.labels), C=m.C, class_weight=m.class_weight,
                               max_iter=m.max_iter, calibration=m.calibration)


def _static(taxonomy: Taxonomy, params: Params) -> Estimator:
    return StaticEmbeddingClassifier(tuple(taxonomy.labels), C=params.model.static_C,
                                     class_weight=params.model.class_weight)


def _ensemble(*members: str, hint: str = "") -> Approach:
    def build(taxonomy: Taxonomy, params: Params) -> Estimator:
        return EnsembleClassifier(tuple(make(m, taxonomy, params) for m in members))

    return Approach(build, lambda: all(available(m) for m in members), hint)


APPROACHES: dict[str, Approach] = {
    "keywords": Approach(_keywords),
    "tfidf_lr": _tfidf("lr"),
    "tfidf_svm": _tfidf("svm"),
    "tfidf_lr_word": _tfidf("lr", words_only=True),
    "tfidf_svm_word": _tfidf("svm", words_only=True),
    "spacy": Approach(_spacy, lambda: importlib.util.find_spec("spacy") is not None,
                      "model.kind 'spacy' needs spaCy: pip install -e ."),
    # Looked up on the module at call time, so that a test can pretend it is missing.
    "embeddings": Approach(_embeddings, lambda: embeddings.embeddings_available(),
                           EMBEDDINGS_HINT),
    "static": Approach(_static),  # shipped in models/static, no extra needed
    "ensemble_svm_static": _ensemble("tfidf_svm", "static"),
    "ensemble_svm_word_static": _ensemble("tfidf_svm_word", "static"),
    "ensemble_svm_embeddings": _ensemble("tfidf_svm", "embeddings", hint=EMBEDDINGS_HINT),
}
KINDS = tuple(APPROACHES)


def _approach(kind: str) -> Approach:
    if kind not in APPROACHES:
        raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(KINDS)}")
    return APPROACHES[kind]


def available(kind: str) -> bool:
    """Whether ``kind`` can be built here (``embeddings`` needs its optional extra)."""
    return _approach(kind).installed()


def make(kind: str, taxonomy: Taxonomy, params: Params | None = None) -> Estimator:
    """An unfitted estimator of ``kind`` for the taxonomy's labels (ImportError, saying what
    to install, when the kind cannot be built here)."""
    approach = _approach(kind)
    if not approach.installed():
        raise ImportError(approach.hint)
    return approach.build(taxonomy, params or Params())


def make_classifier(taxonomy: Taxonomy, params: Params) -> Estimator:
    """The estimator params.yaml names (``model.kind``)."""
    return make(params.model.kind, taxonomy, params)


def installed_kinds(names: str, on_missing: Callable[[str, str], None] | None = None) -> list[str]:
    """The comma-separated kinds in ``names`` that can be built here, in order; each one
    that cannot is handed to ``on_missing`` with what to install."""
    kinds = [k.strip() for k in names.split(",") if k.strip()]
    for k in kinds:
        if not available(k) and on_missing is not None:
            on_missing(k, _approach(k).hint)
    return [k for k in kinds if available(k)]
