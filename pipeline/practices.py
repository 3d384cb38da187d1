"""Named practices (SPOC, MSVLO, Victim Navigators, PIP2 ...) found in evidence passages by
the taxonomy's practice terms: whole words, any case, as coverage finds sub-point terms.

Plain compiled patterns, not a spaCy PhraseMatcher: the matcher cost a spaCy import (seconds,
where thinc pulls in PyTorch) and a tokenisation of every evidence row, for the same matches.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from .taxonomy import Taxonomy, term_pattern

PRACTICE_COLUMNS = ["category", "practice", "n_forces", "forces"]
# The only characters outside ASCII that a case-blind pattern matches to an ASCII letter
# (tests/test_practices.py checks every code point). A text without them can hold a match of
# an ASCII term only where its lower case holds the lower-cased term, so a substring test
# rules most practices out before their pattern runs (the patterns cost 0.5 s a 1,000-page run).
FOLDS_TO_ASCII = ("\u0130", "\u0131", "\u017f", "\u212a")


@lru_cache(maxsize=256)
def _lower_terms(terms: tuple[str, ...]) -> tuple[str, ...] | None:
    """The terms in lower case, or None if one is not ASCII (no substring test then)."""
    return tuple(t.lower() for t in terms) if all(t.isascii() for t in terms) else None


def find_practices(text: str, taxonomy: Taxonomy,
                   category: str | None = None) -> set[tuple[str, str]]:
    """(category, practice) pairs named in a text; only ``category``'s practices if given."""
    categories = [category] if category is not None else list(taxonomy.practice_terms)
    lowered = None if any(c in text for c in FOLDS_TO_ASCII) else text.lower()
    found = set()
    for cat in categories:
        for practice, terms in taxonomy.practice_terms.get(cat, {}).items():
            lower_terms = _lower_terms(terms)
            if lowered is not None and lower_terms is not None \
                    and not any(t in lowered for t in lower_terms):
                continue
            pattern = term_pattern(terms)
            if pattern is not None and pattern.search(text):
                found.add((cat, practice))
    return found


def practices_by_row(evidence: pd.DataFrame,
                     taxonomy: Taxonomy) -> list[frozenset[tuple[str, str]]]:
    """For each evidence row, the (category, practice) pairs it names in its category. Rows
    naming the same pairs share one set: a run keeps one per evidence row."""
    shared: dict[frozenset[tuple[str, str]], frozenset[tuple[str, str]]] = {}
    return [shared.setdefault(named, named)
            for named in (frozenset(find_practices(str(text), taxonomy, str(cat)))
                          for text, cat in zip(evidence["text"], evidence["category"],
                                               strict=True))]


def practices_by_force(evidence: pd.DataFrame, taxonomy: Taxonomy,
                       found: list[frozenset[tuple[str, str]]] | None = None) -> pd.DataFrame:
    """For each category, each practice named in that category's evidence, counted by force.

    ``evidence`` is :func:`pipeline.coverage.evidence_table`'s frame; ``found``, when given,
    is :func:`practices_by_row` of it (worked out batch by batch while documents are read).
    """
    if found is None:
        found = practices_by_row(evidence, taxonomy)
    seen: dict[tuple[str, str], set[str]] = {}
    for force, named in zip(evidence["force"], found, strict=True):
        if force == "unknown":
            continue
        for key in named:
            seen.setdefault(key, set()).add(force)
    rows = [{"category": c, "practice": p, "n_forces": len(f), "forces": "; ".join(sorted(f))}
            for (c, p), f in seen.items()]
    order = {c: i for i, c in enumerate(taxonomy.labels)}
    frame = pd.DataFrame(rows, columns=PRACTICE_COLUMNS)
    if frame.empty:
        return frame
    frame["_o"] = frame["category"].map(order)
    frame = frame.sort_values(["_o", "n_forces", "practice"], ascending=[True, False, True])
    return frame.drop(columns="_o").reset_index(drop=True)
