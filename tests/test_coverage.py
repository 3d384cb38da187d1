import dataclasses

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import CoverageParams
from pipeline.coverage import (
    coverage,
    coverage_matrix,
    national_summary,
    noisy_or,
    passage_subpoints,
)
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()


def _passages(rows):
    base = {"doc_id": "d1", "force": "Kent", "page": 1, "rec_refs": [], "echo": False}
    out = []
    for i, r in enumerate(rows):
        rec = {**base, "passage_id": f"p{i}", "text": "text", "labels": [],
               **{f"p_{c}": 0.0 for c in TAX.labels}}
        rec.update(r)
        out.append(rec)
    return pd.DataFrame(out)


DOCS = pd.DataFrame([{"doc_id": "d1", "force": "Kent", "status": "ok"}])


@given(st.lists(st.floats(0, 1), max_size=12), st.floats(0, 1))
def test_score_is_monotone_and_saturating(ps, extra):
    assert 0.0 <= noisy_or(ps) <= 1.0
    assert noisy_or(ps + [extra]) >= noisy_or(ps) - 1e-12


def test_echo_passages_are_ignored_and_evidence_is_strongest_first():
    passages = _passages([
        {"labels": ["nrm"], "p_nrm": 0.7, "page": 2},
        {"labels": ["nrm"], "p_nrm": 0.95, "page": 5},
        {"labels": ["nrm"], "p_nrm": 0.99, "echo": True, "page": 9},
    ])
    cov = coverage(passages, DOCS, TAX, CoverageParams())
    row = cov[(cov.level == "document") & (cov.category == "nrm")].iloc[0]
    assert row.n_evidence == 2 and row.top_evidence_ids == "p1;p0" and row.pages == "5;2"
    assert row.score == pytest.approx(1 - 0.3 * 0.05)
    assert bool(row.addressed)
    empty = cov[(cov.level == "document") & (cov.category == "section45")].iloc[0]
    assert empty.score == 0 and not empty.addressed


def test_force_level_pools_documents_and_matrix_is_wide():
    passages = _passages([{"labels": ["investigation"], "p_investigation": 0.6, "doc_id": "d1"},
                          {"labels": ["investigation"], "p_investigation": 0.6, "doc_id": "d2"}])
    docs = pd.DataFrame([{"doc_id": "d1", "force": "Kent", "status": "ok"},
                         {"doc_id": "d2", "force": "Kent", "status": "warning"}])
    cov = coverage(passages, docs, TAX, CoverageParams())
    force_row = cov[(cov.level == "force") & (cov.category == "investigation")].iloc[0]
    assert force_row.score == pytest.approx(1 - 0.4 * 0.4) and force_row.n_evidence == 2
    wide = coverage_matrix(cov, TAX)
    assert list(wide.columns) == ["force"] + TAX.labels and len(wide) == 1


def test_subpoints_come_from_references_and_terms():
    assert passage_subpoints("We check the section 45 defence.", [], "section45", TAX) == {"2g"}
    assert passage_subpoints("Officers are trained.", ["2f"], "nrm", TAX) >= {"2f", "2b"}
    assert passage_subpoints("anything", [], "investigation", TAX) == {"3"}


def test_national_summary_counts_forces_in_npcc_manner():
    passages = _passages([{"labels": ["victim_support"], "p_victim_support": 0.9}])
    cov = coverage(passages, DOCS, TAX, CoverageParams())
    s = national_summary(cov, TAX, ["Kent", "Essex"])
    sentence = s["categories"]["victim_support"]["sentence"]
    assert sentence.startswith("1 of 1 responding forces addressed")
    assert s["forces_not_responded"] == ["Essex"]


def test_a_force_stating_a_gap_in_its_own_words_is_found_and_still_counts():
    from pipeline.coverage import stated_gaps

    texts = ["We do not yet have a dedicated modern slavery team; one is planned for April.",
             "Compliance is not yet audited; a review of 30 files is scheduled.",
             "Victims who do not have documents are referred to the NRM by the SPOC.",
             "Our SPOC network covers every district and checks every referral."]
    ev = pd.DataFrame({"passage_id": [f"p{i}" for i in range(4)], "doc_id": "d1",
                       "force": "Kent", "page": [1, 2, 3, 4], "category": "nrm",
                       "p": 0.9, "subpoints": [[]] * 4, "text": texts})
    gaps = stated_gaps(ev, TAX)
    assert list(gaps["passage_id"]) == ["p0", "p1"]
    no_cues = dataclasses.replace(TAX, gap_cues=())
    assert stated_gaps(ev, no_cues).empty
