"""report.html (Jinja2, autoescaped: document text is untrusted) and matplotlib figures."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd

from .atomic import write_bytes, write_text
from .config import ThemeParams
from .records import DocumentResult
from .taxonomy import Taxonomy
from .themes import THEME_COLUMNS, ActionSummary, action_summaries, read_themes_csv

if TYPE_CHECKING:
    from .coverage import NationalSummary

MAX_QUOTE_CHARS = 600
EVIDENCE_PER_CATEGORY = 3


# What the template reads (report.html): one TypedDict per kind of block.
class ThemeQuote(TypedDict):
    anchor: str
    force: str
    page: str
    text: str


class ThemeView(TypedDict):
    label: str
    n_forces: int
    forces: str
    n_passages: int
    national: bool
    quotes: list[ThemeQuote]


class CategoryThemes(TypedDict):
    category: str
    themes: list[ThemeView]


class GapQuote(TypedDict):
    force: str
    text: str
    page: int
    file: str


class CategoryGaps(TypedDict):
    category: str
    n_forces: int
    by_status: bool  # found by the status head (else by gap cues)
    quotes: list[GapQuote]


class ChangesView(TypedDict):
    previous: str
    counts: list[dict[str, object]]  # compare.change_counts
    rows: list[dict[str, object]]  # changes.csv rows, for display
    forces: dict[str, list[str]]  # compare.force_changes
    kinds: tuple[str, ...]


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (importing it takes about a third of a second
    the first time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def import_plotting() -> None:
    """Import what :func:`render_figures` needs before it can draw, in a worker ahead of the
    call (a module cannot be sent back, so nothing is returned)."""
    _pyplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def heatmap_png(matrix: pd.DataFrame, taxonomy: Taxonomy) -> bytes:
    """Force x category coverage scores as a PNG."""
    plt = _pyplot()
    cats = taxonomy.labels
    values = matrix[cats].to_numpy(dtype=float) if len(matrix) else [[0.0] * len(cats)]
    forces = list(matrix["force"]) if len(matrix) else ["(none)"]
    fig, ax = plt.subplots(figsize=(1.4 * len(cats) + 2.5, 0.32 * len(forces) + 1.6))
    im = ax.imshow(values, cmap="YlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cats)), [taxonomy.category(c).display for c in cats], rotation=30,
                  ha="right", fontsize=8)
    ax.set_yticks(range(len(forces)), forces, fontsize=8)
    for i in range(len(forces)):
        for j in range(len(cats)):
            v = values[i][j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.7 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, label="coverage score")
    ax.set_title("Coverage by force and category")
    data = _png(fig)
    plt.close(fig)
    return data


def distribution_png(cov: pd.DataFrame, taxonomy: Taxonomy) -> bytes:
    """Histogram of document-level scores per category."""
    plt = _pyplot()
    docs = cov[cov["level"] == "document"]
    fig, axes = plt.subplots(1, len(taxonomy.labels), figsize=(2.6 * len(taxonomy.labels), 2.6),
                             sharey=True)
    panels = list(axes) if len(taxonomy.labels) > 1 else [axes]
    for ax, cat in zip(panels, taxonomy.labels, strict=True):
        ax.hist(docs.loc[docs["category"] == cat, "score"], bins=10, range=(0, 1), color="#4a7")
        ax.set_title(taxonomy.category(cat).display, fontsize=8)
        ax.set_xlabel("score", fontsize=8)
    fig.suptitle("Distribution of document coverage scores")
    data = _png(fig)
    plt.close(fig)
    return data


def _quote(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[:MAX_QUOTE_CHARS].rstrip() + "…"


def _shade(score: float) -> str:
    """Background colour for a score (white to green)."""
    return f"rgb({int(255 - 200 * score)},{int(255 - 120 * score)},{int(255 - 180 * score)})"


def build_context(*, coverage: pd.DataFrame, evidence: pd.DataFrame,
                  practices: pd.DataFrame, summary: NationalSummary,
                  documents: list[DocumentResult], taxonomy: Taxonomy,
                  heatmap_b64: str, changes: pd.DataFrame | None = None,
                  previous_run: str = "", themes: pd.DataFrame | None = None,
                  theme_min_forces: int = ThemeParams().min_forces) -> dict[str, object]:
    cats = [{"id": c.id, "display": c.display, "subpoints": list(c.subpoints)}
            for c in taxonomy.categories]
    forces_cov = coverage[coverage["level"] == "force"]
    path_of = {d.doc_id: Path(d.path).name for d in documents}
    themes = themes if themes is not None else pd.DataFrame(columns=THEME_COLUMNS)
    # Passages the themes quote must be in the evidence section, for their links to land.
    quoted = {(r.category, pid) for r in themes.itertuples(index=False)
              for pid in str(r.passage_ids).split(";") if pid}
    # Each force's evidence per category, found with one groupby (a mask and a frame per
    # cell cost half a second a run); only the rows shown are read out of the frame.
    cells_of = (evidence.groupby(["force", "category"], sort=False).indices
                if len(evidence) else {})
    passage_ids = evidence["passage_id"].tolist()
    shown_of = {(force, c): [i for k, i in enumerate(rows)
                             if k < EVIDENCE_PER_CATEGORY or (c, passage_ids[i]) in quoted]
                for (force, c), rows in cells_of.items()}
    shown_rows = sorted({i for rows in shown_of.values() for i in rows})
    picked = evidence.iloc[shown_rows]
    column = {name: dict(zip(shown_rows, picked[name].tolist(), strict=True))
              for name in ("doc_id", "page", "p", "text", "status", "p_specific")}
    heat_rows, force_sections = [], []
    for force in sorted(forces_cov["force"].unique()):
        rows = forces_cov[forces_cov["force"] == force].set_index("category")
        cells, subs, sections = [], [], []
        for c in taxonomy.labels:
            r = rows.loc[c]
            covered = (set(str(r["subpoints"]).split(";")) if isinstance(r["subpoints"], str)
                       else set())
            cells.append({"score": float(r["score"]), "addressed": bool(r["addressed"]),
                          "shade": _shade(float(r["score"]))})
            subs += [{"id": s, "covered": s in covered} for s in taxonomy.category(c).subpoints]
            quotes = [{"anchor": evidence_anchor(c, passage_ids[i]),
                       "text": _quote(column["text"][i]), "page": int(column["page"][i]),
                       "p": float(column["p"][i]), "passage_id": passage_ids[i],
                       "file": path_of.get(column["doc_id"][i], ""),
                       "depth": _depth_note(column["status"][i], column["p_specific"][i])}
                      for i in shown_of.get((force, c), [])]
            sections.append({"category": taxonomy.category(c).display, "score": float(r["score"]),
                             "strength": float(r["strength"]),
                             "addressed": bool(r["addressed"]), "n_evidence": int(r["n_evidence"]),
                             "quotes": quotes})
        heat_rows.append({"force": force, "cells": cells, "subpoints": subs})
        force_sections.append({"force": force, "categories": sections})
    practice_groups = []
    for c in taxonomy.labels:
        rows = practices[practices["category"] == c] if len(practices) else practices
        practice_groups.append({"category": taxonomy.category(c).display,
                                "rows": rows.to_dict("records") if len(rows) else []})
    return {
        "title": f"Coverage report: {taxonomy.name}",
        "summary": summary, "categories": cats, "heat_rows": heat_rows,
        "force_sections": force_sections, "practice_groups": practice_groups,
        "documents": [d.__dict__ for d in documents], "heatmap_b64": heatmap_b64,
        "category_summaries": [summary["categories"][c] for c in taxonomy.labels],
        "changes": _changes_context(changes, taxonomy, previous_run),
        "gaps": _gaps_context(evidence, taxonomy, path_of),
        "themes": _themes_context(themes, evidence, taxonomy),
        "action_summaries": _linked(action_summaries(themes, summary, taxonomy,
                                                     min_forces=theme_min_forces)),
    }


def _linked(summaries: list[ActionSummary]) -> list[ActionSummary]:
    """Each example of a drafted sentence with the anchor of its quote."""
    for rec in summaries:
        for sentence in rec["sentences"]:
            for ex in sentence["examples"]:
                ex["anchor"] = evidence_anchor(sentence["category"], ex["passage_id"])
    return summaries


def evidence_anchor(category: str, passage_id: str) -> str:
    """The id of a passage's quote in the report's evidence section."""
    return f"ev-{category}-{passage_id}"


def _themes_context(themes: pd.DataFrame, evidence: pd.DataFrame,
                    taxonomy: Taxonomy) -> list[CategoryThemes]:
    """Per category, its themes with counts, forces and linked representative quotes."""
    # Only the quoted passages' texts: a dict of every evidence row costs tens of MB in a
    # batch of thousands of documents.
    quoted = {pid for ids in themes["passage_ids"] for pid in str(ids).split(";")}
    shown = evidence[evidence["passage_id"].isin(quoted)]
    text_of = dict(zip(shown["passage_id"], shown["text"], strict=True))
    out: list[CategoryThemes] = []
    for cat in taxonomy.labels:
        rows = themes[themes["category"] == cat]
        if rows.empty:
            continue
        items: list[ThemeView] = []
        for r in rows.itertuples(index=False):
            quotes: list[ThemeQuote] = [
                {"anchor": evidence_anchor(cat, pid), "force": force, "page": page,
                 "text": _quote(text_of.get(pid, ""))}
                for pid, page, force in zip(str(r.passage_ids).split(";"),
                                            str(r.pages).split(";"),
                                            str(r.quote_forces).split(";"), strict=True)
                if pid]
            items.append({"label": r.label, "n_forces": int(r.n_forces),
                          "forces": str(r.forces).replace(";", ", "),
                          "n_passages": int(r.n_passages), "national": bool(r.national),
                          "quotes": quotes})
        out.append({"category": taxonomy.category(cat).display, "themes": items})
    return out


def _depth_note(status: str, p_specific: float) -> str:
    """"in place, specific" beside a quote; empty for a model without depth heads."""
    parts = [str(status).replace("_", " ")] if status else []
    if not pd.isna(p_specific):
        parts.append("specific" if p_specific >= 0.5 else "general")
    return ", ".join(parts)


def _gaps_context(evidence: pd.DataFrame, taxonomy: Taxonomy,
                  path_of: dict[str, str]) -> list[CategoryGaps]:
    """Per category, the forces that state a gap in it, with the passage and its page."""
    from .coverage import stated_gaps

    gaps = stated_gaps(evidence, taxonomy)
    out: list[CategoryGaps] = []
    for cat in taxonomy.labels:
        rows = gaps[gaps["category"] == cat].drop_duplicates(["force", "passage_id"])
        if rows.empty:
            continue
        out.append({"category": taxonomy.category(cat).display,
                    "n_forces": int(rows["force"].nunique()),
                    "by_status": bool((rows["found_by"] == "status").all()),
                    "quotes": [{"force": r.force, "text": _quote(r.text), "page": int(r.page),
                                "file": path_of.get(r.doc_id, "")}
                               for r in rows.itertuples(index=False)]})
    return out


def _changes_context(changes: pd.DataFrame | None, taxonomy: Taxonomy,
                     previous_run: str) -> ChangesView | None:
    """The report's "Changes since the previous run" section: counts per category, and the
    cells that changed (with their strongest new evidence, shortened)."""
    if changes is None:
        return None
    from .compare import COUNTED_CHANGES, change_counts, force_changes

    changed = changes[changes["change"] != "unchanged"].copy()
    changed["category"] = changed["category"].map(lambda c: taxonomy.category(c).display)
    changed["new_example"] = changed["new_example"].map(lambda t: _quote(t) if t else "")
    rows = changed.astype(object).where(changed.notna(), None).to_dict("records")
    return {"previous": previous_run, "counts": change_counts(changes, taxonomy), "rows": rows,
            "forces": force_changes(changes), "kinds": COUNTED_CHANGES}


def render_html(context: dict[str, object]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("pipeline", "templates"),
                      autoescape=select_autoescape(["html", "xml"], default=True))
    return env.get_template("report.html").render(**context)


@dataclass(frozen=True)
class Figures:
    """The report's two figures as PNG bytes (:func:`render_figures`)."""

    heatmap: bytes
    score_distribution: bytes


def render_figures(coverage: pd.DataFrame, taxonomy: Taxonomy) -> Figures:
    """The heatmap (:func:`heatmap_png`) and the score distribution (:func:`distribution_png`)
    of a coverage table."""
    from .coverage import coverage_matrix

    return Figures(heatmap_png(coverage_matrix(coverage, taxonomy), taxonomy),
                   distribution_png(coverage, taxonomy))


def write_report(out_dir: Path, *, coverage: pd.DataFrame, evidence: pd.DataFrame,
                 practices: pd.DataFrame, summary: NationalSummary,
                 documents: list[DocumentResult], taxonomy: Taxonomy,
                 changes: pd.DataFrame | None = None, previous_run: str = "",
                 themes: pd.DataFrame | None = None,
                 theme_min_forces: int = ThemeParams().min_forces,
                 figures: Figures | None = None) -> Path:
    """Write figures/heatmap.png, figures/score_distribution.png and report.html (with a
    section on ``changes`` since ``previous_run`` when given: see :mod:`pipeline.compare`;
    and the themes of :func:`pipeline.themes.themes` with the summaries drafted from them).
    ``figures``: the coverage table's figures, rendered already (else here)."""
    figures = figures or render_figures(coverage, taxonomy)
    heat = figures.heatmap
    write_bytes(out_dir / "figures" / "heatmap.png", heat)
    write_bytes(out_dir / "figures" / "score_distribution.png", figures.score_distribution)
    html = render_html(build_context(coverage=coverage, evidence=evidence, practices=practices,
                                     summary=summary, documents=documents, taxonomy=taxonomy,
                                     heatmap_b64=base64.b64encode(heat).decode(),
                                     changes=changes, previous_run=previous_run,
                                     themes=themes, theme_min_forces=theme_min_forces))
    write_text(out_dir / "report.html", html)
    return out_dir / "report.html"


def rewrite_report(run_dir: Path, taxonomy: Taxonomy, *, evidence: pd.DataFrame,
                   changes: pd.DataFrame, previous_run: str) -> Path:
    """Render a finished run's report.html again from its own files and its ``evidence``
    table (the caller has it already), now with a section on the changes since
    ``previous_run`` (``forcecov compare``)."""
    import json

    from .records import read_documents_csv

    themes_csv = run_dir / "themes.csv"  # runs before themes existed have none
    return write_report(run_dir, coverage=pd.read_csv(run_dir / "coverage.csv"),
                        evidence=evidence, practices=pd.read_csv(run_dir / "practices.csv"),
                        summary=json.loads((run_dir / "summary.json").read_text("utf-8")),
                        documents=read_documents_csv(run_dir / "documents.csv"),
                        taxonomy=taxonomy, changes=changes, previous_run=previous_run,
                        themes=read_themes_csv(themes_csv) if themes_csv.is_file() else None)
