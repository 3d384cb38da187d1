"""What changed between two scoring runs: a second round of responses a year on, or the same
responses after a retrained model.

For every force and category the two runs' coverage is set side by side, and their evidence
is matched by its words, since passage ids follow the file and a new round's files are new.
A passage is *new* evidence when no passage of the old run for that force and category has
(nearly) the same words: a token-set similarity of ``SAME_PASSAGE`` or more, with case,
punctuation and spacing ignored, so a passage cut at another place or read again by OCR
with a letter wrong is not new. *Lost* evidence is the same the other way round.

``changes.csv`` columns:

======================  ============================================================
force, category         the cell
score_old, score_new    coverage scores (empty where the force is missing from a run)
score_change            new minus old
addressed_old/new       the runs' ``addressed``
status_old/new          the cell's status in each run (in_place, in_progress, planned, gap,
                        not_addressed: :func:`pipeline.agreement.cell_status`; empty
                        for a run without depth heads), so "planned -> in_place" shows
change                  newly addressed, no longer addressed, stronger, weaker,
                        more evidence, less evidence, evidence changed, unchanged,
                        new force (only in the new run) or force missing (only in the
                        old run); stronger and weaker need a score change of at least
                        ``MIN_SCORE_CHANGE``; the evidence kinds are for cells whose
                        score moved less than that
n_evidence_old/new      evidence passages in each run
new_evidence            passages of the new run that the old one did not have
lost_evidence           passages of the old run that the new one no longer has
new_example, new_page   the most probable new passage and its page
lost_example            the most probable lost passage
======================  ============================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .agreement import cell_status
from .taxonomy import Taxonomy

MIN_SCORE_CHANGE = 0.05
# rapidfuzz token-set similarity (0-100) at which two passages count as the same evidence.
SAME_PASSAGE = 90
CHANGE_COLUMNS = ["force", "category", "score_old", "score_new", "score_change",
                  "addressed_old", "addressed_new", "status_old", "status_new", "change",
                  "n_evidence_old", "n_evidence_new", "new_evidence", "lost_evidence",
                  "new_example", "new_page", "lost_example"]
_NOT_WORD = re.compile(r"[\W_]+")
# The kinds of change counted per category, in the order they are told.
COUNTED_CHANGES = ("newly addressed", "no longer addressed", "stronger", "weaker",
                   "more evidence", "less evidence", "evidence changed")


@dataclass(frozen=True)
class RunTables:
    """What a comparison needs of one run: force-level coverage, the evidence table
    (``coverage.evidence_table`` columns), and the run's name for the report (its folder and
    run id)."""

    coverage: pd.DataFrame
    evidence: pd.DataFrame
    name: str = ""


def load_run(run_dir: Path, taxonomy: Taxonomy) -> RunTables:
    """Read a complete scoring run (refusing an incomplete or mixed one)."""
    from .coverage import evidence_table
    from .runfolder import check_run

    run_id = check_run(run_dir)
    cov = pd.read_csv(run_dir / "coverage.csv")
    other = sorted(set(cov["category"]) - set(taxonomy.labels))
    if other:
        from .errors import ForcecovError

        raise ForcecovError(f"{run_dir}: scored against another taxonomy (categories "
                            f"{', '.join(other)}); compare runs of one taxonomy, passing "
                            "its --taxonomy")
    passages = pd.read_parquet(run_dir / "passages.parquet")
    return RunTables(cov[cov["level"] == "force"].reset_index(drop=True),
                     evidence_table(passages, taxonomy), f"{run_dir} ({run_id})")


def _words(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", str(text).lower()).split())


def _known(words: str, others: list[str]) -> bool:
    """Whether a passage's words are (nearly) all in one of ``others``: the same sentences cut
    at another place, or read again by OCR with a letter wrong, are not new evidence."""
    from rapidfuzz import fuzz, process

    if not others:
        return False
    best = process.extractOne(words, others, scorer=fuzz.token_set_ratio,
                              score_cutoff=SAME_PASSAGE)
    return best is not None


def _change(old: pd.Series | None, new: pd.Series | None, added: int, lost: int) -> str:
    if old is None:
        return "new force"
    if new is None:
        return "force missing"
    if bool(new["addressed"]) and not bool(old["addressed"]):
        return "newly addressed"
    if bool(old["addressed"]) and not bool(new["addressed"]):
        return "no longer addressed"
    delta = float(new["score"]) - float(old["score"])
    if delta >= MIN_SCORE_CHANGE:
        return "stronger"
    if delta <= -MIN_SCORE_CHANGE:
        return "weaker"
    # Two strong passages already give a score near 1, so evidence can come and go without
    # moving it: say so rather than "unchanged".
    if added and lost:
        return "evidence changed"
    if added:
        return "more evidence"
    if lost:
        return "less evidence"
    return "unchanged"


def compare_runs(old: RunTables, new: RunTables, taxonomy: Taxonomy) -> pd.DataFrame:
    """One row per force and category found in either run (``changes.csv``, documented in
    the module docstring), forces in alphabetical order, categories in taxonomy order."""
    old_cov = old.coverage.set_index(["force", "category"])
    new_cov = new.coverage.set_index(["force", "category"])
    old_ev = {key: g for key, g in old.evidence.groupby(["force", "category"])}
    new_ev = {key: g for key, g in new.evidence.groupby(["force", "category"])}
    forces = sorted(set(old.coverage["force"]) | set(new.coverage["force"]))
    empty = new.evidence.iloc[0:0]
    old_status, new_status = (
        dict(zip(run.evidence["passage_id"],
                 run.evidence.get("status", pd.Series("", index=run.evidence.index)).fillna(""),
                 strict=True))
        for run in (old, new))
    rows = []
    for force in forces:
        for category in taxonomy.labels:
            key = (force, category)
            o = old_cov.loc[key] if key in old_cov.index else None
            n = new_cov.loc[key] if key in new_cov.index else None
            ev_old, ev_new = old_ev.get(key, empty), new_ev.get(key, empty)
            old_words = list(ev_old["text"].map(_words))
            new_words = list(ev_new["text"].map(_words))
            added = ev_new.loc[[not _known(w, old_words) for w in new_words]] if len(ev_new) \
                else ev_new
            lost = ev_old.loc[[not _known(w, new_words) for w in old_words]] if len(ev_old) \
                else ev_old
            added = added.sort_values("p", ascending=False, kind="stable")
            lost = lost.sort_values("p", ascending=False, kind="stable")
            score_old = float(o["score"]) if o is not None else None
            score_new = float(n["score"]) if n is not None else None
            rows.append({
                "force": force, "category": category,
                "score_old": score_old, "score_new": score_new,
                "score_change": (round(score_new - score_old, 4)
                                 if score_old is not None and score_new is not None else None),
                "addressed_old": bool(o["addressed"]) if o is not None else None,
                "addressed_new": bool(n["addressed"]) if n is not None else None,
                "status_old": cell_status(o, old_status) if o is not None else "",
                "status_new": cell_status(n, new_status) if n is not None else "",
                "change": _change(o, n, len(added), len(lost)),
                "n_evidence_old": len(ev_old), "n_evidence_new": len(ev_new),
                "new_evidence": len(added), "lost_evidence": len(lost),
                "new_example": str(added["text"].iloc[0]) if len(added) else "",
                "new_page": int(added["page"].iloc[0]) if len(added) else None,
                "lost_example": str(lost["text"].iloc[0]) if len(lost) else "",
            })
    frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    frame["new_page"] = frame["new_page"].astype("Int64")
    return frame


def force_changes(changes: pd.DataFrame) -> dict[str, list[str]]:
    """Forces that appear only in the new run (``new``) or only in the old one (``missing``)."""
    return {"new": sorted(changes.loc[changes["change"] == "new force", "force"].unique()),
            "missing": sorted(changes.loc[changes["change"] == "force missing",
                                          "force"].unique())}


def change_counts(changes: pd.DataFrame, taxonomy: Taxonomy) -> list[dict[str, object]]:
    """Per category, how many forces each kind of change touched, for the report and the
    terminal: ``[{"category": display name, "newly addressed": 3, ...}]``."""
    kinds = COUNTED_CHANGES
    out: list[dict[str, object]] = []
    for category in taxonomy.labels:
        rows = changes[changes["category"] == category]
        counts = {k: int((rows["change"] == k).sum()) for k in kinds}
        out.append({"category": taxonomy.category(category).display,
                    "forces": {k: sorted(rows.loc[rows["change"] == k, "force"]) for k in kinds},
                    **counts})
    return out


def compare_folders(old_dir: Path, new_dir: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """Compare two finished runs; write ``new_dir``/changes.csv and add the changes section
    to ``new_dir``/report.html. Returns the changes."""
    from .atomic import write_frame_csv
    from .report import rewrite_report

    if Path(old_dir).resolve() == Path(new_dir).resolve():
        raise ValueError(f"{old_dir}: the same run twice; give the earlier run first")
    old, new = load_run(old_dir, taxonomy), load_run(new_dir, taxonomy)
    changes = compare_runs(old, new, taxonomy)
    write_frame_csv(Path(new_dir) / "changes.csv", changes)
    rewrite_report(Path(new_dir), taxonomy, evidence=new.evidence, changes=changes,
                   previous_run=old.name)
    return changes
