"""The field set (data/field): schema, provenance, size, and independence from training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.corpus import load_corpus
from pipeline.errors import DataValidationError
from pipeline.fieldset import (
    GENRES,
    agreement,
    load_field,
    load_second_labels,
    overlap_with_training,
    page_key,
)
from pipeline.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parent.parent
TAX = load_taxonomy()


@pytest.fixture(scope="module")
def field():
    return load_field(REPO / "data" / "field", TAX)  # raises on any schema problem


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(REPO / "data" / "labelled", TAX, near_duplicates=False)


def test_field_set_meets_the_size_and_spread_it_promises(field):
    assert len(field) >= 600
    assert field["page"].nunique() >= 200
    assert field["genre"].nunique() >= 8
    assert set(field["genre"]) <= set(GENRES)
    # Modern slavery statements about supply chains are there as hard negatives.
    statements = field[field["genre"] == "supply_chain_statement"]
    assert len(statements) >= 10 and statements["labels"].str.len().eq(0).all()
    for cat in TAX.labels:
        assert field[cat].sum() >= 15, cat


def test_every_field_passage_names_its_page_date_and_paraphraser(field):
    assert field["source_url"].str.match(r"https?://[^/\s]+").all()
    assert field["paraphrased_by"].str.len().gt(0).all()
    assert field["retrieved"].str.match(r"\d{4}-\d{2}-\d{2}$").all()
    # At most a handful of passages follow any one page, so no page dominates.
    assert field.groupby("page").size().max() <= 8


def test_calibration_and_test_parts_never_share_a_page(field):
    parts = field.groupby("page")["part"].nunique()
    assert (parts == 1).all()
    share = (field["part"] == "calibration").mean()
    assert 0.25 < share < 0.55  # calibration_fraction 0.4 of pages, by hash


def test_field_pages_are_disjoint_from_the_pages_training_followed(field, corpus):
    shared, near = overlap_with_training(field, corpus)
    assert shared == [], f"{len(shared)} pages followed by both: {shared[:5]}"
    assert near == [], f"{len(near)} field passages near-duplicate training ones: {near[:5]}"


def test_second_labeller_covers_at_least_15_percent_and_agreement_is_reported(field):
    second = load_second_labels(REPO / "data" / "field", TAX)
    assert len(set(second["id"]) & set(field["id"])) >= 0.15 * len(field)
    table = agreement(field, second, TAX)
    assert list(table["category"]) == TAX.labels
    card = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    for row in table.itertuples():
        assert f"{row.kappa:.2f}" in card, f"kappa for {row.category} not in data/README.md"


def test_page_key_ignores_scheme_www_tracking_and_trailing_slash_but_not_the_page_id():
    assert (page_key("https://www.example.org/a/b/?utm_source=x&ns_campaign=1#top")
            == page_key("http://example.org/a/b"))
    assert page_key("https://example.org/a") != page_key("https://example.org/b")
    # theyworkforyou.com/lords?id=... names one debate per id.
    assert page_key("https://example.org/lords?id=1") != page_key("https://example.org/lords?id=2")


def _write(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


GOOD = {"id": "x-1", "text": "Officers can reach the modern slavery page on the intranet.",
        "labels": ["force_systems"], "subpoints": ["2a"], "kind": "content",
        "genre": "force_web", "source_url": "https://example.org/page", "retrieved": "2026-11-29",
        "created": "2026-11-29", "paraphrased_by": "writer"}


@pytest.mark.parametrize("change, message", [
    ({"source_url": "not a url"}, "source_url"),
    ({"genre": "blog"}, "genre"),
    ({"paraphrased_by": ""}, "paraphrased_by"),
    ({"labels": ["nrm"], "kind": "other_none"}, "does not fit"),
    ({"labels": ["bogus"]}, "unknown label"),
    ({"retrieved": "yesterday"}, "ISO date"),
])
def test_a_field_passage_without_provenance_or_with_bad_labels_is_refused(tmp_path, change,
                                                                           message):
    folder = _write(tmp_path / "field", [GOOD, {**GOOD, "id": "x-2", "text": "Other text here.",
                                                **change}])
    with pytest.raises(DataValidationError) as info:
        load_field(folder, TAX)
    assert message in str(info.value) and "x-2" in str(info.value)


def test_a_valid_field_file_loads_with_its_page_and_part(tmp_path):
    frame = load_field(_write(tmp_path / "field", [GOOD]), TAX)
    assert frame.loc[0, "page"] == "example.org/page"
    assert frame.loc[0, "part"] in ("calibration", "test")
    assert frame.loc[0, "force_systems"] == 1 and frame.loc[0, "nrm"] == 0


def test_overlap_finds_a_shared_page_and_a_copied_passage(tmp_path):
    import pandas as pd

    frame = load_field(_write(tmp_path / "field", [GOOD]), TAX)
    training = pd.DataFrame({"id": ["t-1", "t-2"],
                             "text": [GOOD["text"], "Something unrelated about budgets."],
                             "source_url": ["http://www.example.org/page/", None]})
    shared, near = overlap_with_training(frame, training)
    assert shared == ["example.org/page"]
    assert [(a, b) for a, b, _ in near] == [("field:x-1", "train:t-1")]
