"""The taxonomy is validated on load: every contradiction is refused with where it is."""

import copy
import re

import pytest
import yaml

from pipeline.taxonomy import (
    DEFAULT_TAXONOMY,
    TaxonomyError,
    load_taxonomy,
    parse_taxonomy,
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
