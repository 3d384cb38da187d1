"""Models as plain arrays: ``model.npz``, loaded without unpickling anything.

A joblib file is a pickle, and loading a pickle runs whatever code it names. The linear
TF-IDF kinds (``tfidf_svm``, ``tfidf_svm_word``, ``tfidf_lr``) and ``keywords`` need no code
to predict, only numbers and strings, so they are stored as arrays in a NumPy ``.npz`` read
with ``allow_pickle=False`` (an object array is refused, never unpickled).

Layout of ``model.npz`` (every entry a plain numeric or fixed-width unicode array):

==============================  ===========================================================
``layout``                      0-d unicode: JSON with ``format`` (``forcecov-arrays/1``),
                                ``labels``, the vectorizer blocks (name, column, weight and
                                TF-IDF settings), the calibration method, the number of
                                calibration folds, and the echo detector's settings and cues
``thresholds``                  (n labels,) per-label decision thresholds (the layout's
                                ``fallback_ratio`` and ``fallback_cues``, when set: see
                                ``with_fallback`` and ``on_subject``)
``<block>.terms``, ``.idf``     vocabulary in column order, and its idf weights, per block
                                (``word``, ``char``, ``context``)
``coef``, ``intercept``         (n labels, n folds, n features) and (n labels, n folds):
                                the linear model of each calibration fold
``cal_a``, ``cal_b``            (n labels, n folds) sigmoid calibration: p = 1/(1+exp(a·d+b))
``iso_<j>_<k>_x``, ``_y``       isotonic calibration points, label j, fold k (isotonic only)
``echo.terms``, ``echo.idf``    the echo detector's character TF-IDF vocabulary and idf
``echo.ref_data/indices/indptr/shape``  its reference matrix (CSR) of taxonomy wording
``depth.*``                     the depth heads, when trained (:func:`pipeline.depth.to_arrays`)
==============================  ===========================================================

A label's probability is the mean over folds of the calibrated decision value, exactly what
``CalibratedClassifierCV`` inside ``OneVsRestClassifier`` computes (tested to 1e-9).

The ``keywords`` kind (the bootstrap for a new taxonomy) has no blocks or coefficients:
``layout`` holds ``classifier: keywords`` with its keyword lists and decay, and the echo
detector's entries are as above.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

FORMAT = "forcecov-arrays/1"
ARRAY_KINDS = ("tfidf_svm", "tfidf_svm_word", "tfidf_lr", "keywords")
_TFIDF_SETTINGS = ("analyzer", "ngram_range", "lowercase", "sublinear_tf", "norm",
                   "token_pattern", "binary", "use_idf", "smooth_idf")


class VectorizerSettings(TypedDict):
    """A TfidfVectorizer's settings (:data:`_TFIDF_SETTINGS`), as JSON can hold them."""

    analyzer: str
    ngram_range: list[int]
    lowercase: bool
    sublinear_tf: bool
    norm: str | None
    token_pattern: str | None
    binary: bool
    use_idf: bool
    smooth_idf: bool


class BlockLayout(TypedDict):
    """One TF-IDF block of the classifier: its name, the column it reads, its weight."""

    name: str
    column: str
    weight: float
    tfidf: VectorizerSettings


class ClassifierLayout(TypedDict, total=False):
    """How the classifier is stored: linear blocks with a calibration method, or keywords."""

    classifier: str  # linear | keywords
    blocks: list[BlockLayout]
    method: str  # sigmoid | isotonic | logistic
    keywords: list[list[str]]
    decay: float


class ModelLayout(ClassifierLayout, total=False):
    """The ``layout`` entry: the classifier's layout, with the format, labels, version,
    training metadata and the echo detector's settings."""

    format: str
    labels: list[str]
    version: str
    meta: dict[str, object]
    echo: Any  # {"tfidf": VectorizerSettings, "params": the detector's parameters}


class ArrayModelError(ValueError):
    """The file is not a valid array model (or the model cannot be stored as arrays)."""


def _vectorizer_settings(vec: Any) -> VectorizerSettings:
    settings = cast(VectorizerSettings, {k: getattr(vec, k) for k in _TFIDF_SETTINGS})
    settings["ngram_range"] = list(settings["ngram_range"])
    if vec.stop_words is not None or vec.strip_accents is not None or vec.preprocessor \
            or vec.tokenizer or callable(vec.analyzer):
        raise ArrayModelError("vectorizer with custom callables or stop words")
    return settings


def _rebuild_vectorizer(settings: VectorizerSettings, terms: npt.NDArray[np.str_],
                        idf: npt.NDArray[np.float64]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(**{**settings, "ngram_range": tuple(settings["ngram_range"])})
    vec.vocabulary_ = {str(t): i for i, t in enumerate(terms.tolist())}
    vec.idf_ = idf
    return vec


def _terms(vec: Any) -> npt.NDArray[np.str_]:
    terms = np.empty(len(vec.vocabulary_), dtype=object)
    for term, i in vec.vocabulary_.items():
        terms[i] = term
    return terms.astype(str)


def to_arrays(model: Any) -> dict[str, npt.NDArray[Any]]:
    """The arrays of ``model.npz`` (see the module docstring), or :class:`ArrayModelError`."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.multiclass import OneVsRestClassifier

    from .classifiers.keywords import KeywordClassifier
    from .classifiers.tfidf import PassageClassifier

    clf = model.classifier
    if isinstance(clf, KeywordClassifier):
        return _with_echo(model, {}, {"classifier": "keywords",
                                      "keywords": [list(k) for k in clf.keywords],
                                      "decay": float(clf.decay)})
    if isinstance(clf, ArrayClassifier):  # loaded from arrays: stored as it was read
        return _with_echo(model, dict(clf.arrays), clf.layout)
    if not isinstance(clf, PassageClassifier) or not hasattr(clf, "pipeline_"):
        raise ArrayModelError(f"{type(clf).__name__} is not a fitted TF-IDF linear classifier")
    features, ovr = clf.pipeline_.named_steps["features"], clf.pipeline_.named_steps["clf"]
    if not isinstance(ovr, OneVsRestClassifier):
        raise ArrayModelError("not a one-vs-rest classifier")
    arrays: dict[str, npt.NDArray[Any]] = {}
    blocks: list[BlockLayout] = []
    weights = features.transformer_weights or {}
    for name, vec, column in features.transformers_:
        if name == "remainder":
            continue
        blocks.append({"name": name, "column": column, "weight": float(weights.get(name, 1.0)),
                       "tfidf": _vectorizer_settings(vec)})
        arrays[f"{name}.terms"] = _terms(vec)
        arrays[f"{name}.idf"] = np.asarray(vec.idf_, dtype=np.float64)
    n_features = sum(len(arrays[f"{b['name']}.terms"]) for b in blocks)
    coefs, intercepts, cal_a, cal_b = [], [], [], []
    method = "none"
    for j, est in enumerate(ovr.estimators_):
        if isinstance(est, CalibratedClassifierCV):
            method = est.method
            folds = est.calibrated_classifiers_
            lin = [f.estimator for f in folds]
            if method == "sigmoid":
                cal_a.append([float(f.calibrators[0].a_) for f in folds])
                cal_b.append([float(f.calibrators[0].b_) for f in folds])
            elif method == "isotonic":
                for k, f in enumerate(folds):
                    arrays[f"iso_{j}_{k}_x"] = np.asarray(f.calibrators[0].X_thresholds_, float)
                    arrays[f"iso_{j}_{k}_y"] = np.asarray(f.calibrators[0].y_thresholds_, float)
            else:
                raise ArrayModelError(f"calibration {method!r}")
        elif hasattr(est, "coef_") and hasattr(est, "predict_proba"):
            method, lin = "logistic", [est]
        else:
            raise ArrayModelError(f"estimator {type(est).__name__}")
        if any(np.asarray(e.coef_).shape != (1, n_features) for e in lin):
            raise ArrayModelError("coefficients do not match the features")
        coefs.append([np.asarray(e.coef_, dtype=np.float64)[0] for e in lin])
        intercepts.append([float(np.asarray(e.intercept_)[0]) for e in lin])
    if len({len(c) for c in coefs}) != 1:
        raise ArrayModelError("labels with different numbers of calibration folds")
    arrays["coef"] = np.asarray(coefs, dtype=np.float64)
    arrays["intercept"] = np.asarray(intercepts, dtype=np.float64)
    if method == "sigmoid":
        arrays["cal_a"] = np.asarray(cal_a, dtype=np.float64)
        arrays["cal_b"] = np.asarray(cal_b, dtype=np.float64)
    return _with_echo(model, arrays, {"classifier": "linear", "blocks": blocks,
                                      "method": method})


def _with_echo(model: Any, arrays: dict[str, npt.NDArray[Any]],
               classifier: ClassifierLayout) -> dict[str, npt.NDArray[Any]]:
    """The arrays every kind shares: thresholds, the echo detector, and the layout."""
    arrays["thresholds"] = np.asarray(model.thresholds, dtype=np.float64)
    if getattr(model, "depth", None) is not None:
        from .depth import to_arrays as depth_arrays

        arrays.update(depth_arrays(model.depth))
    echo = model.echo
    arrays["echo.terms"] = _terms(echo.vectorizer_)
    arrays["echo.idf"] = np.asarray(echo.vectorizer_.idf_, dtype=np.float64)
    ref = echo.reference_.tocsr()
    arrays["echo.ref_data"] = np.asarray(ref.data, dtype=np.float64)
    arrays["echo.ref_indices"] = np.asarray(ref.indices, dtype=np.int64)
    arrays["echo.ref_indptr"] = np.asarray(ref.indptr, dtype=np.int64)
    arrays["echo.ref_shape"] = np.asarray(ref.shape, dtype=np.int64)
    layout = {
        "format": FORMAT, "labels": list(model.labels), **classifier,
        "version": model.version, "meta": model.meta,
        "fallback_ratio": model.fallback_ratio,
        "fallback_cues": list(model.fallback_cues),
        "echo": {"tfidf": _vectorizer_settings(echo.vectorizer_),
                 "params": {k: getattr(echo, k) for k in (
                     "texts", "similarity", "max_words", "cue_similarity", "cues",
                     "own_voice", "own_voice_similarity")}},
    }
    arrays["layout"] = np.array(json.dumps(layout, default=str))
    return arrays


def save_arrays(model: Any, path: Path) -> None:
    """Write ``model.npz`` atomically."""
    from .atomic import write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **to_arrays(model))  # type: ignore[arg-type]
    write_bytes(path, buffer.getvalue())


class ArrayClassifier:
    """Predicts from the arrays alone: TF-IDF blocks, then the mean over calibration folds
    of each label's calibrated linear score. Same ``predict_proba`` as the classifier it was
    stored from."""

    def __init__(self, layout: ClassifierLayout, arrays: dict[str, npt.NDArray[Any]]):
        # What it was built from, so that a loaded model can be stored again unchanged
        # (``forcecov train --depth-only`` keeps the classifier and refits the depth heads).
        self.layout: ClassifierLayout = {"classifier": "linear", "blocks": layout["blocks"],
                                         "method": layout["method"]}
        self.arrays = {k: v for k, v in arrays.items()
                       if k in ("coef", "intercept", "cal_a", "cal_b") or k.startswith("iso_")
                       or k in {f"{b['name']}.{part}" for b in layout["blocks"]
                                for part in ("terms", "idf")}}
        from .classifiers.batchtfidf import BatchTfidf

        self.blocks = [(b["name"], b["column"], b["weight"],
                        BatchTfidf(_rebuild_vectorizer(b["tfidf"], arrays[f"{b['name']}.terms"],
                                                       arrays[f"{b['name']}.idf"])))
                       for b in layout["blocks"]]
        self.method = layout["method"]
        self.coef = arrays["coef"]
        self.intercept = arrays["intercept"]
        self.cal_a = arrays.get("cal_a")
        self.cal_b = arrays.get("cal_b")
        self.isotonic = {k: v for k, v in arrays.items() if k.startswith("iso_")}

    def transform(self, X: pd.DataFrame) -> Any:
        from scipy import sparse

        parts = [tfidf.transform(X[column].tolist()) * weight
                 for _, column, weight, tfidf in self.blocks]
        return sparse.hstack(parts).tocsr()

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        from scipy.special import expit

        features = self.transform(X)
        n_labels, n_folds, _ = self.coef.shape
        proba = np.zeros((features.shape[0], n_labels))
        for j in range(n_labels):
            decision = np.asarray(features @ self.coef[j].T) + self.intercept[j]
            for k in range(n_folds):
                d = decision[:, k]
                if self.method == "sigmoid":
                    assert self.cal_a is not None and self.cal_b is not None
                    p = expit(-(self.cal_a[j, k] * d + self.cal_b[j, k]))
                elif self.method == "isotonic":
                    p = np.interp(d, self.isotonic[f"iso_{j}_{k}_x"],
                                  self.isotonic[f"iso_{j}_{k}_y"])
                else:
                    p = expit(d)
                p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
                proba[:, j] += p
        mean: npt.NDArray[np.float64] = proba / n_folds
        return mean


def _classifier(layout: ModelLayout, arrays: dict[str, npt.NDArray[Any]]) -> Any:
    if layout.get("classifier") == "keywords":
        from .classifiers.keywords import KeywordClassifier

        return KeywordClassifier(tuple(layout["labels"]),
                                 tuple(tuple(str(k) for k in kws) for kws in layout["keywords"]),
                                 float(layout["decay"])).fit(None)
    return ArrayClassifier(layout, arrays)


def load_arrays(path: Path) -> Any:
    """A :class:`~pipeline.classify.TrainedModel` from ``model.npz``; never unpickles."""
    from scipy import sparse

    from .classifiers.echo import EchoDetector
    from .classify import TrainedModel

    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        layout: ModelLayout = json.loads(str(arrays["layout"]))
        if layout.get("format") != FORMAT:
            raise ArrayModelError(f"format {layout.get('format')!r}, expected {FORMAT}")
        classifier = _classifier(layout, arrays)
        echo_layout = layout["echo"]
        params = echo_layout["params"]
        echo = EchoDetector(tuple(params["texts"]), float(params["similarity"]),
                            int(params["max_words"]), float(params["cue_similarity"]),
                            tuple(params["cues"]), tuple(params["own_voice"]),
                            float(params["own_voice_similarity"]))
        echo.vectorizer_ = _rebuild_vectorizer(echo_layout["tfidf"], arrays["echo.terms"],
                                               arrays["echo.idf"])
        echo.reference_ = sparse.csr_matrix(
            (arrays["echo.ref_data"], arrays["echo.ref_indices"], arrays["echo.ref_indptr"]),
            shape=tuple(int(x) for x in arrays["echo.ref_shape"]))
        echo.compile_cues()
        from .depth import from_arrays as depth_from_arrays

        depth = depth_from_arrays(arrays)
    except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as e:
        if isinstance(e, ArrayModelError):
            raise
        raise ArrayModelError(f"not a valid array model ({type(e).__name__}: {e})") from e
    fallback: Any = layout.get("fallback_ratio")
    cues: Any = layout.get("fallback_cues") or ()
    return TrainedModel(list(layout["labels"]), classifier, arrays["thresholds"], echo,
                        layout.get("version", ""), dict(layout.get("meta") or {}), depth,
                        None if fallback is None else float(fallback),
                        tuple(str(c) for c in cues))
