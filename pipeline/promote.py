"""Promotion gate: a candidate replaces ``models/current`` only if it is no worse.

Both models are scored on the frozen evaluation split, which no training run ever sees.
The candidate is promoted when its macro-F1 drops by at most ``promote.max_macro_f1_drop``
and no category's F1 drops by more than ``promote.max_category_f1_drop``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_json
from .classify import TrainedModel
from .config import PromoteParams
from .evaluate import evaluate_model
from .modelstore import CARD_FILE, read_card, set_current
from .taxonomy import Taxonomy


@dataclass(frozen=True)
class GateResult:
    table: pd.DataFrame  # metric, current, candidate, change, allowed_drop, ok
    passed: bool
    reasons: list[str]


def gate(candidate: TrainedModel, current: TrainedModel | None, frozen: pd.DataFrame,
         taxonomy: Taxonomy, params: PromoteParams) -> GateResult:
    """Compare the two models on the frozen split, per category and overall."""
    cand = evaluate_model(candidate, frozen, taxonomy)
    cur = evaluate_model(current, frozen, taxonomy) if current is not None else None
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    metrics = [("macro_f1", cand["macro_f1"], cur["macro_f1"] if cur else None,
                params.max_macro_f1_drop)]
    metrics += [(f"f1_{lab}", cand["per_label"][lab]["f1"],
                 cur["per_label"][lab]["f1"] if cur else None, params.max_category_f1_drop)
                for lab in taxonomy.labels]
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
