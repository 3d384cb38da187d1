"""Echo detection: passages that restate a recommendation or a complaint concern rather than
answer it. Based on the wording held in the taxonomy, not on the classifier."""

from __future__ import annotations

import re
from typing import Any

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
        """Compile the echo and own-voice cue patterns (after fitting or loading)."""
        self.cue_re_ = [re.compile(p, re.I | re.M) for p in self.cues]
        self.own_re_ = [re.compile(p, re.I) for p in self.own_voice]

    def score(self, texts: list[str]) -> np.ndarray:
        """Cosine to the nearest taxonomy text, for each passage."""
        check_is_fitted(self, "reference_")
        if not len(texts):
            return np.zeros(0)
        m = self._char_tfidf([prepare_text(t) for t in texts])
        return np.asarray((m @ self.reference_.T).max(axis=1).toarray()).ravel()

    def _char_tfidf(self, texts: list[str]) -> Any:
        """Exactly ``self.vectorizer_.transform(texts)``, several times faster on a batch.

        ``char_wb`` n-grams never cross a word boundary, so a passage's n-gram counts are the
        sum of its words' counts. scikit-learn's pure-Python analyzer then runs once per
        distinct word in the batch instead of once per word of every passage; a sparse
        product adds them up, and the TF-IDF weighting (sublinear tf, idf, l2) follows.
        """
        from scipy import sparse
        from sklearn.preprocessing import normalize

        vec = self.vectorizer_
        index: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for i, text in enumerate(texts):
            for word in (text.lower() if vec.lowercase else text).split():
                rows.append(i)
                cols.append(index.setdefault(word, len(index)))
        doc_words = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                      shape=(len(texts), len(index)))
        # The fitted vectorizer's own analyzer and vocabulary give each word's n-gram counts.
        word_ngrams = self._word_counts(list(index))
        counts = (doc_words @ word_ngrams).tocsr()
        if vec.sublinear_tf:
            np.log(counts.data, counts.data)
            counts.data += 1
        counts = counts @ sparse.diags(vec.idf_)
        return normalize(counts, norm=vec.norm, copy=False) if vec.norm else counts

    def _word_counts(self, words: list[str]) -> Any:
        """Raw n-gram counts of each word, over the fitted vocabulary: (n words, n features)."""
        from scipy import sparse

        analyze = self.vectorizer_.build_analyzer()
        vocabulary = self.vectorizer_.vocabulary_
        rows, cols = [], []
        for i, word in enumerate(words):
            for gram in analyze(word):
                j = vocabulary.get(gram)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                 shape=(len(words), len(vocabulary)))

    def predict(self, texts: list[str]) -> np.ndarray:
        """Whether each passage is an echo (see the class docstring)."""
        check_is_fitted(self, ("reference_", "cue_re_"))
        texts = [str(t) for t in texts]
        words = np.array([len(t.split()) for t in texts], dtype=int)
        # A passage over max_words is never an echo, so only the short ones are compared.
        short = np.flatnonzero(words <= self.max_words)
        sims = np.zeros(len(texts))
        sims[short] = self.score([texts[i] for i in short])
        own = np.array([any(r.search(t) for r in self.own_re_) for t in texts], dtype=bool)
        cued = np.array([any(r.search(t) for r in self.cue_re_) for t in texts], dtype=bool) & ~own
        close = sims >= np.where(own, self.own_voice_similarity, self.similarity)
        echo: npt.NDArray[np.bool_] = (
            (close | (cued & (sims >= self.cue_similarity))) & (words <= self.max_words))
        return echo


def make_echo_detector(taxonomy: Taxonomy, params: EchoParams) -> EchoDetector:
    """An unfitted detector of the taxonomy's wording and cues, with params.yaml's echo bars."""
    return EchoDetector(tuple(taxonomy.echo_texts), params.similarity, params.max_words,
                        params.cue_similarity, tuple(taxonomy.echo_cues),
                        tuple(taxonomy.own_voice_cues), params.own_voice_similarity)
