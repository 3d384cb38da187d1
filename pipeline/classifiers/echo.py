"""Echo detection: passages that restate a recommendation or a complaint concern rather than
answer it. Based on the wording held in the taxonomy, not on the classifier."""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from ..classify import prepare_text
from ..config import EchoParams
from ..taxonomy import Taxonomy


# scikit-learn ships no type information, so its base classes are Any to mypy.
class EchoDetector(BaseEstimator):  # type: ignore[misc]
    """Flags passages that restate a recommendation or a complaint concern.

    Based on the wording held in the taxonomy, not on the classifier. A passage is an echo
    when it is short enough to be a restatement (``max_words``) and either

    * its character TF-IDF cosine to the nearest taxonomy text reaches ``similarity``
      (``own_voice_similarity`` when it speaks in its own voice: "we fund ..."), or
    * it attributes itself to the report, the complaint or a recommendation (an echo cue),
      has some similarity (``cue_similarity``) and speaks in no voice of its own.
    """

    def __init__(self, texts: tuple[str, ...] = (), similarity: float = 0.5, max_words: int = 90,
                 cue_similarity: float = 0.05, cues: tuple[str, ...] = (),
                 own_voice: tuple[str, ...] = (), own_voice_similarity: float = 0.75):
        self.texts = texts
        self.own_voice_similarity = own_voice_similarity
        self.similarity = similarity
        self.max_words = max_words
        self.cue_similarity = cue_similarity
        self.cues = cues
        self.own_voice = own_voice

    def fit(self, background: list[str] | None = None) -> EchoDetector:
        if not self.texts:
            raise ValueError("EchoDetector needs the taxonomy's recommendation texts")
        corpus = [prepare_text(t) for t in (list(background or []) + list(self.texts))]
        self.vectorizer_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5),
                                           sublinear_tf=True, min_df=1).fit(corpus)
        self.reference_ = self.vectorizer_.transform([prepare_text(t) for t in self.texts])
        self.compile_cues()
        return self

    def compile_cues(self) -> None:
        """Get ready to predict, after fitting or loading: compile the echo and own-voice cue
        patterns, and index the vocabulary for batch transforms."""
        from .batchtfidf import BatchTfidf

        self.cue_re_ = [re.compile(p, re.I | re.M) for p in self.cues]
        self.own_re_ = [re.compile(p, re.I) for p in self.own_voice]
        self.tfidf_ = BatchTfidf(self.vectorizer_)

    def score(self, texts: list[str], prepared: list[str] | None = None) -> np.ndarray:
        """Cosine to the nearest taxonomy text, for each passage. ``prepared``: the texts as
        :func:`pipeline.classify.prepare_text` gives them, when the caller has them."""
        check_is_fitted(self, "reference_")
        if not len(texts):
            return np.zeros(0)
        if not hasattr(self, "tfidf_"):  # pickled by an older version
            self.compile_cues()
        if prepared is None:
            prepared = [prepare_text(t) for t in texts]
        m = self.tfidf_.transform(prepared)
        return np.asarray((m @ self.reference_.T).max(axis=1).toarray()).ravel()

    def predict(self, texts: list[str], prepared: list[str] | None = None) -> np.ndarray:
        """Whether each passage is an echo (see the class docstring). ``prepared`` as for
        :meth:`score`."""
        check_is_fitted(self, ("reference_", "cue_re_"))
        texts = [str(t) for t in texts]
        words = np.array([len(t.split()) for t in texts], dtype=int)
        # A passage over max_words is never an echo, so only the short ones are compared.
        short = np.flatnonzero(words <= self.max_words)
        sims = np.zeros(len(texts))
        sims[short] = self.score([texts[i] for i in short],
                                 None if prepared is None else [prepared[i] for i in short])
        # The cues can only matter for a short passage with some similarity: read only those.
        bar = min(self.similarity, self.own_voice_similarity, self.cue_similarity)
        own, cued = np.zeros(len(texts), dtype=bool), np.zeros(len(texts), dtype=bool)
        candidates = short[sims[short] >= bar]
        own[candidates] = [_found(self.own_re_, texts[i]) for i in candidates]
        candidates = candidates[~own[candidates]]
        cued[candidates] = [_found(self.cue_re_, texts[i]) for i in candidates]
        close = sims >= np.where(own, self.own_voice_similarity, self.similarity)
        echo: npt.NDArray[np.bool_] = (
            (close | (cued & (sims >= self.cue_similarity))) & (words <= self.max_words))
        return echo


def _found(patterns: list[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def make_echo_detector(taxonomy: Taxonomy, params: EchoParams) -> EchoDetector:
    """An unfitted detector of the taxonomy's wording and cues, with params.yaml's echo bars."""
    return EchoDetector(tuple(taxonomy.echo_texts), params.similarity, params.max_words,
                        params.cue_similarity, tuple(taxonomy.echo_cues),
                        tuple(taxonomy.own_voice_cues), params.own_voice_similarity)
