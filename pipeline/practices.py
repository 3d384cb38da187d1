"""Named practices (SPOC, MSVLO, Victim Navigators, PIP2 ...) found in evidence passages by
the taxonomy's practice terms: whole words, any case, as coverage finds sub-point terms.

Plain compiled patterns, not a spaCy PhraseMatcher: the matcher cost a spaCy import (seconds,
where thinc pulls in PyTorch) and a tokenisation of every evidence row, for the same matches.
"""

from __future__ import annotations

import pandas as pd

from .taxonomy import Taxonomy, term_pattern

PRACTICE_COLUMNS = ["category", "practice", "n_forces", "forces"]


def find_practices(text: str, taxonomy: Taxonomy,
                   category: str | None = None) -> set[tuple[str, str]]:
    """(category, practice) pairs named in a text; only ``category``'s practices if given."""
    categories = [category] if category is not None else list(taxonomy.practice_terms)
    found = set()
    for cat in categories:
        for practice, terms in taxonomy.practice_terms.get(cat, {}).items():
            pattern = term_pattern(terms)
            if pattern is not None and pattern.search(text):
                found.add((cat, practice))
    return found


def practices_by_force(evidence: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """For each category, each practice named in that category's evidence, counted by force.

    ``evidence`` is :func:`pipeline.coverage.evidence_table`'s frame.
    """
    seen: dict[tuple[str, str], set[str]] = {}
    for rec in evidence.itertuples(index=False):
        if rec.force == "unknown":
            continue
        for key in find_practices(rec.text, taxonomy, rec.category):
            seen.setdefault(key, set()).add(rec.force)
    rows = [{"category": c, "practice": p, "n_forces": len(f), "forces": "; ".join(sorted(f))}
            for (c, p), f in seen.items()]
    order = {c: i for i, c in enumerate(taxonomy.labels)}
    frame = pd.DataFrame(rows, columns=PRACTICE_COLUMNS)
    if frame.empty:
        return frame
    frame["_o"] = frame["category"].map(order)
    frame = frame.sort_values(["_o", "n_forces", "practice"], ascending=[True, False, True])
    return frame.drop(columns="_o").reset_index(drop=True)
