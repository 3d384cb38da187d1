"""A fitted TF-IDF vectorizer's ``transform``, computed a batch at a time.

scikit-learn's ``TfidfVectorizer.transform`` builds every n-gram of every passage as a Python
string and looks it up in a dict, one at a time: about 100 microseconds a passage, most of
what classification cost. :class:`BatchTfidf` gives the same matrix (tested against
scikit-learn to 1e-12) with the per-n-gram work done by NumPy:

- **word n-grams** (``analyzer="word"``, the default token pattern): each passage's tokens
  are found by the same regular expression, the batch's distinct tokens are numbered once
  (``pandas.factorize``), and each vocabulary n-gram is a single integer (its words' numbers
  in base W, W the number of words in the vocabulary), so every n-gram of the batch is
  found with one hash lookup (``pandas.Index.get_indexer``);
- **character n-grams inside words** (``analyzer="char_wb"``, the echo detector's):
  n-grams never cross a word boundary, so a passage's counts are the sum of its words'.
  scikit-learn's analyzer runs once per distinct word, its result kept for the next batch,
  and a sparse product adds the words up.

Any other setting (stop words, a custom tokenizer or token pattern, ``char``) is passed to
scikit-learn's own ``transform``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Distinct words whose character n-grams are kept between batches (each a short array,
# some 300 bytes with its key: at most 15 MB; the cache starts again when full).
WORD_CACHE_MAX = 50_000


def _mode(vec: Any) -> str:
    """``word``, ``char_wb`` or ``sklearn`` (a setting this module does not reproduce)."""
    plain = (getattr(vec, "input", "content") == "content" and vec.stop_words is None
             and vec.strip_accents is None and vec.preprocessor is None
             and vec.tokenizer is None and isinstance(vec.analyzer, str))
    if not plain:
        return "sklearn"
    if vec.analyzer == "word" and vec.token_pattern == DEFAULT_TOKEN_PATTERN:
        return "word"
    if vec.analyzer == "char_wb":
        return "char_wb"
    return "sklearn"


def _number_tokens(texts: list[str], tokenize: Callable[[str], list[str]],
                   chunk: int = 4096) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_],
                                               npt.NDArray[np.int64]]:
    """A batch's tokens numbered once: each token's number, the distinct tokens in order of
    first appearance, and the text each token came from. Texts are tokenised ``chunk`` at a
    time, so that only the numbers, never every token string of a large batch, are held."""
    import pandas as pd

    number: dict[str, int] = {}
    codes, lengths = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(texts), chunk):
        per_text = [tokenize(t) for t in texts[start:start + chunk]]
        lengths.append(np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text)))
        local, distinct = pd.factorize(np.array(list(chain.from_iterable(per_text)),
                                                dtype=object))
        numbers = np.fromiter((number.setdefault(w, len(number)) for w in distinct),
                              dtype=np.int64, count=len(distinct))
        codes.append(numbers[local])
    owner = np.repeat(np.arange(len(texts)), np.concatenate(lengths))
    return np.concatenate(codes), np.array(list(number), dtype=object), owner


class BatchTfidf:
    """Exactly ``vectorizer.transform(texts)`` for a fitted ``TfidfVectorizer`` (see the
    module docstring). The vectorizer is read, never changed."""

    def __init__(self, vectorizer: Any):
        self.vectorizer = vectorizer
        self.mode = _mode(vectorizer)
        self.n_features = len(vectorizer.vocabulary_)
        if self.mode == "word":
            self._index_word_vocabulary()
        # char_wb: scikit-learn's analyzer, run once per distinct word, kept between batches
        self._analyze = vectorizer.build_analyzer() if self.mode == "char_wb" else None
        self._word_grams: dict[str, npt.NDArray[np.int64]] = {}

    def _index_word_vocabulary(self) -> None:
        import pandas as pd

        min_n, max_n = self.vectorizer.ngram_range
        split = [term.split(" ") for term in self.vectorizer.vocabulary_]
        columns = np.fromiter(self.vectorizer.vocabulary_.values(), dtype=np.int64,
                              count=len(split))
        sizes = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        self._words = pd.Index(sorted({w for parts in split for w in parts}))
        self._base = len(self._words) + 1
        if ((sizes < min_n) | (sizes > max_n)).any() or self._base ** max_n >= 2 ** 62:
            self.mode = "sklearn"  # a term with a space inside a token, or keys too wide
            return
        numbers = self._words.get_indexer(list(chain.from_iterable(split)))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._keys: dict[int, tuple[Any, npt.NDArray[np.int64]]] = {}
        for n in range(min_n, max_n + 1):
            of_size = np.flatnonzero(sizes == n)
            keys = np.zeros(len(of_size), dtype=np.int64)
            for k in range(n):
                keys = keys * self._base + numbers[starts[of_size] + k]
            self._keys[n] = (pd.Index(keys), columns[of_size])
        self._pattern = re.compile(self.vectorizer.token_pattern)

    def transform(self, texts: list[str]) -> Any:
        """The TF-IDF matrix of ``texts`` (CSR, one row per text)."""
        import pandas as pd
        from scipy import sparse

        texts = list(texts)
        if not texts:  # scikit-learn refuses an empty batch; an empty matrix is the answer
            return sparse.csr_matrix((0, self.n_features), dtype=np.float64)
        if self.mode == "sklearn":
            return self.vectorizer.transform(texts)
        # Passages under one heading share their context: each distinct text is read once.
        codes, distinct = pd.factorize(np.array(texts, dtype=object))
        distinct = [str(t) for t in distinct]
        counts = (self._word_counts(distinct) if self.mode == "word"
                  else self._char_wb_counts(distinct))
        matrix = self._weight(counts)
        return matrix if len(distinct) == len(texts) else matrix[codes]

    def _lowered(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self.vectorizer.lowercase else texts

    def _word_counts(self, texts: list[str]) -> Any:
        from scipy import sparse

        codes, distinct, owner = _number_tokens(self._lowered(texts), self._pattern.findall)
        shape = (len(texts), self.n_features)
        if not len(codes):
            return sparse.csr_matrix(shape, dtype=np.float64)
        number = self._words.get_indexer(distinct)[codes]  # -1: in no vocabulary term
        # (empty first parts: a batch may be too short for every n-gram length)
        rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for n, (keys, columns) in self._keys.items():
            m = len(codes) - n + 1
            if m <= 0 or not len(keys):
                continue
            # texts are contiguous, so an n-gram stays inside one when its ends do
            valid = owner[:m] == owner[n - 1:]
            key = np.zeros(m, dtype=np.int64)
            for k in range(n):
                part = number[k:k + m]
                valid &= part >= 0
                key = key * self._base + np.maximum(part, 0)
            at = keys.get_indexer(key[valid])
            found = at >= 0
            rows.append(owner[:m][valid][found])
            cols.append(columns[at[found]])
        row, col = np.concatenate(rows), np.concatenate(cols)
        counts = sparse.csr_matrix((np.ones(len(row)), (row, col)), shape=shape)
        counts.sum_duplicates()
        return counts

    def _char_wb_counts(self, texts: list[str]) -> Any:
        from scipy import sparse

        codes, distinct, owner = _number_tokens(self._lowered(texts), str.split)
        shape = (len(texts), self.n_features)
        if not len(codes):
            return sparse.csr_matrix(shape, dtype=np.float64)
        text_words = sparse.csr_matrix((np.ones(len(codes)), (owner, codes)),
                                       shape=(len(texts), len(distinct)))
        grams = [self._grams_of(str(w)) for w in distinct]
        gram_rows = np.repeat(np.arange(len(distinct)), [len(g) for g in grams])
        word_grams = sparse.csr_matrix(
            (np.ones(len(gram_rows)), (gram_rows, np.concatenate(grams))),
            shape=(len(distinct), self.n_features))
        counts = (text_words @ word_grams).tocsr()
        counts.sort_indices()
        return counts

    def _grams_of(self, word: str) -> npt.NDArray[np.int64]:
        """The vocabulary columns of one word's character n-grams (with repeats)."""
        cols = self._word_grams.get(word)
        if cols is None:
            assert self._analyze is not None
            vocabulary = self.vectorizer.vocabulary_
            found = [vocabulary.get(g) for g in self._analyze(word)]
            cols = np.array([c for c in found if c is not None], dtype=np.int64)
            if len(self._word_grams) >= WORD_CACHE_MAX:
                self._word_grams.clear()
            self._word_grams[word] = cols
        return cols

    def _weight(self, counts: Any) -> Any:
        """scikit-learn's TF-IDF weighting of raw counts: binary or sublinear tf, idf, norm."""
        from sklearn.preprocessing import normalize

        vec = self.vectorizer
        counts = counts.astype(np.float64, copy=False)
        if vec.binary:
            counts.data[:] = 1.0
        if vec.sublinear_tf:
            np.log(counts.data, counts.data)
            counts.data += 1.0
        if vec.use_idf:
            counts.data *= vec.idf_[counts.indices]
        if vec.norm is not None:
            counts = normalize(counts, norm=vec.norm, copy=False)
        return counts

