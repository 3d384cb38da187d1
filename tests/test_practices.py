"""Named practices: the taxonomy's practice terms, found as whole words in any case."""

import json

import pandas as pd

from pipeline.practices import PRACTICE_COLUMNS, find_practices, practices_by_force
from pipeline.taxonomy import load_taxonomy, term_pattern
from tests.conftest import REPO

TAX = load_taxonomy()


def test_terms_match_whole_words_in_any_case_and_across_punctuation():
    found = find_practices("Our SPOC's checklist sits on the Intranet; each PIP2-trained "
                           "detective reviews it.", TAX)
    assert ("nrm", "SPOC") in found
    assert ("force_systems", "Intranet/SharePoint page") in found
    assert ("investigation", "PIP2 investigators") in found


def test_a_term_inside_a_longer_word_is_not_a_match():
    # "app" in "approach", "nca" in "financial", "soc" in "social": no practice named.
    assert find_practices("Our approach to financial and social matters.", TAX) == set()


def test_the_substring_test_finds_what_the_patterns_alone_find():
    def by_patterns(text):
        return {(cat, practice) for cat, practices in TAX.practice_terms.items()
                for practice, terms in practices.items() if term_pattern(terms).search(text)}

    texts = [json.loads(line)["text"]
             for line in (REPO / "data" / "field" / "field_a.jsonl").read_text().splitlines()]
    texts += ["The \u017fPOC network", "Our \u212aENT-wide SPOC", "Intranet\u0130 page", "spoc"]
    assert sum(bool(by_patterns(t)) for t in texts) > 20  # the texts do name practices
    for text in texts:
        assert find_practices(text, TAX) == by_patterns(text), text
    assert ("nrm", "SPOC") in find_practices("The \u017fPOC network", TAX)  # long s, any case


def test_only_the_asked_categorys_practices_are_looked_for():
    text = "The SPOC briefs every detective."
    assert find_practices(text, TAX, "investigation") == {("investigation", "PIP2 investigators")}
    assert ("nrm", "SPOC") in find_practices(text, TAX)


def test_practices_are_counted_by_force_within_the_evidence_category_only():
    evidence = pd.DataFrame({
        "category": ["nrm", "nrm", "nrm", "investigation", "nrm"],
        "force": ["Kent", "Essex", "Kent", "Kent", "unknown"],
        "text": ["Our SPOC checks referrals.", "Each SPOC has a deputy.",
                 "The single point of contact reviews them.",
                 "A SPOC sits in the exploitation team.", "A SPOC was named."],
    })
    table = practices_by_force(evidence, TAX)
    assert list(table.columns) == PRACTICE_COLUMNS
    spoc = table[table["practice"] == "SPOC"].iloc[0]
    # Kent twice (two terms) counts once; the investigation row and the unknown force do not.
    assert spoc["category"] == "nrm" and spoc["n_forces"] == 2 and spoc["forces"] == "Essex; Kent"
    team = table[table["category"] == "investigation"]
    assert list(team["practice"]) == ["Dedicated MSHT or SOC team"]
