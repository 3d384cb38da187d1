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
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Distinct words whose character n-grams are kept between batches (each a short array).
WORD_CACHE_MAX = 200_000


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


def _number_tokens(per_text: list[list[str]]) -> tuple[npt.NDArray[np.intp], Any,
                                                       npt.NDArray[np.intp]]:
    """A batch's tokens (a list per text) numbered once: each token's number, the distinct
    tokens in order of first appearance (``pandas.factorize``), and the text each came from."""
    import pandas as pd

    lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
    owner = np.repeat(np.arange(len(per_text)), lengths)
    codes, distinct = pd.factorize(np.array(list(chain.from_iterable(per_text)), dtype=object))
    return codes, distinct, owner


class BatchTfidf:
    """Exactly ``vectorizer.transform(texts)`` for a fitted ``TfidfVectorizer`` (see the
    module docstring). The vectorizer is read, never changed."""

    def __init__(self, vectorizer: Any):
        self.vectorizer = vectorizer
        self.mode = _mode(vectorizer)
        self.n_features = len(vectorizer.vocabulary_)
        if self.mode == "word":
            self._index_word_vocabulary()
        self._word_grams: dict[str, npt.NDArray[np.int64]] = {}

    def _index_word_vocabulary(self) -> None:
        import pandas as pd

        min_n, max_n = self.vectorizer.ngram_range
        split = [(term.split(" "), col) for term, col in self.vectorizer.vocabulary_.items()]
        words = sorted({w for parts, _ in split for w in parts})
        base = max(len(words), 1) + 1
        if any(not (min_n <= len(parts) <= max_n) for parts, _ in split) \
                or base ** max_n >= 2 ** 62:
            self.mode = "sklearn"  # a term with a space inside a token, or keys too wide
            return
        self._words = pd.Index(words)
        self._base = base
        number = {w: i for i, w in enumerate(words)}
        self._keys: dict[int, tuple[Any, npt.NDArray[np.int64]]] = {}
        for n in range(min_n, max_n + 1):
            terms = [(parts, col) for parts, col in split if len(parts) == n]
            keys = [self._key([number[w] for w in parts]) for parts, _ in terms]
            self._keys[n] = (pd.Index(np.array(keys, dtype=np.int64)),
                             np.array([col for _, col in terms], dtype=np.int64))
        self._pattern = re.compile(self.vectorizer.token_pattern)

    def _key(self, numbers: list[int]) -> int:
        key = 0
        for i in numbers:
            key = key * self._base + i
        return key

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

        findall = self._pattern.findall
        codes, distinct, owner = _number_tokens([findall(t) for t in self._lowered(texts)])
        shape = (len(texts), self.n_features)
        if not len(codes):
            return sparse.csr_matrix(shape, dtype=np.float64)
        number = self._words.get_indexer(distinct)[codes]  # -1: in no vocabulary term
        rows, cols = [], []
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

        codes, distinct, owner = _number_tokens([t.split() for t in self._lowered(texts)])
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
            vocabulary = self.vectorizer.vocabulary_
            found = [vocabulary.get(g) for g in self._analyze(word)]
            cols = np.array([c for c in found if c is not None], dtype=np.int64)
            if len(self._word_grams) >= WORD_CACHE_MAX:
                self._word_grams.clear()
            self._word_grams[word] = cols
        return cols

    def _analyze(self, word: str) -> list[str]:
        analyze = getattr(self, "_analyzer", None)
        if analyze is None:
            analyze = self._analyzer = self.vectorizer.build_analyzer()
        grams: list[str] = analyze(word)
        return grams

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


def fit_counts(counter: Any, texts: list[str]) -> tuple[Any, npt.NDArray[np.object_]]:
    """``counter.fit_transform(texts)`` and ``counter.get_feature_names_out()`` for an
    unfitted word ``CountVectorizer``, without its per-n-gram Python loop (tested equal).

    The batch's tokens are numbered once; each n-gram is an integer of its tokens' numbers,
    document frequencies come from ``numpy.unique`` over (text, n-gram) pairs, and only the
    n-grams kept by ``min_df`` and ``max_df`` are ever joined into strings, to be sorted as
    scikit-learn sorts its vocabulary. The counter is left unfitted. Other settings
    (a character analyzer, a tokenizer, ``max_features``, a fixed vocabulary) go to
    scikit-learn. Raises ``ValueError`` where scikit-learn does: no terms at all, or none
    left after pruning.
    """
    import pandas as pd
    from scipy import sparse
    from sklearn.base import clone

    plain = (counter.analyzer == "word" and counter.tokenizer is None
             and counter.preprocessor is None and counter.strip_accents is None
             and counter.vocabulary is None and counter.max_features is None
             and getattr(counter, "input", "content") == "content")
    if not plain:
        fitted = clone(counter)
        return fitted.fit_transform(texts), fitted.get_feature_names_out()
    pattern = re.compile(counter.token_pattern)
    codes, distinct, owner = _number_tokens(
        [pattern.findall(t.lower() if counter.lowercase else t) for t in texts])
    stop = counter.get_stop_words()
    if stop and len(codes):
        is_stop = np.fromiter((w in stop for w in distinct), dtype=bool, count=len(distinct))
        kept = ~is_stop[codes]
        codes, owner = codes[kept], owner[kept]
    base = len(distinct) + 1
    min_n, max_n = counter.ngram_range
    if base ** max_n >= 2 ** 62:  # n-gram numbers would overflow: leave it to scikit-learn
        fitted = clone(counter)
        return fitted.fit_transform(texts), fitted.get_feature_names_out()
    doc_parts, gram_parts, first_parts = [], [], []
    offset = 0
    for n in range(min_n, max_n + 1):
        m = len(codes) - n + 1
        if m <= 0:
            continue
        valid = np.flatnonzero(owner[:m] == owner[n - 1:])
        key = np.zeros(len(valid), dtype=np.int64)
        for k in range(n):
            key = key * base + codes[valid + k]
        ids = pd.factorize(key)[0]
        first = valid[np.unique(ids, return_index=True)[1]]  # each n-gram's first position
        n_grams = len(first)
        doc_parts.append(owner[valid])
        gram_parts.append(ids + offset)
        first_parts.append(np.stack([first, np.full(n_grams, n)], axis=1))
        offset += n_grams
    if not offset:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    docs, grams = np.concatenate(doc_parts), np.concatenate(gram_parts)
    starts = np.concatenate(first_parts)
    pairs, counts = np.unique(docs * offset + grams, return_counts=True)
    pair_docs, pair_grams = pairs // offset, pairs % offset
    df = np.bincount(pair_grams, minlength=offset)
    n_docs = len(texts)
    low = counter.min_df if isinstance(counter.min_df, int) else counter.min_df * n_docs
    high = counter.max_df if isinstance(counter.max_df, int) else counter.max_df * n_docs
    if high < low:
        raise ValueError("max_df corresponds to < documents than min_df")
    keep = np.flatnonzero((df >= low) & (df <= high))
    if not len(keep):
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    words = [str(w) for w in distinct]
    terms = [" ".join(words[c] for c in codes[s:s + n]) for s, n in starts[keep].tolist()]
    order = sorted(range(len(keep)), key=terms.__getitem__)
    column = np.full(offset, -1, dtype=np.int64)
    column[keep[order]] = np.arange(len(keep))
    cols = column[pair_grams]
    inside = cols >= 0
    matrix = sparse.csr_matrix((counts[inside].astype(np.int64),
                                (pair_docs[inside], cols[inside])),
                               shape=(n_docs, len(keep)))
    matrix.sort_indices()
    if counter.binary:
        matrix.data[:] = 1
    return matrix, np.array([terms[i] for i in order], dtype=object)
