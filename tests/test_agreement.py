"""A run against a gold file: per sub-point and per status."""

import pandas as pd
import pytest

from pipeline.agreement import run_cell_status, status_agreement, subpoint_agreement
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()


def _run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"doc_id": ["d1", "d2"], "path": ["in/a.pdf", "in/b.docx"]}).to_csv(
        run / "documents.csv", index=False)
    rows = []
    for doc in ("d1", "d2"):
        for cat in TAX.labels:
            rows.append({"level": "document", "force": "Kent", "doc_id": doc, "category": cat,
                         "score": 0.0, "addressed": False, "strength": 0.0, "n_evidence": 0,
                         "n_gap": 0, "top_evidence_ids": "", "pages": "", "subpoints": ""})
    cov = pd.DataFrame(rows)
    nrm1 = (cov.doc_id == "d1") & (cov.category == "nrm")
    cov.loc[nrm1, ["addressed", "subpoints", "top_evidence_ids", "n_evidence"]] = [
        True, "2b;2f", "p1;p2", 2]
    fs2 = (cov.doc_id == "d2") & (cov.category == "force_systems")
    cov.loc[fs2, ["subpoints", "n_gap", "n_evidence", "top_evidence_ids"]] = ["2a", 1, 1, "p3"]
    inv2 = (cov.doc_id == "d2") & (cov.category == "investigation")
    cov.loc[inv2, ["addressed", "subpoints", "top_evidence_ids"]] = [True, "3", "p4"]
    cov.to_csv(run / "coverage.csv", index=False)
    pd.DataFrame({"passage_id": ["p1", "p2", "p3", "p4"],
                  "status": ["planned", "in_place", "gap", "not_stated"]}).to_parquet(
        run / "passages.parquet")
    gold = []
    for file in ("a.pdf", "b.docx"):
        for cat in TAX.labels:
            gold.append({"file": file, "category": cat, "addressed": 0, "subpoints": "",
                         "status": "not_addressed"})
    gold = pd.DataFrame(gold)
    gold.loc[(gold.file == "a.pdf") & (gold.category == "nrm"),
             ["addressed", "subpoints", "status"]] = [1, "2b;2d", "planned"]
    gold.loc[(gold.file == "b.docx") & (gold.category == "force_systems"), "status"] = "gap"
    gold.loc[(gold.file == "b.docx") & (gold.category == "investigation"),
             ["addressed", "subpoints", "status"]] = [1, "3", "in_progress"]
    gold.to_csv(tmp_path / "gold.csv", index=False)
    return run, tmp_path / "gold.csv"


def test_subpoints_are_compared_cell_by_cell(tmp_path):
    run, gold = _run(tmp_path)
    table = subpoint_agreement(run, gold, TAX).set_index("subpoint")
    assert table.loc["2b", "f1"] == 1.0
    assert table.loc["2d", "recall"] == 0.0 and table.loc["2f", "precision"] == 0.0
    assert table.loc["2a", "run_yes"] == 1 and table.loc["2a", "gold_yes"] == 0
    overall = table.loc["overall"]
    assert overall["n"] == 2 * len(TAX.subpoints) and overall["gold_yes"] == 3
    assert overall["f1"] == pytest.approx(2 * 2 / (4 + 3), abs=1e-3)


def test_a_cells_status_comes_from_its_strongest_counted_evidence(tmp_path):
    run, gold = _run(tmp_path)
    cov = pd.read_csv(run / "coverage.csv", keep_default_na=False)
    cells = cov.set_index(["doc_id", "category"])
    status = run_cell_status(run, cov).set_axis(cells.index)
    assert status[("d1", "nrm")] == "planned"          # its strongest evidence
    assert status[("d2", "force_systems")] == "gap"    # not addressed, a stated gap
    assert status[("d2", "investigation")] == "in_place"  # not_stated reads as in place
    assert status[("d1", "section45")] == "not_addressed"
    table = status_agreement(run, gold).set_index("status")
    assert table.loc["gap", "f1"] == 1.0 and table.loc["in_progress", "f1"] == 0.0
    assert table.loc["in_place", "gold"] == 0 and table.loc["in_place", "run"] == 1
    # 9 of 10 cells agree; chance agreement from the margins is (7*7 + 1 + 1) / 100.
    assert table.loc["kappa", "f1"] == pytest.approx((0.9 - 0.51) / (1 - 0.51), abs=1e-3)
    assert table.loc["macro", "gold"] == 10


def test_the_independent_gold_file_covers_every_document_and_category():
    from pipeline.agreement import CELL_STATUSES
    from tests.conftest import REPO

    folder = REPO / "data" / "independent"
    gold = pd.read_csv(folder / "gold_independent.csv", keep_default_na=False)
    ignored = set((folder / ".forcecovignore").read_text().split())
    documents = {p.name for p in folder.iterdir() if p.is_file() and p.name not in ignored
                 and not p.name.startswith(".")}
    assert len(documents) == 12 and set(gold["file"]) == documents
    assert sorted(gold.groupby("file")["category"].apply(sorted).iloc[0]) == sorted(TAX.labels)
    assert len(gold) == 12 * len(TAX.labels) and set(gold["status"]) <= set(CELL_STATUSES)
    # addressed, sub-points and status tell one story; every cell has a reason and a labeller.
    answered = gold["subpoints"].astype(bool)
    assert (answered == (gold["addressed"] == 1)).all()
    assert (gold.loc[gold["addressed"] == 0, "status"].isin(["gap", "not_addressed"])).all()
    assert gold["reason"].str.len().min() > 10 and (gold["labeller"] != "").all()
    for subs, cat in zip(gold["subpoints"], gold["category"], strict=True):
        assert set(filter(None, subs.split(";"))) <= set(TAX.category(cat).subpoints)
