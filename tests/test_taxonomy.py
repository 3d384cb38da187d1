"""The taxonomy is validated on load: every contradiction is refused with where it is."""

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.taxonomy import (
    DEFAULT_TAXONOMY,
    FOLDS_TO_ASCII,
    TaxonomyError,
    load_taxonomy,
    names_any,
    parse_taxonomy,
    searchable,
    term_pattern,
)

RAW = yaml.safe_load(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))


def _raw():
    return copy.deepcopy(RAW)


def test_the_packaged_taxonomy_parses_and_answers_lookups():
    tax = parse_taxonomy(_raw())
    assert tax.labels == [c["id"] for c in RAW["categories"]]
    first = RAW["categories"][0]
    assert tax.category(first["id"]).display == first["display"]
    assert tax.category_of_subpoint(first["subpoints"][0]) == first["id"]
    assert tax.category_of_subpoint("9z") is None
    with pytest.raises(KeyError):
        tax.category("no_such_category")
    assert tax.echo_texts[: len(tax.recommendation_texts)] == list(tax.recommendation_texts)


def _broken(edit):
    raw = _raw()
    edit(raw)
    return raw


@pytest.mark.parametrize("raw, message", [
    ([1, 2], "taxonomy must be a mapping"),
    (_broken(lambda r: r.pop("categories")), "taxonomy: missing 'categories'"),
    (_broken(lambda r: r["categories"][1].update(id=r["categories"][0]["id"])),
     "categories[1]: duplicate category id"),
    (_broken(lambda r: r["categories"][1].pop("id")), "categories[1]: missing 'id'"),
    (_broken(lambda r: r.update(categories=r["categories"][:1])), "at least two categories"),
    (_broken(lambda r: r["categories"][0]["subpoints"].append("9z")), "unknown sub-point '9z'"),
    (_broken(lambda r: r["practice_terms"].update(made_up={"x": ["y"]})),
     "practice_terms names unknown category 'made_up'"),
    (_broken(lambda r: r["subpoint_terms"].update({"9z": ["y"]})),
     "subpoint_terms names unknown sub-point '9z'"),
    (_broken(lambda r: r["echo_cues"].append("(unclosed")), "echo_cues: bad regular expression"),
])
def test_contradictions_are_refused(raw, message):
    with pytest.raises(TaxonomyError, match=re.escape(message)):
        parse_taxonomy(raw)


def test_missing_and_malformed_files_are_reported(tmp_path):
    with pytest.raises(TaxonomyError, match="taxonomy file not found"):
        load_taxonomy(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: [unclosed\n")
    with pytest.raises(TaxonomyError, match="not valid YAML"):
        load_taxonomy(bad)


REPO = Path(__file__).resolve().parent.parent


def test_another_report_is_just_another_taxonomy_file(project, tmp_path):
    """The example framework in examples/county-lines trains a keyword model and scores
    responses end to end, with its own categories, sub-points and report title."""
    from tests.test_cli import run_in_project

    example = REPO / "examples" / "county-lines"
    tax = ["--taxonomy", example / "taxonomy.yaml"]
    proc = run_in_project(project, *tax, "train", "--data", example / "labelled",
                          "--out", tmp_path / "models", "--kind", "keywords")
    assert proc.returncode == 0, proc.stderr
    # Stored as plain arrays, the keyword model needs no --trust-model.
    assert list((tmp_path / "models").glob("*/model.npz"))
    proc = run_in_project(project, *tax, "score", example / "responses", "--out",
                          tmp_path / "run", "--model", tmp_path / "models")
    assert proc.returncode == 0, proc.stderr
    matrix = pd.read_csv(tmp_path / "run" / "coverage_matrix.csv").set_index("force")
    assert list(matrix.columns) == ["identify_children", "share_intelligence", "treat_as_victims"]
    assert sorted(matrix.index) == ["Kent", "Surrey"]
    coverage = pd.read_csv(tmp_path / "run" / "coverage.csv")
    kent = coverage[(coverage["level"] == "force") & (coverage["force"] == "Kent")]
    assert kent.set_index("category")["addressed"].all()  # every recommendation answered
    assert kent.set_index("category").loc["treat_as_victims", "subpoints"] == "3a;3b"
    report = (tmp_path / "run" / "report.html").read_text("utf-8")
    assert "children exploited through county lines" in report
    # The packaged model does not fit another framework: said plainly, not a traceback.
    proc = run_in_project(project, *tax, "score", example / "responses", "--out",
                          tmp_path / "run2")
    assert proc.returncode != 0 and "forcecov train" in proc.stderr
    # A broken taxonomy file is refused before anything runs.
    broken = tmp_path / "broken.yaml"
    broken.write_text("categories: [{id: only_one}]\n")
    proc = run_in_project(project, "--taxonomy", broken, "score", example / "responses")
    assert proc.returncode == 2 and "at least two categories" in proc.stderr


def test_the_characters_that_fold_to_ascii_letters_are_all_known():
    """The substring test before each pattern is exact only if these are all of them."""
    letter = re.compile("[a-z]", re.I)
    folding = {chr(i) for i in range(128, 0x110000)
               if not 0xD800 <= i < 0xE000 and letter.fullmatch(chr(i))}
    assert folding == set(FOLDS_TO_ASCII)


def test_names_any_matches_the_pattern_with_or_without_the_substring_test():
    terms = ("SPOC", "single point of contact")
    for text in ("Our SPOC refers", "a spoc's list", "\u017fPOC network", "SPOCs", "no one",
                 "Single  point of contact", "single point of contact."):
        expected = term_pattern(terms).search(text) is not None
        assert names_any(terms, text, searchable(text)) == expected, text
        assert names_any(terms, text, None) == expected, text
    assert searchable("\u017fPOC") is None and searchable("SPOC") == "spoc"
