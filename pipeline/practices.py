"""Named practices (SPOC, MSVLO, Victim Navigators, PIP2 ...) found in evidence passages by
the taxonomy's practice terms: whole words, any case, as coverage finds sub-point terms.

Plain compiled patterns, not a spaCy PhraseMatcher: the matcher cost a spaCy import (seconds,
where thinc pulls in PyTorch) and a tokenisation of every evidence row, for the same matches.
"""

from __future__ import annotations

import pandas as pd

from .taxonomy import Taxonomy, names_any, searchable

PRACTICE_COLUMNS = ["category", "practice", "n_forces", "forces"]


def find_practices(text: str, taxonomy: Taxonomy,
                   category: str | None = None) -> set[tuple[str, str]]:
    """(category, practice) pairs named in a text; only ``category``'s practices if given."""
    categories = [category] if category is not None else list(taxonomy.practice_terms)
    lowered = searchable(text)
    return {(cat, practice) for cat in categories
            for practice, terms in taxonomy.practice_terms.get(cat, {}).items()
            if names_any(terms, text, lowered)}


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
