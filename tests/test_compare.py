"""Comparing two scoring runs: what changed per force and category."""

import pandas as pd
import pytest

from pipeline.compare import RunTables, change_counts, compare_runs, force_changes
from pipeline.taxonomy import load_taxonomy
from tests.test_cli import run_in_project

TAX = load_taxonomy()


def _run(cells, evidence):
    """RunTables from (force, category, score, addressed) cells and (force, category, text,
    p, page) evidence rows; categories a force does not list score 0."""
    forces = sorted({c[0] for c in cells})
    given = {(f, c): (s, a) for f, c, s, a in cells}
    coverage = pd.DataFrame([{"level": "force", "force": f, "category": c,
                              "score": given.get((f, c), (0.0, False))[0],
                              "addressed": given.get((f, c), (0.0, False))[1]}
                             for f in forces for c in TAX.labels])
    ev = pd.DataFrame([{"passage_id": f"{f}-{i}", "doc_id": f, "force": f, "page": page,
                        "category": c, "p": p, "subpoints": [], "text": t}
                       for i, (f, c, t, p, page) in enumerate(evidence)],
                      columns=["passage_id", "doc_id", "force", "page", "category", "p",
                               "subpoints", "text"])
    return RunTables(coverage, ev)


def test_each_cell_says_how_it_changed_and_which_evidence_is_new():
    spoc = "Every district has a trained modern slavery SPOC who advises officers on referrals."
    old = _run([("Kent", "nrm", 0.97, True), ("Kent", "victim_support", 0.3, False),
                ("Kent", "investigation", 0.9, True), ("Essex", "nrm", 0.9, True)],
               [("Kent", "nrm", spoc, 0.9, 1),
                ("Kent", "investigation", "A detective inspector reviews every case.", 0.9, 2)])
    new = _run([("Kent", "nrm", 0.99, True), ("Kent", "victim_support", 0.8, True),
                ("Kent", "investigation", 0.5, True), ("Surrey", "nrm", 0.7, True)],
               [# the same passage read again by OCR, one letter wrong: not new evidence
                ("Kent", "nrm", spoc.replace("trained", "trainecl"), 0.9, 3),
                ("Kent", "nrm", "Referrals to the NRM are checked by the hub within a day.",
                 0.8, 4),
                ("Kent", "victim_support", "The PCC funds an independent advocate.", 0.8, 5)])
    changes = compare_runs(old, new, TAX).set_index(["force", "category"])
    kent_nrm = changes.loc[("Kent", "nrm")]
    assert kent_nrm["change"] == "more evidence"
    assert (kent_nrm["new_evidence"], kent_nrm["lost_evidence"]) == (1, 0)
    assert kent_nrm["new_example"].startswith("Referrals to the NRM") and kent_nrm["new_page"] == 4
    assert changes.loc[("Kent", "victim_support"), "change"] == "newly addressed"
    weaker = changes.loc[("Kent", "investigation")]
    assert weaker["change"] == "weaker" and weaker["score_change"] == pytest.approx(-0.4)
    assert weaker["lost_evidence"] == 1 and weaker["lost_example"].startswith("A detective")
    assert changes.loc[("Kent", "section45"), "change"] == "unchanged"
    assert set(changes.loc["Surrey", "change"]) == {"new force"}
    assert set(changes.loc["Essex", "change"]) == {"force missing"}
    assert pd.isna(changes.loc[("Surrey", "nrm"), "score_old"])
    assert force_changes(changes.reset_index()) == {"new": ["Surrey"], "missing": ["Essex"]}
    counts = {c["category"]: c for c in change_counts(changes.reset_index(), TAX)}
    vs = counts[TAX.category("victim_support").display]
    assert vs["newly addressed"] == 1 and vs["forces"]["newly addressed"] == ["Kent"]


def test_compare_two_rounds_end_to_end_writes_changes_and_a_report_section(
        project, tmp_path, realistic_pdf):
    first, second = tmp_path / "round1", tmp_path / "round2"
    first.mkdir()
    second.mkdir()
    (first / "Kent Police response.txt").write_text(
        "Kent Police response to the super-complaint.\n\nAll referrals to the National Referral "
        "Mechanism are checked by the modern slavery SPOC before submission.\n", "utf-8")
    (second / "Kent Police response.txt").write_text(
        "Kent Police response to the super-complaint, one year on.\n\nAll referrals to the "
        "National Referral Mechanism are checked by the modern slavery SPOC before submission."
        "\n\nThe Police and Crime Commissioner now funds an independent advocacy service that "
        "supports survivors of modern slavery before and after an NRM decision, with "
        "accommodation, counselling and legal advice.\n", "utf-8")
    (second / "Avon and Somerset response.pdf").write_bytes(realistic_pdf.read_bytes())
    for folder, out in ((first, "run1"), (second, "run2")):
        proc = run_in_project(project, "score", folder, "--out", tmp_path / out)
        assert proc.returncode == 0, proc.stderr
    proc = run_in_project(project, "compare", tmp_path / "run1", tmp_path / "run2")
    assert proc.returncode == 0, proc.stderr
    assert "forces new in this run: Avon and Somerset" in proc.stdout
    changes = pd.read_csv(tmp_path / "run2" / "changes.csv")
    kent_vs = changes[(changes["force"] == "Kent") & (changes["category"] == "victim_support")]
    assert kent_vs["new_evidence"].item() >= 1
    assert "independent advocacy" in kent_vs["new_example"].item()
    report = (tmp_path / "run2" / "report.html").read_text("utf-8")
    assert "Changes since the previous run" in report and "independent advocacy" in report
    # The same comparison while scoring the second round.
    proc = run_in_project(project, "score", second, "--out", tmp_path / "run3",
                          "--compare-with", tmp_path / "run1")
    assert proc.returncode == 0, proc.stderr
    again = pd.read_csv(tmp_path / "run3" / "changes.csv")
    pd.testing.assert_frame_equal(again, changes)
    # A run of another taxonomy is refused, plainly.
    other = tmp_path / "other"
    (tmp_path / "run2").rename(other)
    coverage = pd.read_csv(other / "coverage.csv")
    coverage["category"] = coverage["category"].replace("nrm", "share_intelligence")
    coverage.to_csv(other / "coverage.csv", index=False)
    proc = run_in_project(project, "compare", tmp_path / "run1", other)
    assert proc.returncode == 1 and "scored against another taxonomy" in proc.stderr
    other.rename(tmp_path / "run2")
    # A run compared with itself is refused, plainly.
    proc = run_in_project(project, "compare", tmp_path / "run2", tmp_path / "run2")
    assert proc.returncode == 2 and "the same run twice" in proc.stderr


def test_a_plan_that_is_now_in_place_shows_as_a_status_change():
    def run(status, text, addressed=True, n_gap=0):
        coverage = pd.DataFrame([{"level": "force", "force": "Kent", "category": c,
                                  "score": 0.9 if c == "investigation" else 0.0,
                                  "addressed": addressed and c == "investigation",
                                  "n_gap": n_gap if c == "investigation" else 0,
                                  "top_evidence_ids": "k-1" if c == "investigation" else ""}
                                 for c in TAX.labels])
        ev = pd.DataFrame([{"passage_id": "k-1", "doc_id": "d", "force": "Kent", "page": 1,
                            "category": "investigation", "p": 0.9, "subpoints": ["3"],
                            "status": status, "text": text}])
        return RunTables(coverage, ev)

    planned = run("planned", "From April we will set up an exploitation investigation team.")
    in_place = run("in_place", "Our exploitation investigation team took its first cases in May.")
    gap = run("gap", "We have no dedicated investigation team.", addressed=False, n_gap=1)
    cell = compare_runs(planned, in_place, TAX).set_index("category").loc["investigation"]
    assert (cell["status_old"], cell["status_new"]) == ("planned", "in_place")
    back = compare_runs(in_place, gap, TAX).set_index("category").loc["investigation"]
    assert (back["status_old"], back["status_new"]) == ("in_place", "gap")
    assert back["change"] == "no longer addressed"
    # A run without depth heads has no status to compare.
    plain = compare_runs(_run([("Kent", "nrm", 0.9, True)], []),
                         _run([("Kent", "nrm", 0.9, True)], []), TAX)
    assert (plain["status_old"] == "").all() and (plain["status_new"] == "").all()
