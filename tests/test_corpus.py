"""The shipped labelled corpus and sample submissions: schema, counts, independence."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.corpus import find_near_duplicates, load_corpus, validate_records
from pipeline.taxonomy import load_taxonomy
from tests.conftest import REPO

TAX = load_taxonomy()


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(REPO / "data" / "labelled", TAX)  # raises on any schema problem


def test_corpus_meets_its_counts(corpus):
    assert len(corpus) >= 2500
    for cat in TAX.labels:
        assert corpus[cat].sum() >= 350, cat
    none = corpus[corpus["labels"].str.len() == 0]
    assert len(none) >= 500
    assert (none["kind"] == "restated").sum() >= 120
    assert (none["kind"] == "hard_negative").sum() >= 150
    assert (corpus[TAX.labels].sum(axis=1) >= 2).sum() >= 300
    shares = corpus["voice"].value_counts(normalize=True)
    assert len(shares) >= 8 and shares.max() <= 0.25
    assert {"source", "author", "created"} <= set(corpus.columns) and corpus["author"].notna().all()


def test_validator_reports_each_problem_with_ids():
    good = {"text": "We refer victims to the NRM.", "labels": ["nrm"], "voice": "v",
            "source": "authored", "author": "a", "created": "2026-11-28"}
    records = [("f.jsonl", 1, {**good, "id": "a"}),
               ("f.jsonl", 2, {**good, "id": "a", "text": "Different text entirely here."}),
               ("f.jsonl", 3, {**good, "id": "b", "labels": ["bogus"], "text": "Another one."}),
               ("f.jsonl", 4, {**good, "id": "c", "text": "   "}),
               ("f.jsonl", 5, {**good, "id": "d"}),
               ("f.jsonl", 6, {**good, "id": "e", "text": "We refer victims to the NRM!"})]
    problems = "\n".join(validate_records(records, TAX))
    assert "duplicate id a" in problems
    assert "unknown label(s) ['bogus']" in problems
    assert "id='c'" in problems and "empty text" in problems
    assert "exact duplicate text: a and d" in problems
    assert "near-duplicate" in problems and "e" in problems


def test_near_duplicates_use_tfidf_cosine():
    pairs = find_near_duplicates(["x", "y", "z"], ["the team reviews every referral",
                                                    "the team reviews every referral.",
                                                    "something else"], exact=True)
    assert [(a, b) for a, b, _ in pairs] == [("x", "y")]


def test_sample_submissions_and_gold_cover_the_28_forces():
    gold = pd.read_csv(REPO / "data" / "raw" / "gold_coverage.csv")
    assert gold["file"].nunique() >= 28 and gold["force"].nunique() == 28
    files = [p for p in (REPO / "data" / "raw").iterdir()
             if p.suffix in (".pdf", ".docx", ".txt", ".md") and p.name != "README.md"]
    assert sum(p.suffix == ".pdf" for p in files) >= 10
    assert sum(p.suffix == ".docx" for p in files) >= 8
    no4 = gold[(gold.category == "victim_support") & (gold.addressed == 0)]
    assert 4 <= len(no4) <= 8


def test_the_independent_gold_labels_the_same_cells_and_says_why():
    gold = pd.read_csv(REPO / "data" / "raw" / "gold_coverage.csv")
    second = pd.read_csv(REPO / "data" / "raw" / "gold_coverage_independent.csv")
    key = ["file", "category"]
    assert sorted(map(tuple, second[key].values)) == sorted(map(tuple, gold[key].values))
    assert set(second["addressed"]) <= {0, 1}
    assert second["reason"].str.strip().str.len().gt(0).all()
    assert second["labeller"].notna().all() and second["labelled"].notna().all()


def test_no_sample_submission_passage_leaks_from_the_labelled_corpus(corpus, tmp_path):
    """TF-IDF cosine of every raw passage to every labelled one stays under 0.8.

    Left out: passages that quote the recommendations themselves (both sides quote the same
    report, by design) and passages of under six words (dates, signatures, job titles).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    from pipeline.classifiers.echo import make_echo_detector
    from pipeline.config import load_params
    from pipeline.extract import run_extract

    params = load_params(REPO / "params.yaml")
    run_extract([REPO / "data" / "raw"], tmp_path, ingest=params.ingest, seg=params.segment,
                taxonomy=TAX)
    lines = (tmp_path / "passages.jsonl").read_text().splitlines()
    raw = [json.loads(line)["text"] for line in lines]
    echo = make_echo_detector(TAX, params.echo).fit(raw)
    flagged = echo.predict(raw)
    raw = [t for t, e in zip(raw, flagged, strict=True) if not e and len(t.split()) >= 6]
    labelled = list(corpus["text"])
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(labelled + raw)
    sims = (vec.transform(raw) @ vec.transform(labelled).T).max(axis=1).toarray().ravel()
    worst = int(np.argmax(sims))
    assert sims.max() < 0.8, raw[worst]
