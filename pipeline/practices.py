"""Named practices (SPOC, MSVLO, Victim Navigators, PIP2 ...) found in evidence passages,
with a spaCy PhraseMatcher driven by the taxonomy's practice terms."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.matcher import PhraseMatcher

    # (category, practice) for each match id of the PhraseMatcher
    PracticeKeys = dict[int, tuple[str, str]]

PRACTICE_COLUMNS = ["category", "practice", "n_forces", "forces"]


_MATCHERS: dict[int, tuple[Taxonomy, Language, PhraseMatcher, PracticeKeys]] = {}


def _matcher(taxonomy: Taxonomy) -> tuple[Language, PhraseMatcher, PracticeKeys]:
    """One PhraseMatcher per taxonomy object, built on first use."""
    if id(taxonomy) in _MATCHERS:
        _, cached_nlp, cached_matcher, cached_keys = _MATCHERS[id(taxonomy)]
        return cached_nlp, cached_matcher, cached_keys
    from spacy.matcher import PhraseMatcher

    from .segment import sentencizer

    nlp = sentencizer()
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    keys: PracticeKeys = {}
    for cat, groups in taxonomy.practice_terms.items():
        for practice, terms in groups.items():
            key = f"{cat}::{practice}"
            keys[nlp.vocab.strings.add(key)] = (cat, practice)
            matcher.add(key, [nlp.make_doc(t) for t in terms])
    _MATCHERS[id(taxonomy)] = (taxonomy, nlp, matcher, keys)  # holding taxonomy keeps the id valid
    return nlp, matcher, keys


def find_practices(text: str, taxonomy: Taxonomy) -> set[tuple[str, str]]:
    """(category, practice) pairs named in a text."""
    nlp, matcher, keys = _matcher(taxonomy)
    doc = nlp.make_doc(text)
    return {keys[m_id] for m_id, _, _ in matcher(doc)}


def practices_by_force(evidence: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """For each category, each practice named in that category's evidence, counted by force.

    ``evidence`` is :func:`pipeline.coverage.evidence_table`'s frame.
    """
    seen: dict[tuple[str, str], set[str]] = {}
    for rec in evidence.itertuples(index=False):
        for cat, practice in find_practices(rec.text, taxonomy):
            if cat == rec.category and rec.force != "unknown":
                seen.setdefault((cat, practice), set()).add(rec.force)
    rows = [{"category": c, "practice": p, "n_forces": len(f), "forces": "; ".join(sorted(f))}
            for (c, p), f in seen.items()]
    order = {c: i for i, c in enumerate(taxonomy.labels)}
    frame = pd.DataFrame(rows, columns=PRACTICE_COLUMNS)
    if frame.empty:
        return frame
    frame["_o"] = frame["category"].map(order)
    frame = frame.sort_values(["_o", "n_forces", "practice"], ascending=[True, False, True])
    return frame.drop(columns="_o").reset_index(drop=True)
