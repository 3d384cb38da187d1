"""Fitting the depth heads (:mod:`pipeline.depth`) from their annotations.

The annotations live beside the data they annotate, one JSON object per line keyed by
passage id (``data/labelled/depth/*.jsonl``, ``data/field/depth/*.jsonl``; schema
:class:`DepthLabel`). Training (:func:`fit_depth`) runs inside ``forcecov train``; scoring
the heads on held-out genres is :mod:`pipeline.deptheval` (``forcecov evaluate --depth``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .config import DepthParams
from .corpus import one_of
from .depth import SPECIFICITY, STATUSES, DepthModel, multi_subpoints, status_features
from .errors import DataValidationError
from .taxonomy import Taxonomy

DEPTH_FOLDER = "depth"  # beside the data it annotates: data/labelled/depth, data/field/depth


class DepthLabel(BaseModel):
    """One passage's depth annotation: its status and specificity, who labelled it and when."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    status: Annotated[str, one_of(STATUSES)]
    specificity: Annotated[str, one_of(SPECIFICITY)]
    annotator: str = Field(min_length=1)
    created: dt.date
    note: str | None = None



def load_depth_labels(folder: Path, known_ids: set[str] | None = None) -> pd.DataFrame:
    """Every annotation under ``folder`` (``*.jsonl``) as a frame with DepthLabel's columns
    plus ``file``; an empty frame when the folder is absent.

    Raises :class:`DataValidationError` naming every bad line, duplicate id, or id that is
    not a passage of the data it annotates (``known_ids``).
    """
    from .corpus import read_records, unique_records

    columns = [*DepthLabel.model_fields, "file"]
    files = sorted(Path(folder).glob("*.jsonl")) if Path(folder).is_dir() else []
    problems: list[str] = []
    valid = unique_records([(str(f), n, obj) for f in files for n, obj in read_records(f)],
                           DepthLabel, problems)
    problems += [f"{where}: id {rec.id} is not a passage of the labelled data"
                 for where, rec in valid if known_ids is not None and rec.id not in known_ids]
    rows = [{**rec.model_dump(), "file": where.rsplit(":", 1)[0]} for where, rec in valid]
    if problems:
        raise DataValidationError(str(folder), problems)
    return pd.DataFrame(rows, columns=columns)


def depth_labels_for(data_dir: Path, passages: pd.DataFrame) -> pd.DataFrame:
    """The annotations of a labelled folder's passages: ``<data_dir>/depth/*.jsonl``, each
    checked to name one of ``passages`` (:func:`load_depth_labels`)."""
    return load_depth_labels(Path(data_dir) / DEPTH_FOLDER, set(passages["id"]))


def _logistic(params: DepthParams) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=params.C, class_weight="balanced", max_iter=params.max_iter)


def _vectorizer(params: DepthParams) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Word n-grams keep the words status turns on ("not yet", "will", "is being"); no stop
    # words, for the same reason.
    return TfidfVectorizer(ngram_range=(1, 2), min_df=params.min_df, sublinear_tf=True,
                           max_features=params.max_features)


def _public_weights(corpus: pd.DataFrame, rows: pd.Series,
                    params: DepthParams) -> npt.NDArray[np.float64]:
    """Each annotated row's weight in the status head: ``params.public_weight`` for passages
    written after reading a real public page (a ``source_url``), 1 for the rest. Real
    responses are written in that register, not in our first voices' operational one:
    weighting it 2:1 lifted status macro-F1 on held-out genres (0.689 -> 0.700) and on the
    field set's calibration part (0.572 -> 0.591)."""
    urls = corpus["source_url"] if "source_url" in corpus else pd.Series("", index=corpus.index)
    public = urls.iloc[rows.to_numpy()].fillna("").astype(str).str.len().to_numpy() > 0
    return np.where(public, params.public_weight, 1.0)


def fit_depth(corpus: pd.DataFrame, labels: pd.DataFrame | None, taxonomy: Taxonomy,
              params: DepthParams) -> DepthModel | None:
    """Fit the heads on the corpus (``text``, ``subpoints`` and one 0/1 column per category)
    and its depth annotations (``labels``: id, status, specificity), or None when the data
    is too small for any head."""
    from .classify import prepare_text

    labels = labels if labels is not None else pd.DataFrame(columns=["id", "status",
                                                                     "specificity"])
    if len(corpus) < 2 * params.min_positives and len(labels) < params.min_annotations:
        return None
    texts = corpus["text"].map(prepare_text)
    vec = _vectorizer(params).fit(texts)
    X = vec.transform(texts)
    model = DepthModel(vectorizer=vec, all_subpoints=multi_subpoints(taxonomy),
                       sentence_min=params.sentence_min)
    coefs, intercepts = [], []
    for c in taxonomy.categories:
        if len(c.subpoints) < 2 or c.id not in corpus:
            continue
        rows = (corpus[c.id] == 1).to_numpy() & corpus["subpoints"].map(bool).to_numpy()
        for s in c.subpoints:
            y = corpus.loc[rows, "subpoints"].map(lambda subs, s=s: s in subs).to_numpy()
            if min(y.sum(), (~y).sum()) < params.min_positives:
                continue
            head = _logistic(params).fit(X[rows], y)
            model.subpoints.append(s)
            coefs.append(head.coef_[0])
            intercepts.append(head.intercept_[0])
    if coefs:
        model.subpoint_coef = np.vstack(coefs)
        model.subpoint_intercept = np.asarray(intercepts)
    annotated = corpus[["id"]].reset_index().merge(labels, on="id")
    if len(annotated) >= params.min_annotations:
        Xa = X[annotated["index"].to_numpy()]
        status = annotated["status"].to_numpy()
        if len(set(status)) >= 2:
            head = _logistic(params).fit(
                status_features(Xa, list(texts.iloc[annotated["index"]]), model.status_cues),
                status, sample_weight=_public_weights(corpus, annotated["index"], params))
            model.statuses = [str(s) for s in head.classes_]
            if len(model.statuses) == 2:  # binary: one row of coefficients for class 1
                model.status_coef = np.vstack([-head.coef_[0], head.coef_[0]]) / 2
                model.status_intercept = np.array([-head.intercept_[0], head.intercept_[0]]) / 2
            else:
                model.status_coef, model.status_intercept = head.coef_, head.intercept_
        specific = (annotated["specificity"] == "specific").to_numpy()
        if 0 < specific.sum() < len(specific):
            head = _logistic(params).fit(Xa, specific)
            model.specific_coef = head.coef_[0]
            model.specific_intercept = float(head.intercept_[0])
    if not (model.subpoints or model.statuses or model.specific_coef.size):
        return None
    return model
