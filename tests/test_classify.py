import json

import pytest

from pipeline.classifiers.echo import make_echo_detector
from pipeline.classify import classify_records, prepare_text, read_passage_lines, with_fallback
from pipeline.config import load_params
from pipeline.errors import DataValidationError
from pipeline.modelstore import load_model
from pipeline.taxonomy import load_taxonomy
from tests.conftest import REPO, fast_params, small_corpus


@pytest.fixture(scope="module")
def model(project):
    return load_model(project / "models" / "vtest", load_taxonomy())


def test_trained_model_separates_clear_cases(model):
    records = [
        {"id": "1", "text": "Every NRM referral is checked by our SPOC before it goes to the "
                            "Single Competent Authority."},
        {"id": "2", "text": "The PCC commissions a specialist advocacy service that supports "
                            "survivors long after the NRM."},
        {"id": "3", "text": "Custody sergeants must record whether the section 45 statutory "
                            "defence was considered."},
        {"id": "4", "text": "Modern slavery crimes are allocated to PIP2 detectives in the "
                            "dedicated exploitation team."},
        {"id": "5", "text": "Guidance for officers sits on the intranet page and in the app on "
                            "every mobile device."},
    ]
    out = classify_records(records, model)
    expected = ["nrm", "victim_support", "section45", "investigation", "force_systems"]
    for rec, label in zip(out, expected, strict=True):
        assert label in rec["labels"], (rec["text"], rec["probs"])
        assert rec["probs"][label] == max(rec["probs"].values())


def test_classify_keeps_extra_fields_and_adds_probs(model):
    out = classify_records([{"id": "x", "text": "Officers refer victims.", "batch": 7}], model)
    assert out[0]["batch"] == 7 and set(out[0]["probs"]) == set(model.labels)
    assert isinstance(out[0]["echo"], bool)


def test_bad_input_lines_are_named(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "text": "fine"}\nnot json\n{"text": "no id"}\n')
    with pytest.raises(DataValidationError) as info:
        read_passage_lines(path)
    assert "line 2" in str(info.value) and "line 3" in str(info.value)


def test_echo_detector_flags_restated_recommendations_not_answers():
    tax = load_taxonomy()
    echo = make_echo_detector(tax, load_params(REPO / "params.yaml").echo).fit(
        ["We refer victims to the NRM.", "Our team investigates."])
    flagged = echo.predict([
        "Recommendation 2(g): make sure the statutory defence in section 45 of the Modern "
        "Slavery Act 2015 is considered in all cases.",
        "Our custody sergeants now record, for every detainee, whether section 45 was "
        "considered and why.",
    ])
    assert list(flagged) == [True, False]


def test_prepare_text_strips_bullets():
    assert prepare_text("Lead in:\n• one\n- two") == "Lead in: one two"


def test_two_category_taxonomy_trains(tmp_path):
    """The taxonomy is data: swap in two categories and the same code trains on them."""
    import yaml

    from pipeline.classify import model_frame
    from pipeline.taxonomy import DEFAULT_TAXONOMY
    from pipeline.taxonomy import load_taxonomy as load
    from pipeline.train import train

    raw = yaml.safe_load(DEFAULT_TAXONOMY.read_text())
    keep = ("investigation", "victim_support")
    raw["categories"] = [c for c in raw["categories"] if c["id"] in keep]
    raw["practice_terms"] = {k: v for k, v in raw["practice_terms"].items() if k in keep}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(raw))
    two = load(path)
    corpus = small_corpus(30)
    corpus["labels"] = corpus["labels"].apply(lambda ls: [x for x in ls if x in two.labels])
    result = train(corpus, two, fast_params(), version="vtwo")
    assert result.model.labels == ["investigation", "victim_support"]
    proba = result.model.classifier.predict_proba(model_frame(["PIP2 detectives investigate"]))
    assert proba.shape == (1, 2)
    assert json.dumps(result.cv_metrics)  # metrics are plain data


def test_passages_too_short_to_evidence_anything_get_no_labels(model):
    import pandas as pd

    passages = pd.DataFrame({
        "text": ["NRM referrals and DtN",  # a tracker table's row label
                 "Every NRM referral is checked by the modern slavery SPOC before it is sent."],
        "heading": ["Recommendation 2(f)", "Recommendation 2(f)"]})
    free = model.predict(passages)
    assert "nrm" in free.loc[0, "labels"] and "nrm" in free.loc[1, "labels"]
    floor = model.predict(passages, min_words=5)
    assert floor.loc[0, "labels"] == [] and not floor.loc[0, "needs_review"]
    assert floor.loc[1, "labels"] == free.loc[1, "labels"]
    # Probabilities are still reported: only the decision changes.
    assert floor.loc[0, "p_nrm"] == free.loc[0, "p_nrm"]


def test_the_fallback_gives_a_near_miss_its_likeliest_category_and_nothing_else():
    import numpy as np

    thresholds = np.array([0.5, 0.2])
    proba = np.array([[0.9, 0.1],     # a hit already: unchanged
                      [0.3, 0.15],    # 0.6 and 0.75 of the thresholds: the second
                      [0.1, 0.05],    # 0.2 and 0.25: too far from both
                      [0.3, 0.15]])   # a near miss, but an echo
    hits = proba >= thresholds
    eligible = np.array([True, True, True, False])
    out = with_fallback(hits, proba, thresholds, 0.7, eligible)
    assert out.tolist() == [[True, False], [False, True], [False, False], [False, False]]
    assert with_fallback(hits, proba, thresholds, None).tolist() == hits.tolist()
    assert not with_fallback(hits, proba, thresholds, 0.8)[1].any()  # 0.75 < 0.8


def test_a_label_from_the_fallback_alone_is_sent_for_review_and_only_on_the_subject(model):
    from dataclasses import replace

    import pandas as pd

    passages = pd.DataFrame({"text": ["The annual report sets out the work of the police "
                                      "office over the year, with thanks to partners.",
                                      "The annual report sets out the work of the company "
                                      "over the year, with thanks to suppliers."]})
    assert model.fallback_cues  # the taxonomy's, set at training
    plain = model.predict(passages)
    assert plain.loc[0, "labels"] == [] and plain.loc[1, "labels"] == []
    relative = max(plain.loc[0, f"p_{lab}"] / t
                   for lab, t in zip(model.labels, model.thresholds, strict=True))
    near = replace(model, fallback_ratio=float(relative) * 0.99).predict(passages)
    assert len(near.loc[0, "labels"]) == 1 and near.loc[0, "needs_review"]
    far = replace(model, fallback_ratio=float(relative) * 1.01).predict(passages)
    assert far.loc[0, "labels"] == []
    # Off the subject (no police, victim or crime word), nothing comes from the fallback.
    assert replace(model, fallback_ratio=1e-9).predict(passages).loc[1, "labels"] == []
    assert replace(model, fallback_ratio=1e-9, fallback_cues=()).predict(
        passages).loc[1, "labels"] != []
