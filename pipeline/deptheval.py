"""How well the depth heads (:mod:`pipeline.depth`) do: each head's F1 on held-out genres
(grouped folds of the corpus, as training uses) and on the field set's test part
(``forcecov evaluate --depth``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .classifiers.cv import folds_for
from .corpus import load_corpus
from .depth import STATUSES
from .depthfit import depth_labels_for, fit_depth
from .fieldset import load_field
from .taxonomy import Taxonomy


def head_scores(truth: pd.DataFrame, pred: pd.DataFrame, labels: pd.DataFrame,
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
    folds = folds_for(corpus, params.cv)
    parts = []
    for train_idx, test_idx in folds:
        model = fit_depth(corpus.iloc[train_idx].reset_index(drop=True), labels, taxonomy,
                          params.depth)
        if model is None:
            continue
        parts.append(model.predict(list(corpus["text"].iloc[test_idx])).set_axis(test_idx))
    held_out = head_scores(corpus, pd.concat(parts).sort_index(), labels, taxonomy) \
        if parts else {}
    on_field: dict[str, tuple[float, int]] = {}
    model = fit_depth(corpus, labels, taxonomy, params.depth)
    if field is not None and model is not None:
        test = field[field["part"] == "test"].reset_index(drop=True)
        on_field = head_scores(test, model.predict(list(test["text"])),
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
    corpus = load_corpus(labelled_dir, taxonomy, near_duplicates=False)
    labels = depth_labels_for(labelled_dir, corpus)
    field = field_labels = None
    if field_dir is not None and any(Path(field_dir).glob("*.jsonl")):
        field = load_field(field_dir, taxonomy,
                           calibration_fraction=params.field.calibration_fraction,
                           seed=params.field.seed)
        field_labels = depth_labels_for(field_dir, field)
    return depth_scores(corpus, labels, field, field_labels, taxonomy, params)
