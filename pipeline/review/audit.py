"""Likely label errors in the labelled data, ranked from out-of-fold probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..config import Params
from ..taxonomy import Taxonomy

if TYPE_CHECKING:
    from ..project import Project


def audit(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params, *,
          top: int = 50) -> pd.DataFrame:
    """Rank likely label errors from out-of-fold probabilities (grouped CV).

    Uses cleanlab's multi-label ``find_label_issues`` ranked by self-confidence when cleanlab
    is installed; otherwise the same self-confidence ranking by hand. Columns: id, voice,
    text, labels (as given, ``;``-separated), suggested (labels the model would give, the
    same), self_confidence, flagged_by, and ``p_<category>`` (the out-of-fold probabilities).
    """
    from ..classifiers.cv import cv_set, out_of_fold_proba
    from ..classifiers.registry import make_classifier

    cv = cv_set(corpus, taxonomy, params)
    Y = cv.Y
    proba = out_of_fold_proba(make_classifier(taxonomy, params), cv.X, Y, cv.folds)
    # Self-confidence: the model's probability of the label as given, worst label per passage.
    self_conf = np.where(Y == 1, proba, 1 - proba).min(axis=1)
    flagged_by = "self-confidence"
    order = np.argsort(self_conf, kind="stable")
    try:
        from cleanlab.multilabel_classification.filter import find_label_issues

        ranked = find_label_issues(labels=[list(np.nonzero(row)[0]) for row in Y], pred_probs=proba,
                                   return_indices_ranked_by="self_confidence")
        if len(ranked):
            order = np.array(list(ranked) + [i for i in order if i not in set(ranked)])
            flagged_by = "cleanlab"
    except ImportError:
        pass
    order = order[:top]
    labs = np.array(taxonomy.labels)
    return pd.DataFrame({
        "id": corpus["id"].to_numpy()[order], "voice": corpus["voice"].to_numpy()[order],
        "text": corpus["text"].to_numpy()[order],
        "labels": [";".join(labs[Y[i] == 1]) for i in order],
        "suggested": [";".join(labs[proba[i] >= 0.5]) for i in order],
        "self_confidence": self_conf[order].round(4), "flagged_by": flagged_by,
        **{f"p_{lab}": proba[order, j].round(4) for j, lab in enumerate(taxonomy.labels)},
    })


def audit_labelled(project: Project, *, top: int, out: Path | None = None) -> pd.DataFrame:
    """:func:`audit` of the project's labelled data (data/labelled) with its params.yaml; with
    ``out``, the ranking is also written there (:func:`~pipeline.review.formats.write_audit`:
    the table as .csv, else a JSONL queue to correct and import)."""
    from ..corpus import load_corpus
    from .formats import write_audit

    taxonomy = project.taxonomy
    table = audit(load_corpus(project.paths.labelled, taxonomy), taxonomy, project.params,
                  top=top)
    if out is not None:
        write_audit(table, out)
    return table
