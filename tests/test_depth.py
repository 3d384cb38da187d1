"""Depth heads (sub-points, status, specificity) and the graded score built on them."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import CoverageParams, DepthParams, load_params
from pipeline.coverage import coverage
from pipeline.depth import STATUSES, DepthModel, from_arrays, to_arrays
from pipeline.depthfit import fit_depth, load_depth_labels
from pipeline.errors import DataValidationError
from pipeline.taxonomy import load_taxonomy
from tests.conftest import REPO, depth_corpus, depth_label, small_corpus
from tests.test_cli import run_cli

TAX = load_taxonomy()
DOCS = pd.DataFrame([{"doc_id": "d1", "force": "Kent", "status": "ok"}])
NRM_SUBS = TAX.category("nrm").subpoints  # 2b, 2d, 2e, 2f


def test_annotations_are_validated_naming_file_line_and_reason(tmp_path):
    folder = tmp_path / "depth"
    folder.mkdir()
    lines = [depth_label(1), depth_label(2, status="done"), depth_label(1), depth_label(9),
             {"id": "x3", "status": "gap"}]
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(DataValidationError) as e:
        load_depth_labels(folder, known_ids={"x1", "x2", "x3"})
    text = str(e.value)
    assert "a.jsonl:2 id='x2': status: Value error, 'done' is not one of" in text
    assert "a.jsonl:3: duplicate id x1" in text
    assert "a.jsonl:4: id x9 is not a passage" in text
    assert "a.jsonl:5 id='x3': specificity: Field required" in text
    assert load_depth_labels(tmp_path / "absent").empty


def test_shipped_annotations_cover_their_data_and_hold_provenance():
    from pipeline.corpus import load_corpus
    from pipeline.fieldset import load_field

    corpus = load_corpus(REPO / "data" / "labelled", TAX, validate=False)
    field = load_field(REPO / "data" / "field", TAX)
    labels = load_depth_labels(REPO / "data" / "labelled" / "depth", set(corpus["id"]))
    field_labels = load_depth_labels(REPO / "data" / "field" / "depth", set(field["id"]))
    assert len(labels) >= 2000 and set(labels["status"]) == set(STATUSES)
    # Every field passage that carries a label has a status; none that carries none does.
    content = set(field.loc[field["labels"].map(bool), "id"])
    assert set(field_labels["id"]) == content
    second = load_depth_labels(REPO / "data" / "labelled" / "depth" / "second",
                               set(corpus["id"]) | set(field["id"]))
    assert (second["annotator"] != "").all()
    assert not set(second["annotator"]) & (set(labels["annotator"])
                                           | set(field_labels["annotator"]))
    assert len(set(second["id"]) & set(field_labels["id"])) >= 0.15 * len(field_labels)


def test_heads_learn_and_survive_the_array_round_trip():
    corpus, labels = depth_corpus()
    params = DepthParams(min_positives=5, min_annotations=20)
    model = fit_depth(corpus, labels, TAX, params)
    assert model is not None and set(model.statuses) == {"in_place", "planned", "gap"}
    texts = ["We will introduce a safe house next year.",
             "We do not yet have a leaflet on support; nothing has started.",
             "Officers use an app at every custody suite to refer victims."]
    pred = model.predict(texts)
    assert list(pred["status"]) == ["planned", "gap", "in_place"]
    assert list(pred.columns[:7]) == ["status", *(f"p_status_{s}" for s in STATUSES),
                                      "p_specific"]
    assert np.allclose(pred[[f"p_status_{s}" for s in STATUSES]].sum(axis=1), 1.0, atol=1e-3)
    arrays = {k: np.asarray(v) for k, v in to_arrays(model).items()}
    again = from_arrays(arrays)
    assert isinstance(again, DepthModel)
    pd.testing.assert_frame_equal(again.predict(texts), pred)
    assert from_arrays({}) is None


def test_a_passage_that_admits_a_gap_and_then_the_remedy_counts_for_the_remedy():
    corpus, labels = depth_corpus()
    model = fit_depth(corpus, labels, TAX, DepthParams(min_positives=5, min_annotations=20))
    gap_only = "We do not yet have a safe house; nothing has started."
    mixed = gap_only + " Officers use a reception centre at every custody suite."
    pred = model.predict([gap_only, mixed])
    assert pred.loc[0, "status"] == "gap"
    assert pred.loc[1, "p_status_in_place"] > pred.loc[0, "p_status_in_place"] + 0.3


def _evidence(rows):
    base = {"doc_id": "d1", "force": "Kent", "page": 1, "rec_refs": [], "echo": False,
            "text": "text", "labels": ["nrm"], "status": "",
            **{f"p_status_{s}": np.nan for s in STATUSES}, "p_specific": np.nan,
            **{f"p_{c}": 0.0 for c in TAX.labels}}
    return pd.DataFrame([{**base, "passage_id": f"p{i}", **r} for i, r in enumerate(rows)])


def _nrm(passages, params=None):
    cov = coverage(passages, DOCS, TAX, params or CoverageParams())
    return cov[(cov.level == "document") & (cov.category == "nrm")].iloc[0]


def _q(*subs):
    return {f"q_{s}": float(s in subs) for s in NRM_SUBS}


def _status(name):
    return {f"p_status_{s}": float(s == name) for s in STATUSES} | {"status": name}


def test_the_score_is_the_share_of_sub_points_evidenced():
    one = _nrm(_evidence([{"p_nrm": 1.0, **_q("2f")}]))
    assert one.score == pytest.approx(0.25) and one.addressed and one.subpoints == "2f"
    every = _nrm(_evidence([{"p_nrm": 1.0, **_q(*NRM_SUBS)}]))
    assert every.score == pytest.approx(1.0)
    # An explicit "Recommendation 2(d)" counts whatever the head says.
    cited = _nrm(_evidence([{"p_nrm": 1.0, "rec_refs": ["2d"], **_q("2f")}]))
    assert cited.score == pytest.approx(0.5) and cited.subpoints == "2d;2f"


def test_a_stated_gap_never_counts_and_a_plan_counts_at_a_discount():
    params = CoverageParams(planned_weight=0.5)
    gap = _nrm(_evidence([{"p_nrm": 1.0, **_q(*NRM_SUBS), **_status("gap")}]), params)
    assert gap.score == 0.0 and gap.strength == 0.0 and not gap.addressed and gap.n_gap == 1
    planned = _nrm(_evidence([{"p_nrm": 1.0, **_q(*NRM_SUBS), **_status("planned")}]), params)
    assert planned.strength == pytest.approx(0.5) and planned.score == pytest.approx(0.5)
    general = _nrm(_evidence([{"p_nrm": 1.0, **_q(*NRM_SUBS), **_status("in_place"),
                               "p_specific": 0.0}]), CoverageParams(general_weight=0.4))
    # A general statement is still an answer (addressed), but a shallower one (score).
    assert general.strength == pytest.approx(1.0) and general.score == pytest.approx(0.4)


@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from(STATUSES), st.floats(0, 1),
                          st.lists(st.floats(0, 1), min_size=4, max_size=4)),
                min_size=1, max_size=6))
def test_the_graded_score_never_falls_when_evidence_is_added(items):
    rows = [{"p_nrm": p, **_status(s), "p_specific": spec,
             **{f"q_{sub}": q for sub, q in zip(NRM_SUBS, qs, strict=True)}}
            for p, s, spec, qs in items]
    before = _nrm(_evidence(rows[:-1])) if len(rows) > 1 else None
    after = _nrm(_evidence(rows))
    assert 0.0 <= after.score <= after.strength + 1e-9 <= 1.0 + 1e-9
    if before is not None:
        assert after.score >= before.score - 1e-9 and after.strength >= before.strength - 1e-9


def test_the_shipped_model_does_not_count_a_force_that_only_admits_a_gap(tmp_path):
    """End to end with the real CLI and the shipped model."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "Kent Police response.txt").write_text(
        "Kent Police response to The hidden victims\n\n"
        "We do not have any guidance on modern slavery on the force intranet, and officers "
        "cannot find anything about it on their mobile devices. No work has started on this "
        "and there is no plan yet.\n\n"
        "Modern slavery investigations are allocated to the Exploitation Team, whose "
        "detectives are PIP2 accredited, and every case is reviewed at the weekly tasking "
        "meeting.\n", encoding="utf-8")
    proc = run_cli("score", tmp_path / "in", "--out", tmp_path / "run", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    passages = pd.read_parquet(tmp_path / "run" / "passages.parquet")
    gap = passages[passages["text"].str.startswith("We do not have")].iloc[0]
    assert "force_systems" in gap["labels"] and gap["status"] == "gap"
    cov = pd.read_csv(tmp_path / "run" / "coverage.csv").set_index(["level", "category"])
    assert not cov.loc[("force", "force_systems"), "addressed"]
    assert cov.loc[("force", "investigation"), "addressed"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["categories"]["force_systems"]["forces_stating_gap"] == ["Kent"]
    assert "the remedy counts for the remedy" in (tmp_path / "run" / "report.html").read_text()


def test_depth_scores_report_every_head_on_held_out_genres_and_the_field_set():
    from pipeline.deptheval import depth_scores

    corpus, labels = depth_corpus()
    field = corpus.assign(part="test")
    params = load_params(REPO / "params.yaml")
    params = params.override("depth", min_positives=5, min_annotations=20).override(
        "cv", group_by="genre", n_splits=3)
    table = depth_scores(corpus, labels, field, labels, TAX, params).set_index("head")
    assert {"sub-points, macro", "status, macro", "specificity, macro",
            "status as the score counts it, macro"} <= set(table.index)
    assert table.loc["status, macro", "n_held_out"] == len(labels)
    assert table.loc["status, macro", "field_test"] == pytest.approx(1.0)  # seen in training
    # The status words and sub-point words recur in every genre here, so heads trained on
    # two genres read the third perfectly; a fold whose predictions landed on the wrong rows
    # would not.
    assert table.loc["status, macro", "held_out_genres"] == pytest.approx(1.0)
    assert table.loc["sub-points, macro", "held_out_genres"] == pytest.approx(1.0)


def test_small_corpora_train_without_depth_heads():
    assert fit_depth(small_corpus(per_voice=1), None, TAX, DepthParams()) is None


def test_annotations_of_public_genre_passages_weigh_more_in_the_status_head():
    """Passages written after a real public page (``source_url``) carry
    ``depth.public_weight``: where they and our own voices disagree, they win."""
    corpus, labels = depth_corpus()
    corpus["source_url"] = None
    extra_rows, extra_labels = [], []
    for i in range(96, 136):
        public = i % 2 == 0  # the same words, read one way in each register
        extra_rows.append({**corpus.iloc[0].to_dict(), "id": f"x{i}",
                           "text": f"Work on the exploitation pathway continues ({i % 2}).",
                           "source_url": "https://example.org/page" if public else None})
        extra_labels.append(depth_label(i, "planned" if public else "in_place"))
    corpus = pd.concat([corpus, pd.DataFrame(extra_rows)], ignore_index=True)
    labels = pd.concat([labels, pd.DataFrame(extra_labels)], ignore_index=True)
    probe = ["Work on the exploitation pathway continues."]

    def p_planned(weight):
        params = DepthParams(min_positives=5, min_annotations=20, public_weight=weight)
        return fit_depth(corpus, labels, TAX, params).predict(probe).loc[0, "p_status_planned"]

    assert p_planned(4.0) > p_planned(1.0) > p_planned(0.25)
    with pytest.raises(ValueError, match="depth.public_weight must be positive"):
        DepthParams(public_weight=0)
