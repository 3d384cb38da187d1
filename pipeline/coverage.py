"""Passage predictions -> coverage scores per document and per force, with evidence.

The score of a category for a document (or a force, pooling its documents) is a noisy-OR
over its evidence passages:

    score = 1 - prod_i (1 - p_i)

where the evidence is every passage predicted to carry the category (its probability p_i
reaches the model's per-label threshold) that is not an echo of the recommendation text.
Adding a relevant passage multiplies in another factor below one, so the score never
falls (monotone) and approaches 1 without passing it (saturating). A category is
``addressed`` when its score reaches ``coverage.addressed_min``.

Columns of the long coverage frame:
level (document|force), force, doc_id, category, score, addressed, n_evidence,
top_evidence_ids (";"-joined, strongest first), pages (";"-joined, same order), subpoints
(";"-joined sub-points evidenced).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .config import CoverageParams
from .taxonomy import Taxonomy

COVERAGE_COLUMNS = ["level", "force", "doc_id", "category", "score", "addressed", "n_evidence",
                    "top_evidence_ids", "pages", "subpoints"]


def noisy_or(probabilities: list[float] | np.ndarray) -> float:
    """1 - prod(1 - p): monotone and saturating in the evidence."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    return float(1.0 - np.prod(1.0 - p)) if p.size else 0.0


@lru_cache(maxsize=256)
def _term_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled pattern per term list (compiled once, reused for every passage)."""
    if not terms:
        return None
    alternatives = sorted((re.escape(t) for t in terms), key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z])(?:" + "|".join(alternatives) + r")(?![A-Za-z])", re.I)


def passage_subpoints(text: str, rec_refs: list[str] | tuple[str, ...], category: str,
                      taxonomy: Taxonomy) -> set[str]:
    """Sub-points of ``category`` that an evidence passage speaks to."""
    subs = taxonomy.category(category).subpoints
    if len(subs) == 1:
        return set(subs)
    found = {r for r in rec_refs if r in subs}
    for s in subs:
        pat = _term_pattern(taxonomy.subpoint_terms.get(s, ()))
        if pat is not None and pat.search(text):
            found.add(s)
    return found


def evidence_table(passages: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """One row per (passage, category) where the passage is evidence for the category.

    Columns: passage_id, doc_id, force, page, category, p, subpoints (list), text.
    """
    rows = []
    for rec in passages.itertuples(index=False):
        if bool(rec.echo):
            continue
        for cat in rec.labels:
            subpoints = passage_subpoints(rec.text, list(rec.rec_refs), cat, taxonomy)
            rows.append({"passage_id": rec.passage_id, "doc_id": rec.doc_id, "force": rec.force,
                         "page": int(rec.page), "category": cat,
                         "p": float(getattr(rec, f"p_{cat}")), "subpoints": sorted(subpoints),
                         "text": rec.text})
    cols = ["passage_id", "doc_id", "force", "page", "category", "p", "subpoints", "text"]
    frame = pd.DataFrame(rows, columns=cols)
    frame = frame.sort_values(["category", "p"], ascending=[True, False], kind="stable")
    return frame.reset_index(drop=True)


def _row(level: str, force: str, doc_id: str, category: str, ev: pd.DataFrame,
         params: CoverageParams) -> dict[str, Any]:
    ev = ev.sort_values("p", ascending=False, kind="stable")
    score = noisy_or(ev["p"].to_numpy())
    top = ev.head(params.top_evidence)
    subs = sorted({s for lst in ev["subpoints"] for s in lst})
    return {"level": level, "force": force, "doc_id": doc_id, "category": category,
            "score": round(score, 4),
            "addressed": bool(score >= params.addressed_min and len(ev) > 0),
            "n_evidence": int(len(ev)), "top_evidence_ids": ";".join(top["passage_id"]),
            "pages": ";".join(str(p) for p in top["page"]), "subpoints": ";".join(subs)}


def coverage(passages: pd.DataFrame, documents: pd.DataFrame, taxonomy: Taxonomy,
             params: CoverageParams) -> pd.DataFrame:
    """Coverage rows for every scored document and every force, for every category.

    ``documents`` needs doc_id, force and status; documents with status error get no rows.
    """
    return coverage_from_evidence(evidence_table(passages, taxonomy), documents, taxonomy, params)


def coverage_from_evidence(evidence: pd.DataFrame, documents: pd.DataFrame, taxonomy: Taxonomy,
                           params: CoverageParams) -> pd.DataFrame:
    """:func:`coverage` from an evidence table (what a streaming run keeps in memory)."""
    scored = documents[documents["status"] != "error"]
    # Grouped once (groups keep the table's row order), not filtered per document and
    # category: that was quadratic in the batch.
    empty = evidence.iloc[0:0]
    by_doc = dict(iter(evidence.groupby(["doc_id", "category"], sort=False)))
    force_of = dict(zip(scored["doc_id"], scored["force"], strict=True))
    by_force = dict(iter(evidence.assign(_force=evidence["doc_id"].map(force_of))
                         .groupby(["_force", "category"], sort=False)))
    rows = []
    for doc in scored.itertuples(index=False):
        for cat in taxonomy.labels:
            rows.append(_row("document", doc.force, doc.doc_id, cat,
                             by_doc.get((doc.doc_id, cat), empty), params))
    for force in sorted(scored["force"].unique()):
        for cat in taxonomy.labels:
            rows.append(_row("force", force, "", cat, by_force.get((force, cat), empty),
                             params))
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


GAP_COLUMNS = ["force", "category", "passage_id", "doc_id", "page", "text"]


def stated_gaps(evidence: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Evidence passages in which a force states a gap in its own words (the taxonomy's
    ``gap_cues``): one row per force, category and passage, in the evidence table's order.
    Cue phrases, not a classifier: a list for an analyst to read, and the passages still
    count as evidence in the scores."""
    if not taxonomy.gap_cues or evidence.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    cues = re.compile("|".join(f"(?:{c})" for c in taxonomy.gap_cues), re.I)
    found = evidence[evidence["text"].map(lambda t: bool(cues.search(str(t))))]
    return found[GAP_COLUMNS].reset_index(drop=True)


def coverage_matrix(cov: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Wide force x category scores (force level), categories in taxonomy order."""
    forces = cov[cov["level"] == "force"]
    wide = forces.pivot(index="force", columns="category", values="score")
    wide = wide.reindex(columns=taxonomy.labels).reset_index()
    wide.columns.name = None
    return wide


def national_summary(cov: pd.DataFrame, taxonomy: Taxonomy, all_forces: list[str],
                     gaps: pd.DataFrame | None = None) -> dict[str, Any]:
    """Counts in the NPCC's manner: how many responding forces addressed each category, and
    (with ``gaps``, :func:`stated_gaps`) how many state a gap in it."""
    forces = cov[cov["level"] == "force"]
    responded = sorted(f for f in forces["force"].unique() if f != "unknown")
    n = len(responded)
    out: dict[str, Any] = {"n_forces_responded": n, "forces_responded": responded,
                 "forces_not_responded": sorted(set(all_forces) - set(responded)), "categories": {}}
    for cat in taxonomy.labels:
        rows = forces[(forces["category"] == cat) & (forces["force"] != "unknown")]
        addressed = sorted(rows.loc[rows["addressed"], "force"])
        c = taxonomy.category(cat)
        listed = rows["subpoints"].fillna("").str.split(";")
        sub_counts = {s: int(listed.apply(lambda xs, s=s: s in xs).sum()) for s in c.subpoints}
        out["categories"][cat] = {
            "display": c.display, "recommendation": c.recommendation, "n_addressed": len(addressed),
            "forces_addressed": addressed,
            "forces_not_addressed": sorted(set(responded) - set(addressed)),
            "subpoints": sub_counts,
            "sentence": f"{len(addressed)} of {n} responding forces addressed {c.display}.",
            "forces_stating_gap": (sorted(set(gaps.loc[gaps["category"] == cat, "force"]))
                                   if gaps is not None else []),
        }
    return out
