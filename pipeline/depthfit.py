"""Fitting and scoring the depth heads (:mod:`pipeline.depth`) from their annotations.

The annotations live beside the data they annotate, one JSON object per line keyed by
passage id (``data/labelled/depth/*.jsonl``, ``data/field/depth/*.jsonl``; schema
:class:`DepthLabel`). Training (:func:`fit_depth`) runs inside ``forcecov train``;
:func:`evaluate_depth` is ``forcecov evaluate --depth``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import DepthParams
from .depth import SPECIFICITY, STATUSES, DepthModel, multi_subpoints, status_features
from .errors import DataValidationError
from .taxonomy import Taxonomy

DEPTH_FOLDER = "depth"  # beside the data it annotates: data/labelled/depth, data/field/depth


class DepthLabel(BaseModel):
    """One passage's depth annotation: its status and specificity, who labelled it and when."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    status: str
    specificity: str
    annotator: str = Field(min_length=1)
    created: dt.date
    note: str | None = None

    @field_validator("status")
    @classmethod
    def _known_status(cls, v: str) -> str:
        if v not in STATUSES:
            raise ValueError(f"{v!r} is not one of {STATUSES}")
        return v

    @field_validator("specificity")
    @classmethod
    def _known_specificity(cls, v: str) -> str:
        if v not in SPECIFICITY:
            raise ValueError(f"{v!r} is not one of {SPECIFICITY}")
        return v


def load_depth_labels(folder: Path, known_ids: set[str] | None = None) -> pd.DataFrame:
    """Every annotation under ``folder`` (``*.jsonl``) as a frame with DepthLabel's columns
    plus ``file``; an empty frame when the folder is absent.

    Raises :class:`DataValidationError` naming every bad line, duplicate id, or id that is
    not a passage of the data it annotates (``known_ids``).
    """
    from .corpus import read_records, schema_problem

    columns = [*DepthLabel.model_fields, "file"]
    files = sorted(Path(folder).glob("*.jsonl")) if Path(folder).is_dir() else []
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for f in files:
        for n, obj in read_records(f):
            where = f"{f.name}:{n}"
            try:
                rec = DepthLabel.model_validate(obj)
            except ValidationError as e:
                problems.append(schema_problem(where, obj, e))
                continue
            if rec.id in seen:
                problems.append(f"{where}: duplicate id {rec.id} (first at {seen[rec.id]})")
            elif known_ids is not None and rec.id not in known_ids:
                problems.append(f"{where}: id {rec.id} is not a passage of the labelled data")
            seen.setdefault(rec.id, where)
            rows.append({**rec.model_dump(), "file": f.name})
    if problems:
        raise DataValidationError(str(folder), problems)
    return pd.DataFrame(rows, columns=columns)


def _logistic(params: DepthParams) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=params.C, class_weight="balanced", max_iter=params.max_iter)


def _vectorizer(params: DepthParams) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Word n-grams keep the words status turns on ("not yet", "will", "is being"); no stop
    # words, for the same reason.
    return TfidfVectorizer(ngram_range=(1, 2), min_df=params.min_df, sublinear_tf=True,
                           max_features=params.max_features)


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
                status)
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


def _head_scores(truth: pd.DataFrame, pred: pd.DataFrame, labels: pd.DataFrame,
                 taxonomy: Taxonomy) -> dict[str, tuple[float, int]]:
    """F1 (and support) of every head on one set: sub-points among passages whose gold
    labels carry the category, status and specificity among annotated passages."""
    from sklearn.metrics import f1_score

    out: dict[str, tuple[float, int]] = {}
    for c in taxonomy.categories:
        if len(c.subpoints) < 2:
            continue
        rows = (truth[c.id] == 1).to_numpy() & truth["subpoints"].map(bool).to_numpy()
        for s in c.subpoints:
            q = pred.get(f"q_{s}")
            if q is None or q[rows].isna().all():
                continue
            y = truth.loc[rows, "subpoints"].map(lambda subs, s=s: s in subs).to_numpy()
            out[f"sub-point {s}"] = (float(f1_score(y, q[rows].to_numpy() >= 0.5,
                                                    zero_division=0)), int(y.sum()))
    subs = [v[0] for k, v in out.items() if k.startswith("sub-point")]
    if subs:
        out["sub-points, macro"] = (float(np.mean(subs)), int(sum(v[1] for k, v in out.items()
                                                                if k.startswith("sub-point"))))
    both = truth[["id"]].assign(_row=range(len(truth))).merge(labels, on="id")
    if len(both) and pred["status"].astype(bool).any():
        got = pred["status"].to_numpy()[both["_row"].to_numpy()]
        gold = both["status"].to_numpy()
        present = [s for s in STATUSES if (gold == s).any()]
        for s in present:
            out[f"status {s}"] = (float(f1_score(gold == s, got == s, zero_division=0)),
                                  int((gold == s).sum()))
        out["status, macro"] = (float(f1_score(gold, got, labels=present, average="macro",
                                               zero_division=0)), len(gold))
        # What the score turns on: counted fully, planned (discounted), or a gap (not counted).
        weight_class = {"planned": "planned", "gap": "gap"}
        gold_w = [weight_class.get(str(s), "counted") for s in gold]
        got_w = [weight_class.get(str(s), "counted") for s in got]
        out["status as the score counts it, macro"] = (
            float(f1_score(gold_w, got_w, average="macro", zero_division=0)), len(gold))
    if len(both) and pred["p_specific"].notna().any():
        got_specific = pred["p_specific"].to_numpy()[both["_row"].to_numpy()] >= 0.5
        gold_specific = (both["specificity"] == "specific").to_numpy()
        out["specificity, macro"] = (float(f1_score(gold_specific, got_specific,
                                                    average="macro", zero_division=0)),
                                     len(gold_specific))
    return out


def depth_scores(corpus: pd.DataFrame, labels: pd.DataFrame, field: pd.DataFrame | None,
                 field_labels: pd.DataFrame | None, taxonomy: Taxonomy,
                 params: Any) -> pd.DataFrame:
    """Each head's F1 on held-out genres (grouped folds of the corpus, as training uses) and
    on the field set's test part (heads trained on the whole corpus; nothing of the field set
    is used to fit or tune them).

    Columns: head, held_out_genres, n_held_out, field_test, n_field.
    """
    from .classify import grouped_folds
    from .train import groups_for

    folds = grouped_folds(groups_for(corpus, params.cv.group_by), params.cv.n_splits,
                          params.cv.seed)
    parts = []
    for train_idx, test_idx in folds:
        model = fit_depth(corpus.iloc[train_idx].reset_index(drop=True), labels, taxonomy,
                          params.depth)
        if model is None:
            continue
        parts.append(model.predict(list(corpus["text"].iloc[test_idx])).set_axis(test_idx))
    held_out = _head_scores(corpus, pd.concat(parts).sort_index(), labels, taxonomy) \
        if parts else {}
    on_field: dict[str, tuple[float, int]] = {}
    model = fit_depth(corpus, labels, taxonomy, params.depth)
    if field is not None and model is not None:
        test = field[field["part"] == "test"].reset_index(drop=True)
        on_field = _head_scores(test, model.predict(list(test["text"])),
                                field_labels if field_labels is not None else labels.iloc[0:0],
                                taxonomy)
    heads = list(dict.fromkeys([*held_out, *on_field]))
    return pd.DataFrame([{"head": h,
                          "held_out_genres": round(held_out[h][0], 3) if h in held_out else None,
                          "n_held_out": held_out[h][1] if h in held_out else 0,
                          "field_test": round(on_field[h][0], 3) if h in on_field else None,
                          "n_field": on_field[h][1] if h in on_field else 0} for h in heads])


def evaluate_depth(labelled_dir: Path, field_dir: Path | None, taxonomy: Taxonomy,
                   params: Any) -> pd.DataFrame:
    """:func:`depth_scores` on the project's data: the corpus and its annotations, and the
    field set and its own (``<dir>/depth/``), each validated."""
    from .corpus import load_corpus
    from .fieldset import load_field

    corpus = load_corpus(labelled_dir, taxonomy, near_duplicates=False)
    labels = load_depth_labels(labelled_dir / DEPTH_FOLDER, set(corpus["id"]))
    field = field_labels = None
    if field_dir is not None and any(Path(field_dir).glob("*.jsonl")):
        field = load_field(field_dir, taxonomy,
                           calibration_fraction=params.field.calibration_fraction,
                           seed=params.field.seed)
        field_labels = load_depth_labels(Path(field_dir) / DEPTH_FOLDER, set(field["id"]))
    return depth_scores(corpus, labels, field, field_labels, taxonomy, params)
