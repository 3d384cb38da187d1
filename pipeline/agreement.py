"""A scoring run against gold files: whether each category is addressed
(:func:`coverage_vs_gold`), per sub-point and per status, and scanned samples against their
text twins (:func:`scanned_vs_twins`).

The gold file has one row per document (``file``) and category, with ``subpoints`` (the
sub-points the document answers, ";"-joined) and, optionally, ``status``: what the document
says of the category as a whole: ``in_place``, ``in_progress``, ``planned``, ``gap`` (it only
admits the gap) or ``not_addressed``.

A run's status for a cell is read from its evidence: ``not_addressed`` when there is none,
``gap`` when the category is not addressed and a stated gap is among its evidence, else the
status of its strongest counted evidence (``not_stated`` read as ``in_place``: the document
describes the arrangement without saying whether it is new). A category that is not addressed
with no stated gap is ``not_addressed`` whatever its weak evidence says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .taxonomy import Taxonomy

CELL_STATUSES = ("in_place", "in_progress", "planned", "gap", "not_addressed")


def document_files(run_dir: Path) -> pd.DataFrame:
    """documents.csv of a run with a ``file`` column (the bare file name)."""
    from .atomic import from_spreadsheet_safe

    docs = pd.read_csv(run_dir / "documents.csv")
    docs["file"] = docs["path"].map(lambda p: Path(from_spreadsheet_safe(str(p))).name)
    return docs


def gold_cells(run_dir: Path, gold_csv: Path) -> pd.DataFrame:
    """Document-level coverage rows of the run joined to the gold rows by file and category
    (gold columns that the run also has get the suffix ``_gold``)."""
    cov = pd.read_csv(run_dir / "coverage.csv", keep_default_na=False)
    gold = pd.read_csv(gold_csv, keep_default_na=False, dtype={"subpoints": str})
    merged = (cov[cov["level"] == "document"]
              .merge(document_files(run_dir)[["doc_id", "file"]], on="doc_id")
              .merge(gold, on=["file", "category"], suffixes=("", "_gold")))
    if merged.empty:
        raise ValueError(f"no documents of {run_dir} match {gold_csv} by file name")
    return merged


def subpoint_agreement(run_dir: Path, gold_csv: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """Per sub-point, over the gold file's documents: does the run list the sub-point as
    evidenced where the gold says the document answers it? Columns: subpoint, n, gold_yes,
    run_yes, agreement, precision, recall, f1 (the last row is ``overall``)."""
    cells = gold_cells(run_dir, gold_csv)
    rows = []
    pooled: list[tuple[bool, bool]] = []
    for c in taxonomy.categories:
        part = cells[cells["category"] == c.id]
        for s in c.subpoints:
            run_yes = part["subpoints"].map(lambda v, s=s: s in str(v).split(";")).to_numpy()
            gold_yes = part["subpoints_gold"].map(lambda v, s=s: s in str(v).split(";")).to_numpy()
            pooled += list(zip(run_yes, gold_yes, strict=True))
            rows.append({"subpoint": s, **_binary(run_yes, gold_yes)})
    run_all = pd.Series([r for r, _ in pooled], dtype=bool).to_numpy()
    gold_all = pd.Series([g for _, g in pooled], dtype=bool).to_numpy()
    rows.append({"subpoint": "overall", **_binary(run_all, gold_all)})
    return pd.DataFrame(rows)


def _binary(run_yes: object, gold_yes: object) -> dict[str, float | int]:
    import numpy as np

    r, g = np.asarray(run_yes, dtype=bool), np.asarray(gold_yes, dtype=bool)
    tp = int((r & g).sum())
    precision = tp / r.sum() if r.sum() else float("nan")
    recall = tp / g.sum() if g.sum() else float("nan")
    f1 = 2 * tp / (r.sum() + g.sum()) if (r.sum() + g.sum()) else float("nan")
    return {"n": int(len(r)), "gold_yes": int(g.sum()), "run_yes": int(r.sum()),
            "agreement": round(float((r == g).mean()), 3) if len(r) else float("nan"),
            "precision": round(float(precision), 3), "recall": round(float(recall), 3),
            "f1": round(float(f1), 3)}


def cell_status(row: pd.Series, status_of: dict[str, str]) -> str:
    """One coverage row's status (module docstring); ``status_of`` maps passage ids to the
    depth head's status. Empty when the run had no depth heads."""
    if not status_of or not any(status_of.values()):
        return ""
    if not bool(row["addressed"]):
        return "gap" if int(row["n_gap"]) > 0 else "not_addressed"
    top = str(row["top_evidence_ids"]).split(";")[0]
    status = status_of.get(top, "") or "in_place"
    return "in_place" if status == "not_stated" else status


def run_cell_status(run_dir: Path, cells: pd.DataFrame) -> pd.Series:
    """The run's status of each cell (module docstring), aligned with ``cells``."""
    passages = pd.read_parquet(run_dir / "passages.parquet", columns=["passage_id", "status"])
    status_of = dict(zip(passages["passage_id"], passages["status"].fillna(""), strict=True))
    return cells.apply(lambda row: cell_status(row, status_of), axis=1)


def status_agreement(run_dir: Path, gold_csv: Path) -> pd.DataFrame:
    """Per cell status (``CELL_STATUSES``): the gold's count, the run's, and F1; then the
    macro-F1 and Cohen's kappa over all cells (rows ``macro`` and ``kappa``). Columns:
    status, gold, run, f1."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    cells = gold_cells(run_dir, gold_csv)
    gold = cells["status"].astype(str).to_numpy()
    run = run_cell_status(run_dir, cells).to_numpy()
    present = [s for s in CELL_STATUSES if (gold == s).any() or (run == s).any()]
    rows: list[dict[str, object]] = [
        {"status": s, "gold": int((gold == s).sum()), "run": int((run == s).sum()),
         "f1": round(float(f1_score(gold == s, run == s, zero_division=0)), 3)}
        for s in present]
    rows.append({"status": "macro", "gold": len(gold), "run": len(run),
                 "f1": round(float(f1_score(gold, run, labels=present, average="macro",
                                            zero_division=0)), 3)})
    rows.append({"status": "kappa", "gold": len(gold), "run": len(run),
                 "f1": round(float(cohen_kappa_score(gold, run)), 3)})
    return pd.DataFrame(rows)


def coverage_vs_gold(run_dir: Path, gold_csv: Path) -> pd.DataFrame:
    """Document-level agreement of ``addressed`` with the gold file, per category and overall.

    Documents are matched by file name. Columns: category, n, agreement, false_positives,
    false_negatives (the last row is ``overall``).
    """
    merged = gold_cells(run_dir, gold_csv)
    merged["pred"] = merged["addressed"].astype(bool)
    merged["gold"] = merged["addressed_gold"].astype(int) == 1
    rows = []
    for cat, g in list(merged.groupby("category", sort=False)) + [("overall", merged)]:
        rows.append({"category": cat, "n": int(len(g)),
                     "agreement": float((g["pred"] == g["gold"]).mean()),
                     "false_positives": int((g["pred"] & ~g["gold"]).sum()),
                     "false_negatives": int((~g["pred"] & g["gold"]).sum())})
    return pd.DataFrame(rows)


def character_error_rate(reference: str, read: str) -> float:
    """Edit distance over the reference's length, after collapsing white space (a line break
    read as a space is not an error)."""
    from rapidfuzz.distance import Levenshtein

    reference, read = " ".join(reference.split()), " ".join(read.split())
    return Levenshtein.distance(reference, read) / max(len(reference), 1)


def scanned_vs_twins(run_dir: Path, scanned_gold: Path) -> pd.DataFrame:
    """How well scanned documents, read by OCR, stand in for their text versions.

    ``scanned_gold`` lists each scanned file with its ``twin`` (the text version) and ``dpi``;
    both must have been scored in ``run_dir`` (``forcecov score data/raw --ocr``). One row per
    scanned file, then ``overall``. Columns: file, dpi, pages, ocr_pages, ocr_confidence, cer
    (character error rate of the OCR'd passages against the twin's), passages and
    passages_twin (how many passages each was cut into: a layout read wrongly shows here
    before it shows in the characters), cells (categories compared), agree_twin (share of
    categories whose ``addressed`` matches the twin's), agree_gold (the same against the gold
    file), same_subpoints (share of categories whose evidenced sub-points are the twin's)
    and score_gap (mean absolute difference of the
    coverage score from the twin's)."""
    docs = document_files(run_dir)
    gold = pd.read_csv(scanned_gold)
    cov = pd.read_csv(run_dir / "coverage.csv")
    indexed = (cov[cov["level"] == "document"].merge(docs[["doc_id", "file"]], on="doc_id")
               .set_index(["file", "category"]))
    addressed = indexed["addressed"].astype(bool)
    score = indexed["score"].astype(float)
    subpoints = indexed["subpoints"].fillna("").astype(str)
    passages = pd.read_parquet(run_dir / "passages.parquet",
                               columns=["doc_id", "char_start", "text"])
    texts = {d: " ".join(g.sort_values("char_start")["text"])
             for d, g in passages.groupby("doc_id")}
    by_file = docs.set_index("file")
    rows = []
    for (file, twin, dpi), g in gold.groupby(["file", "twin", "dpi"], sort=False):
        missing = [f for f in (file, twin) if f not in by_file.index]
        if missing:
            raise ValueError(f"{run_dir} has no scored document named {missing[0]!r}: score the "
                             "scanned files and their text twins together "
                             "(forcecov score data/raw --ocr)")
        scan, text = by_file.loc[file], by_file.loc[twin]
        if scan["status"] != "ok":
            raise ValueError(f"{file} was not read ({scan['reason']}): score with --ocr")
        cats = list(g["category"])
        mine = [bool(addressed.get((file, c), False)) for c in cats]
        twins = [bool(addressed.get((twin, c), False)) for c in cats]
        same_subpoints = [set(subpoints.get((file, c), "").split(";"))
                          == set(subpoints.get((twin, c), "").split(";")) for c in cats]
        score_gap = [abs(score.get((file, c), 0.0) - score.get((twin, c), 0.0)) for c in cats]
        golds = [int(a) == 1 for a in g["addressed"]]
        rows.append({
            "file": file, "dpi": int(dpi), "pages": int(scan["pages"]),
            "ocr_pages": int(scan.get("ocr_pages", 0) or 0),
            "ocr_confidence": float(scan.get("ocr_confidence", float("nan"))),
            "cer": round(character_error_rate(texts.get(text["doc_id"], ""),
                                              texts.get(scan["doc_id"], "")), 4),
            "passages": int(scan["n_passages"]), "passages_twin": int(text["n_passages"]),
            "cells": len(cats),
            "agree_twin": float(np.mean([a == b for a, b in zip(mine, twins, strict=True)])),
            "agree_gold": float(np.mean([a == b for a, b in zip(mine, golds, strict=True)])),
            "same_subpoints": float(np.mean(same_subpoints)),
            "score_gap": float(np.mean(score_gap)),
        })
    table = pd.DataFrame(rows)
    cells = table["cells"].sum()
    table.loc[len(table)] = {
        "file": "overall", "dpi": 0, "pages": int(table["pages"].sum()),
        "ocr_pages": int(table["ocr_pages"].sum()),
        "ocr_confidence": float(np.average(table["ocr_confidence"], weights=table["ocr_pages"]))
        if table["ocr_pages"].sum() else float("nan"),
        "cer": float(table["cer"].mean()), "passages": int(table["passages"].sum()),
        "passages_twin": int(table["passages_twin"].sum()), "cells": int(cells),
        "agree_twin": float((table["agree_twin"] * table["cells"]).sum() / cells),
        "agree_gold": float((table["agree_gold"] * table["cells"]).sum() / cells),
        "same_subpoints": float((table["same_subpoints"] * table["cells"]).sum() / cells),
        "score_gap": float((table["score_gap"] * table["cells"]).sum() / cells)}
    return table
