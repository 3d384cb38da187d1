"""Passage predictions -> coverage scores per document and per force, with evidence.

Evidence for a category is every passage predicted to carry it (its probability p_i reaches
the model's per-label threshold) that is not an echo of the recommendation text. Each piece
of evidence weighs

    w_i = p_i * status_weight_i * specificity_weight_i

- status (:mod:`pipeline.depth`): ``in_place`` and ``in_progress`` count fully, ``planned``
  at ``coverage.planned_weight``, ``not_stated`` at ``coverage.not_stated_weight``, and a
  stated ``gap`` never counts (weight 0). The status head is a classifier, so the weight is
  its expectation over the five statuses' probabilities: a passage the head is sure states
  a gap counts for nearly nothing, one it is unsure of counts in part;
- specificity: ``g + (1 - g) * p_specific`` with ``g = coverage.general_weight``, so a
  general statement of intent counts at g of a concrete one.

A category's **score** is graded over its sub-points S (2b, 2d, 2e, 2f for ``nrm``):

    strength_s = 1 - prod_i (1 - w_i * q_is)        score = mean over s in S of strength_s

where q_is is how surely passage i speaks to sub-point s: 1 for an explicit reference
("Recommendation 2(f)") or a category with one sub-point, else the sub-point head's
probability. A model without sub-point heads cannot grade by sub-point: every q_is is 1.
Adding evidence multiplies in factors no larger than one, so no strength, and no score,
ever falls (monotone); a force that evidences one sub-point of four scores at most 0.25.

A category is **addressed** when its ``strength``, the noisy-OR ``1 - prod_i (1 - p_i *
status_weight_i)`` (sub-points and specificity left out: a general answer is still an
answer; an admitted gap is not), reaches ``coverage.addressed_min``. Without depth heads
every status and specificity weight is 1, and strength is the plain noisy-OR of the p_i.

Columns of the long coverage frame:
level (document|force), force, doc_id, category, score, addressed, strength, n_evidence,
n_gap (evidence passages that state a gap), top_evidence_ids (";"-joined, strongest counted
first), pages (";"-joined, same order), subpoints (";"-joined sub-points evidenced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from .config import CoverageParams
from .depth import STATUSES
from .taxonomy import Taxonomy, cue_pattern, names_any, searchable

COVERAGE_COLUMNS = ["level", "force", "doc_id", "category", "score", "addressed", "strength",
                    "n_evidence", "n_gap", "top_evidence_ids", "pages", "subpoints"]
EVIDENCE_COLUMNS = ["passage_id", "doc_id", "force", "page", "category", "p", "subpoints",
                    "subpoint_p", "status", "status_p", "p_specific", "text"]



class CoverageRow(TypedDict):
    """One row of coverage.csv (the column order of :data:`COVERAGE_COLUMNS`)."""

    level: str
    force: str
    doc_id: str
    category: str
    score: float
    addressed: bool
    strength: float
    n_evidence: int
    n_gap: int
    top_evidence_ids: str
    pages: str
    subpoints: str


class CategorySummary(TypedDict):
    """What summary.json says of one category across the responding forces."""

    display: str
    recommendation: str
    n_addressed: int
    forces_addressed: list[str]
    forces_not_addressed: list[str]
    subpoints: dict[str, int]  # sub-point -> forces evidencing it
    sentence: str
    forces_stating_gap: list[str]


class NationalSummary(TypedDict, total=False):
    """summary.json: the national counts (:func:`national_summary`), then what the run adds
    (:func:`pipeline.findings.write_findings`): when, which run and model, how many
    documents and passages, and the stage timings."""

    n_forces_responded: int
    forces_responded: list[str]
    forces_not_responded: list[str]
    categories: dict[str, CategorySummary]
    generated: str
    run_id: str
    model_version: str
    n_documents: int
    n_documents_error: int
    n_passages: int
    n_echo: int
    n_needs_review: int
    stages: dict[str, dict[str, float]]


def noisy_or(probabilities: list[float] | np.ndarray) -> float:
    """1 - prod(1 - p): monotone and saturating in the evidence."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    return float(1.0 - np.prod(1.0 - p)) if p.size else 0.0


def passage_subpoints(text: str, rec_refs: list[str] | tuple[str, ...], category: str,
                      taxonomy: Taxonomy) -> set[str]:
    """Sub-points of ``category`` that an evidence passage speaks to."""
    subs = taxonomy.category(category).subpoints
    if len(subs) == 1:
        return set(subs)
    lowered = searchable(text)
    return {r for r in rec_refs if r in subs} | {
        s for s in subs if names_any(taxonomy.subpoint_terms.get(s, ()), text, lowered)}


def _subpoint_strengths(category: str, refs: set[str], q_of: dict[str, Any], text: str,
                        taxonomy: Taxonomy) -> tuple[list[float], list[str]]:
    """(q_is for each sub-point of ``category`` in taxonomy order, the sub-points evidenced),
    from the passage's explicit references, its sub-point head's ``q_of`` (sub-point -> q;
    missing or NaN without a head) and its text.

    Without a sub-point head the category cannot be graded: every q is 1 (the score is the
    strength of all its evidence, as if it had one sub-point), and the sub-points listed are
    those the taxonomy's terms or an explicit reference name."""
    subs = taxonomy.category(category).subpoints
    if len(subs) == 1:
        return [1.0], list(subs)
    q = [q_of.get(s, float("nan")) for s in subs]
    if any(pd.isna(x) for x in q):
        found = passage_subpoints(text, list(refs), category, taxonomy)
        return [1.0] * len(subs), [s for s in subs if s in found]
    q = [1.0 if s in refs else float(x) for s, x in zip(subs, q, strict=True)]
    return q, [s for s, x in zip(subs, q, strict=True) if x >= 0.5]


def evidence_table(passages: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """One row per (passage, category) where the passage is evidence for the category.

    Columns (``EVIDENCE_COLUMNS``): passage_id, doc_id, force, page, category, p, subpoints
    (list: those with q of 0.5 or more), subpoint_p (list of q, the category's sub-points in
    taxonomy order), status ("" without depth heads), status_p (list: the probability of each
    of ``depth.STATUSES``; empty without), p_specific (NaN without), text.
    """
    n = len(passages)

    def column(name: str, default: Any) -> list[Any]:
        return passages[name].tolist() if name in passages else [default] * n

    # Columns read once as lists: a row-by-row walk over the whole frame (every column of
    # every passage, evidence or not) cost more than the rest of this function.
    echo, labels = column("echo", False), column("labels", [])
    status_of, specific = column("status", ""), column("p_specific", float("nan"))
    status_cols = [f"p_status_{s}" for s in STATUSES]
    status_ps = (passages[status_cols].to_numpy(dtype=float) if n and all(
        c in passages for c in status_cols) else np.full((n, len(STATUSES)), np.nan))
    q_cols = {c[2:]: passages[c].tolist() for c in passages.columns if c.startswith("q_")}
    # Each category's probability column, for the categories evidence is labelled with.
    labelled = {c for e, cats in zip(echo, labels, strict=True) if not bool(e) for c in cats}
    p_cols = {c: passages[f"p_{c}"].tolist() for c in labelled}
    ids, docs, forces = column("passage_id", None), column("doc_id", None), column("force", None)
    pages, texts, refs_of = column("page", None), column("text", None), column("rec_refs", [])
    rows = []
    for i, cats in enumerate(labels):
        if bool(echo[i]) or not len(cats):
            continue
        status = str(status_of[i] or "")
        status_p = [] if np.isnan(status_ps[i]).any() else status_ps[i].tolist()
        refs, q_of = set(refs_of[i]), {s: v[i] for s, v in q_cols.items()}
        for cat in cats:
            q, evidenced = _subpoint_strengths(cat, refs, q_of, texts[i], taxonomy)
            rows.append({"passage_id": ids[i], "doc_id": docs[i], "force": forces[i],
                         "page": int(pages[i]), "category": cat, "p": float(p_cols[cat][i]),
                         "subpoints": evidenced, "subpoint_p": q, "status": status,
                         "status_p": status_p, "p_specific": float(specific[i]),
                         "text": texts[i]})
    frame = pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)
    frame = frame.sort_values(["category", "p"], ascending=[True, False], kind="stable")
    return frame.reset_index(drop=True)


def status_weights(status_p: pd.Series, params: CoverageParams) -> np.ndarray:
    """How much each piece of evidence counts for its status: the expected weight over the
    statuses' probabilities (module docstring); 1 where the status is unknown."""
    by_status = {"in_place": 1.0, "in_progress": 1.0, "planned": params.planned_weight,
                 "gap": 0.0, "not_stated": params.not_stated_weight}
    weights = np.array([by_status[s] for s in STATUSES])
    return np.array([float(np.dot(p, weights)) if len(p) else 1.0 for p in status_p])


def specificity_weights(p_specific: pd.Series, params: CoverageParams) -> np.ndarray:
    """``g + (1 - g) * p_specific``; 1 where specificity is unknown (NaN)."""
    p = pd.to_numeric(p_specific, errors="coerce").to_numpy(dtype=float)
    g = params.general_weight
    return np.where(np.isnan(p), 1.0, g + (1.0 - g) * np.nan_to_num(p))


@dataclass(frozen=True)
class _WeightedEvidence:
    """The evidence table's columns as arrays, each weight computed once per row (not once
    per document and again per force), and each category's sub-point strengths as a matrix
    (``q[category][row_in_category[i]]`` is row i's q over the category's sub-points)."""

    counted: np.ndarray
    weight: np.ndarray
    q: dict[str, np.ndarray]
    row_in_category: np.ndarray
    passage_id: np.ndarray
    page: np.ndarray
    subpoints: list[list[str]]
    is_gap: np.ndarray

    @classmethod
    def of(cls, evidence: pd.DataFrame, params: CoverageParams) -> _WeightedEvidence:
        counted = evidence["p"].to_numpy(dtype=float) * status_weights(evidence["status_p"],
                                                                       params)
        row_in_category = np.zeros(len(evidence), dtype=int)
        q: dict[str, np.ndarray] = {}
        for cat, idx in evidence.groupby("category", sort=False).indices.items():
            q[str(cat)] = np.asarray(evidence["subpoint_p"].iloc[idx].tolist(),
                                     dtype=float).reshape(len(idx), -1)
            row_in_category[idx] = np.arange(len(idx))
        return cls(counted=counted,
                   weight=counted * specificity_weights(evidence["p_specific"], params),
                   q=q, row_in_category=row_in_category,
                   passage_id=evidence["passage_id"].to_numpy(dtype=object),
                   page=evidence["page"].to_numpy(), subpoints=list(evidence["subpoints"]),
                   is_gap=(evidence["status"] == "gap").to_numpy())


def _row(level: str, force: str, doc_id: str, category: str, ev: _WeightedEvidence,
         rows: np.ndarray, params: CoverageParams) -> CoverageRow:
    """One coverage row from the evidence ``rows`` (positions, in evidence-table order)."""
    counted, weight = ev.counted[rows], ev.weight[rows]
    q = ev.q[category][ev.row_in_category[rows]] if len(rows) else np.zeros((0, 1))
    strengths = [noisy_or(weight * q[:, k]) for k in range(q.shape[1])]
    score = float(np.mean(strengths)) if strengths else 0.0
    strength = noisy_or(counted)
    # The strongest counted evidence first: an admitted gap is listed, but last.
    top = rows[np.argsort(-weight, kind="stable")[:params.top_evidence]]
    subs = sorted({s for i in rows for s in ev.subpoints[i]})
    return {"level": level, "force": force, "doc_id": doc_id, "category": category,
            "score": round(score, 4),
            "addressed": bool(strength >= params.addressed_min and len(rows) > 0),
            "strength": round(strength, 4), "n_evidence": int(len(rows)),
            "n_gap": int(ev.is_gap[rows].sum()),
            "top_evidence_ids": ";".join(ev.passage_id[top]),
            "pages": ";".join(str(p) for p in ev.page[top]), "subpoints": ";".join(subs)}


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
    weighted = _WeightedEvidence.of(evidence, params)
    # Grouped once into row positions (ascending, so each group keeps the table's order),
    # not filtered per document and category: that was quadratic in the batch.
    none = np.zeros(0, dtype=int)
    by_doc = evidence.groupby(["doc_id", "category"], sort=False).indices
    force_of = dict(zip(scored["doc_id"], scored["force"], strict=True))
    by_force = (evidence.assign(_force=evidence["doc_id"].map(force_of))
                .groupby(["_force", "category"], sort=False).indices)
    rows = []
    for doc in scored.itertuples(index=False):
        for cat in taxonomy.labels:
            rows.append(_row("document", doc.force, doc.doc_id, cat, weighted,
                             by_doc.get((doc.doc_id, cat), none), params))
    for force in sorted(scored["force"].unique()):
        for cat in taxonomy.labels:
            rows.append(_row("force", force, "", cat, weighted,
                             by_force.get((force, cat), none), params))
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


GAP_COLUMNS = ["force", "category", "passage_id", "doc_id", "page", "text", "found_by"]


def stated_gaps(evidence: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Evidence passages in which a force states a gap: one row per force, category and
    passage, in the evidence table's order.

    With depth heads, the passages whose likeliest status is ``gap`` (a trained classifier;
    a passage that also describes the remedy still counts for the remedy, see the module
    docstring). Without, the taxonomy's ``gap_cues``: cue phrases, a list for an analyst to
    read. Column ``found_by`` says which."""
    if evidence.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    status = evidence.get("status", pd.Series("", index=evidence.index)).fillna("").astype(str)
    if status.astype(bool).any():
        found = evidence[status == "gap"]
        return found[GAP_COLUMNS[:-1]].assign(found_by="status").reset_index(drop=True)
    cues = cue_pattern(taxonomy.gap_cues)
    if cues is None:
        return pd.DataFrame(columns=GAP_COLUMNS)
    found = evidence[evidence["text"].map(lambda t: bool(cues.search(str(t))))]
    return found[GAP_COLUMNS[:-1]].assign(found_by="cues").reset_index(drop=True)


def coverage_matrix(cov: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Wide force x category scores (force level), categories in taxonomy order."""
    forces = cov[cov["level"] == "force"]
    wide = forces.pivot(index="force", columns="category", values="score")
    wide = wide.reindex(columns=taxonomy.labels).reset_index()
    wide.columns.name = None
    return wide


def national_summary(cov: pd.DataFrame, taxonomy: Taxonomy, all_forces: list[str],
                     gaps: pd.DataFrame | None = None) -> NationalSummary:
    """Counts in the NPCC's manner: how many responding forces addressed each category, and
    (with ``gaps``, :func:`stated_gaps`) how many state a gap in it."""
    forces = cov[cov["level"] == "force"]
    responded = sorted(f for f in forces["force"].unique() if f != "unknown")
    n = len(responded)
    categories: dict[str, CategorySummary] = {}
    out: NationalSummary = {"n_forces_responded": n, "forces_responded": responded,
                            "forces_not_responded": sorted(set(all_forces) - set(responded)),
                            "categories": categories}
    for cat in taxonomy.labels:
        rows = forces[(forces["category"] == cat) & (forces["force"] != "unknown")]
        addressed = sorted(rows.loc[rows["addressed"], "force"])
        c = taxonomy.category(cat)
        listed = rows["subpoints"].fillna("").str.split(";")
        sub_counts = {s: int(listed.apply(lambda xs, s=s: s in xs).sum()) for s in c.subpoints}
        categories[cat] = {
            "display": c.display, "recommendation": c.recommendation, "n_addressed": len(addressed),
            "forces_addressed": addressed,
            "forces_not_addressed": sorted(set(responded) - set(addressed)),
            "subpoints": sub_counts,
            "sentence": f"{len(addressed)} of {n} responding forces addressed {c.display}.",
            "forces_stating_gap": (sorted(set(gaps.loc[gaps["category"] == cat, "force"]))
                                   if gaps is not None else []),
        }
    return out
