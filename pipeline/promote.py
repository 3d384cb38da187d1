"""Promotion gate: a candidate replaces ``models/current`` only if it is no worse.

Both models are scored on the frozen evaluation split, which no training run ever sees.
The candidate is promoted when its macro-F1 drops by at most ``promote.max_macro_f1_drop``,
no category's F1 drops by more than ``promote.max_category_f1_drop``, and none of its depth
heads (status, specificity, sub-points: macro-F1 on the frozen passages that carry depth
annotations) drops by more than ``promote.max_depth_f1_drop``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .atomic import write_json
from .classify import TrainedModel
from .config import PromoteParams
from .evaluate import evaluate_model
from .modelstore import CARD_FILE, read_card, set_current
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from .project import Project


@dataclass(frozen=True)
class GateResult:
    table: pd.DataFrame  # metric, current, candidate, change, allowed_drop, ok
    passed: bool
    reasons: list[str]


# The depth heads the gate compares, as :func:`pipeline.deptheval.head_scores` names them.
DEPTH_HEADS = ("status, macro", "specificity, macro", "sub-points, macro")


def _depth_scores(model: TrainedModel | None, frozen: pd.DataFrame,
                  depth_labels: pd.DataFrame, taxonomy: Taxonomy) -> dict[str, float]:
    """Each depth head's macro-F1 on the frozen passages (a head the model lacks scores 0)."""
    from .deptheval import head_scores

    if model is None or model.depth is None:
        return dict.fromkeys(DEPTH_HEADS, 0.0)
    scores = head_scores(frozen, model.depth.predict(list(frozen["text"])), depth_labels,
                         taxonomy)
    return {h: scores[h][0] if h in scores else 0.0 for h in DEPTH_HEADS}


def gate(candidate: TrainedModel, current: TrainedModel | None, frozen: pd.DataFrame,
         taxonomy: Taxonomy, params: PromoteParams,
         depth_labels: pd.DataFrame | None = None) -> GateResult:
    """Compare the two models on the frozen split: per category and overall, and, given
    the corpus's depth annotations (``depth_labels``: id, status, specificity) and a model
    with depth heads, per depth head."""
    cand = evaluate_model(candidate, frozen, taxonomy)
    cur = evaluate_model(current, frozen, taxonomy) if current is not None else None
    rows: list[dict[str, object]] = []
    reasons: list[str] = []
    metrics = [("macro_f1", cand["macro_f1"], cur["macro_f1"] if cur else None,
                params.max_macro_f1_drop)]
    metrics += [(f"f1_{lab}", cand["per_label"][lab]["f1"],
                 cur["per_label"][lab]["f1"] if cur else None, params.max_category_f1_drop)
                for lab in taxonomy.labels]
    if depth_labels is not None and len(depth_labels) and (
            candidate.depth is not None or (current is not None and current.depth is not None)):
        cand_depth = _depth_scores(candidate, frozen, depth_labels, taxonomy)
        cur_depth = _depth_scores(current, frozen, depth_labels, taxonomy) if current else None
        metrics += [(f"depth {h}", cand_depth[h], cur_depth[h] if cur_depth else None,
                     params.max_depth_f1_drop) for h in DEPTH_HEADS]
    for name, c, old, allowed in metrics:
        change = None if old is None else c - old
        ok = change is None or change >= -allowed - 1e-12
        if not ok and change is not None:
            reasons.append(f"{name} fell by {-change:.3f} (allowed {allowed:.3f})")
        rows.append({"metric": name, "current": old, "candidate": c, "change": change,
                     "allowed_drop": allowed, "ok": ok})
    return GateResult(pd.DataFrame(rows), not reasons, reasons)


def promote(models_dir: Path, candidate_version: str, result: GateResult, *, force: bool,
            by: str) -> bool:
    """Point models/current at the candidate if the gate passed (or ``force``); record it in
    the card."""
    if not (result.passed or force):
        return False
    folder = models_dir / candidate_version
    card = read_card(folder)
    card["promotion"] = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "by": by,
        "forced": bool(force and not result.passed), "gate_passed": result.passed,
        "reasons": result.reasons,
        "table": json.loads(result.table.to_json(orient="records")),
    }
    write_json(folder / CARD_FILE, card)
    set_current(models_dir, candidate_version)
    return True


def latest_candidate(models_dir: Path, current: str | None) -> str | None:
    """The newest model folder that is not current."""
    versions = sorted(p.name for p in models_dir.iterdir()
                      if (p / CARD_FILE).is_file() and p.name != current)
    return versions[-1] if versions else None


@dataclass(frozen=True)
class Promotion:
    """What ``forcecov promote`` decided: the gate's result for ``candidate`` against
    ``current`` on ``n_frozen`` frozen-split passages, and whether it was promoted."""

    candidate: str
    current: str | None
    n_frozen: int
    result: GateResult
    promoted: bool

    @property
    def forced(self) -> bool:
        return self.promoted and not self.result.passed


def promote_candidate(project: Project, candidate: str | None = None, *, force: bool = False,
                      by: str = "unknown", trust: bool = False) -> Promotion:
    """Gate ``candidate`` (default: the newest model that is not current) against
    models/current on the frozen split, and promote it if it passes (or ``force``)."""
    from .classifiers.cv import split_frozen
    from .corpus import load_corpus
    from .depthfit import depth_labels_for
    from .errors import ForcecovError
    from .modelstore import current_version, load_model

    models = project.paths.models
    current = current_version(models)
    version = candidate or latest_candidate(models, current)
    if version is None:
        raise ForcecovError("no candidate model: train one with `forcecov train --no-current`")
    cand_model = load_model(models / version, project.taxonomy, trust=trust)
    cur_model = load_model(models / current, project.taxonomy, trust=trust) if current else None
    corpus = load_corpus(project.paths.labelled, project.taxonomy)
    _, frozen = split_frozen(corpus, project.params)
    depth_labels = depth_labels_for(project.paths.labelled, corpus)
    result = gate(cand_model, cur_model, frozen, project.taxonomy, project.params.promote,
                  depth_labels)
    promoted = promote(models, version, result, force=force, by=by)
    return Promotion(version, current, len(frozen), result, promoted)
