"""Passage classifier: build, fit, calibrate, choose thresholds, predict; echo detection.

The default is a scikit-learn pipeline (TF-IDF word and character n-grams of the passage,
plus word n-grams of its heading/row context, into one-vs-rest logistic regression with
sigmoid calibration). Per-label thresholds come from grouped cross-validation.

Frames passed to ``fit``/``predict_proba`` have columns ``text`` and ``context``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from .config import EchoParams, FeatureParams, ModelParams, ThresholdParams
from .ingest.cleanup import strip_bullet
from .taxonomy import Taxonomy

_SPACES = re.compile(r"\s+")


def prepare_text(text: str) -> str:
    """What the model reads: bullet glyphs stripped from each line, whitespace folded."""
    return _SPACES.sub(" ", " ".join(strip_bullet(line) for line in str(text).split("\n"))).strip()


def model_frame(texts: Any, headings: Any = None, contexts: Any = None) -> pd.DataFrame:
    """The two-column frame the classifier reads."""
    texts = list(texts)
    headings = list(headings) if headings is not None else [""] * len(texts)
    contexts = list(contexts) if contexts is not None else [""] * len(texts)
    return pd.DataFrame({
        "text": [prepare_text(t) for t in texts],
        "context": [prepare_text(f"{h or ''} {c or ''}")
                    for h, c in zip(headings, contexts, strict=True)],
    })


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


def _base_estimator(model: ModelParams) -> Any:
    if model.kind == "tfidf_lr":
        est: Any = LogisticRegression(C=model.C, class_weight=model.class_weight,
                                      max_iter=model.max_iter, solver="liblinear")
    elif model.kind == "tfidf_svm":
        est = LinearSVC(C=model.C / 8, class_weight=model.class_weight, max_iter=model.max_iter)
    else:
        raise ValueError(f"model.kind {model.kind!r} is not a TF-IDF linear model")
    if model.calibration in ("sigmoid", "isotonic"):
        return CalibratedClassifierCV(est, method=model.calibration, cv=3)
    if model.kind == "tfidf_svm":
        raise ValueError("tfidf_svm needs calibration (sigmoid or isotonic) to give probabilities")
    return est


# scikit-learn ships no type information, so its base classes are Any to mypy.
class PassageClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Multi-label TF-IDF + linear classifier with the scikit-learn estimator contract."""

    def __init__(self, labels: tuple[str, ...] = (), features: FeatureParams | None = None,
                 model: ModelParams | None = None):
        self.labels = labels
        self.features = features
        self.model = model

    def fit(self, X: pd.DataFrame, Y: np.ndarray) -> PassageClassifier:
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape[1] != len(self.labels):
            raise ValueError(f"Y must have one column per label ({len(self.labels)}), "
                             f"got {Y.shape}")
        if (Y.sum(axis=0) == 0).any():
            missing = [lab for lab, n in zip(self.labels, Y.sum(axis=0), strict=True) if n == 0]
            raise ValueError(f"no positive examples for {missing}")
        self.pipeline_ = Pipeline([
            ("features", build_features(self.features or FeatureParams(),
                                        context=bool(X["context"].astype(str).str.strip().any()))),
            ("clf", OneVsRestClassifier(_base_estimator(self.model or ModelParams()))),
        ])
        self.pipeline_.fit(X, Y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline_.predict_proba(X))


def grouped_folds(groups: np.ndarray, n_splits: int,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold splits (a group never straddles train and test), shuffled by seed."""
    unique = np.unique(groups)
    n = min(n_splits, len(unique))
    if n < 2:
        raise ValueError("cross-validation needs at least two groups")
    rng = np.random.default_rng(seed)
    relabel = {g: i for i, g in enumerate(rng.permutation(unique))}
    coded = np.array([relabel[g] for g in groups])
    return list(GroupKFold(n_splits=n).split(np.zeros(len(groups)), groups=coded))


def out_of_fold_proba(estimator: Any, X: pd.DataFrame, Y: np.ndarray,
                      folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Probabilities for every row from a model that never saw it."""
    proba = np.zeros(Y.shape, dtype=float)
    for train_idx, test_idx in folds:
        est = clone(estimator).fit(X.iloc[train_idx].reset_index(drop=True), Y[train_idx])
        proba[test_idx] = est.predict_proba(X.iloc[test_idx].reset_index(drop=True))
    return proba


def choose_thresholds(Y: np.ndarray, proba: np.ndarray, params: ThresholdParams, *,
                      sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-label threshold maximising F1 on the given probabilities (or the fixed one).

    ``cv_f1`` and ``shift`` both take the best F1 here; they differ in which out-of-fold
    rows the caller passes in (see :func:`pipeline.train.thresholds_under_shift`).
    """
    k = Y.shape[1]
    if params.policy == "fixed":
        return np.full(k, params.fixed)
    if params.policy not in ("cv_f1", "shift"):
        raise ValueError(f"unknown threshold policy {params.policy!r}")
    grid = np.arange(params.grid_min, params.grid_max + 1e-9, params.grid_step)
    out = np.empty(k)
    for j in range(k):
        scores = [f1_score(Y[:, j], proba[:, j] >= t, zero_division=0,
                           sample_weight=sample_weight) for t in grid]
        best = max(scores)
        # Of the thresholds within a hair of the best F1, take the middle one: more stable.
        near = [t for t, s in zip(grid, scores, strict=True) if s >= best - 1e-9]
        out[j] = float(near[len(near) // 2])
    return out


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
        texts = [str(t) for t in texts]
        sims = self.score(texts)
        words = np.array([len(t.split()) for t in texts])
        own = np.array([any(r.search(t) for r in self.own_re_) for t in texts], dtype=bool)
        cued = np.array([any(r.search(t) for r in self.cue_re_) for t in texts], dtype=bool) & ~own
        close = sims >= np.where(own, self.own_voice_similarity, self.similarity)
        echo: npt.NDArray[np.bool_] = (
            (close | (cued & (sims >= self.cue_similarity))) & (words <= self.max_words))
        return echo


def make_echo_detector(taxonomy: Taxonomy, params: EchoParams) -> EchoDetector:
    return EchoDetector(tuple(taxonomy.echo_texts), params.similarity, params.max_words,
                        params.cue_similarity, tuple(taxonomy.echo_cues),
                        tuple(taxonomy.own_voice_cues), params.own_voice_similarity)


@dataclass
class TrainedModel:
    """What ``model.npz`` (or ``model.joblib``) holds: classifier, thresholds, echo detector,
    label order, and the depth heads (:mod:`pipeline.depth`) when it was trained with them."""

    labels: list[str]
    classifier: Any
    thresholds: np.ndarray
    echo: EchoDetector
    version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    depth: Any = None

    def predict(self, passages: pd.DataFrame, *, review_margin: float = 0.15) -> pd.DataFrame:
        """Predictions for passages (columns text, and optionally heading, context).

        Returns ``p_<label>`` per label, ``labels`` (list), ``echo``, ``confidence`` and
        ``needs_review``, aligned with the input rows. Echo passages get no labels. With depth
        heads, passages that carry a label also get their columns (:mod:`pipeline.depth`):
        empty or NaN on the others, which are not evidence.
        """
        X = model_frame(passages["text"], passages.get("heading"), passages.get("context"))
        if len(X) == 0:
            cols = [f"p_{lab}" for lab in self.labels] + ["labels", "echo", "confidence",
                                                          "needs_review"]
            return pd.DataFrame(columns=cols)
        proba = self.classifier.predict_proba(X)
        echo = self.echo.predict(list(passages["text"]))
        hits = (proba >= self.thresholds) & ~echo[:, None]
        distance = np.abs(proba - self.thresholds)
        span = np.maximum(self.thresholds, 1 - self.thresholds)
        confidence = (distance / span).min(axis=1)
        out = pd.DataFrame({f"p_{lab}": proba[:, j].round(4) for j, lab in enumerate(self.labels)})
        out["labels"] = [[lab for lab, h in zip(self.labels, row, strict=True) if h]
                         for row in hits]
        out["echo"] = echo
        out["confidence"] = confidence.round(4)
        out["needs_review"] = (distance.min(axis=1) < review_margin) & ~echo
        if self.depth is not None:
            out = out.join(self._depth(list(passages["text"]), hits.any(axis=1)))
        return out

    def _depth(self, texts: list[str], evidence: np.ndarray) -> pd.DataFrame:
        """Depth columns for every row, predicted only where the row is evidence."""
        from .depth import with_depth_columns

        rows = np.flatnonzero(evidence)
        frame = with_depth_columns(pd.DataFrame(index=range(len(texts))),
                                   self.depth.all_subpoints)
        frame.loc[rows] = self.depth.predict([texts[i] for i in rows]).set_axis(rows)
        return frame


def label_matrix(frame: pd.DataFrame, taxonomy: Taxonomy) -> npt.NDArray[np.int_]:
    matrix: npt.NDArray[np.int_] = frame[taxonomy.labels].to_numpy(dtype=int)
    return matrix


def read_passage_lines(path: Any) -> list[dict[str, Any]]:
    """Objects with ``id`` and ``text`` (and optionally ``heading``), one per line.

    Raises :class:`~pipeline.errors.DataValidationError` naming every bad line.
    """
    from .corpus import iter_jsonl
    from .errors import DataValidationError

    records: list[dict[str, Any]] = []
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


def classify_records(records: list[dict[str, Any]], model: TrainedModel) -> list[dict[str, Any]]:
    """Each input object, with ``probs``, ``labels`` and ``echo`` added (extra fields kept)."""
    frame = pd.DataFrame({"text": [r["text"] for r in records],
                          "heading": [r.get("heading") or "" for r in records],
                          "context": [r.get("context") or "" for r in records]})
    preds = model.predict(frame)
    out = []
    for rec, (_, row) in zip(records, preds.iterrows(), strict=True):
        out.append({**rec, "probs": {lab: float(row[f"p_{lab}"]) for lab in model.labels},
                    "labels": list(row["labels"]), "echo": bool(row["echo"])})
    return out
