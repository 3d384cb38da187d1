"""Load and validate the recommendation taxonomy (``taxonomy.yaml``).

The taxonomy is the only place the categories are defined. Everything else (training,
coverage, the report) asks it for category ids, display names, sub-points and wording.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")
TAXONOMY_ENV = "FORCECOV_TAXONOMY"


class TaxonomyError(ValueError):
    """The taxonomy file is missing a field or contradicts itself."""


@dataclass(frozen=True)
class Category:
    id: str
    display: str
    recommendation: str
    subpoints: tuple[str, ...]
    description: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    name: str
    categories: tuple[Category, ...]
    subpoints: dict[str, str]
    recommendation_texts: tuple[str, ...]
    complaint_concerns: tuple[str, ...]
    practice_terms: dict[str, dict[str, tuple[str, ...]]]
    subpoint_terms: dict[str, tuple[str, ...]]
    echo_cues: tuple[str, ...] = ()
    own_voice_cues: tuple[str, ...] = ()
    gap_cues: tuple[str, ...] = ()
    national_cues: tuple[str, ...] = ()
    fallback_cues: tuple[str, ...] = ()
    theme_stop_words: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """Category ids in file order: the column order of every label matrix."""
        return [c.id for c in self.categories]

    def category(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(category_id)

    def category_of_subpoint(self, subpoint: str) -> str | None:
        for c in self.categories:
            if subpoint in c.subpoints:
                return c.id
        return None

    @property
    def echo_texts(self) -> list[str]:
        """Recommendation wording plus complaint concerns: what an echo restates."""
        return list(self.recommendation_texts) + list(self.complaint_concerns)


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise TaxonomyError(f"{where}: missing '{key}'")
    return mapping[key]


def parse_taxonomy(raw: dict[str, Any]) -> Taxonomy:
    """Validate a taxonomy mapping (as read from YAML) and build a :class:`Taxonomy`."""
    if not isinstance(raw, dict):
        raise TaxonomyError("taxonomy must be a mapping")
    cats = []
    seen: set[str] = set()
    for i, c in enumerate(_require(raw, "categories", "taxonomy")):
        where = f"categories[{i}]"
        cid = str(_require(c, "id", where))
        if cid in seen:
            raise TaxonomyError(f"{where}: duplicate category id '{cid}'")
        seen.add(cid)
        cats.append(
            Category(
                id=cid,
                display=str(c.get("display", cid)),
                recommendation=str(c.get("recommendation", "")),
                subpoints=tuple(str(s) for s in c.get("subpoints", [])),
                description=str(c.get("description", "")),
                keywords=tuple(str(k).lower() for k in c.get("keywords", [])),
            )
        )
    if len(cats) < 2:
        raise TaxonomyError("taxonomy needs at least two categories")
    subpoints = {str(k): str(v) for k, v in (raw.get("subpoints") or {}).items()}
    for c in cats:
        for s in c.subpoints:
            if subpoints and s not in subpoints:
                raise TaxonomyError(f"category '{c.id}' names unknown sub-point '{s}'")
    practice: dict[str, dict[str, tuple[str, ...]]] = {}
    for cid, groups in (raw.get("practice_terms") or {}).items():
        if cid not in seen:
            raise TaxonomyError(f"practice_terms names unknown category '{cid}'")
        practice[cid] = {str(g): tuple(str(t) for t in terms) for g, terms in groups.items()}
    subpoint_terms = {str(k): tuple(str(t).lower() for t in v)
                      for k, v in (raw.get("subpoint_terms") or {}).items()}
    for s in subpoint_terms:
        if subpoints and s not in subpoints:
            raise TaxonomyError(f"subpoint_terms names unknown sub-point '{s}'")
    return Taxonomy(
        name=str(raw.get("name", "")),
        categories=tuple(cats),
        subpoints=subpoints,
        recommendation_texts=tuple(raw.get("recommendation_texts") or ()),
        complaint_concerns=tuple(raw.get("complaint_concerns") or ()),
        practice_terms=practice,
        subpoint_terms=subpoint_terms,
        echo_cues=_patterns(raw, "echo_cues"),
        own_voice_cues=_patterns(raw, "own_voice_cues"),
        gap_cues=_patterns(raw, "gap_cues"),
        national_cues=_patterns(raw, "national_cues"),
        fallback_cues=_patterns(raw, "fallback_cues"),
        theme_stop_words=tuple(str(w).lower() for w in raw.get("theme_stop_words") or ()),
    )


def _patterns(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    import re

    out = tuple(str(p) for p in (raw.get(key) or ()))
    for p in out:
        try:
            re.compile(p)
        except re.error as e:
            raise TaxonomyError(f"{key}: bad regular expression {p!r} ({e})") from e
    return out


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy file: ``path``, else ``$FORCECOV_TAXONOMY`` (what
    ``forcecov --taxonomy`` sets, so that worker processes see it too), else the packaged
    one."""
    chosen = path or os.environ.get(TAXONOMY_ENV) or DEFAULT_TAXONOMY
    return _load_taxonomy_file(Path(chosen).resolve())


def uses_packaged_taxonomy() -> bool:
    """Whether :func:`load_taxonomy` reads the packaged taxonomy (no other was chosen)."""
    chosen = os.environ.get(TAXONOMY_ENV)
    return not chosen or Path(chosen).resolve() == DEFAULT_TAXONOMY.resolve()


@lru_cache(maxsize=8)
def _load_taxonomy_file(path: Path) -> Taxonomy:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise TaxonomyError(f"{path}: taxonomy file not found") from e
    except yaml.YAMLError as e:
        raise TaxonomyError(f"{path}: not valid YAML ({e})") from e
    try:
        return parse_taxonomy(raw)
    except TaxonomyError as e:
        raise TaxonomyError(f"{path}: {e}") from e


# The only characters outside ASCII that a case-blind pattern matches to an ASCII letter
# (tests/test_taxonomy.py checks every code point). A text without them can hold a match of
# an ASCII term only where its lower case holds the lower-cased term, so :func:`names_any`
# rules most term lists out with a substring test before their pattern runs.
FOLDS_TO_ASCII = ("\u0130", "\u0131", "\u017f", "\u212a")


def searchable(text: str) -> str | None:
    """``text`` in lower case, for :func:`names_any`'s substring test; None when the text
    holds one of :data:`FOLDS_TO_ASCII` (then only the pattern can tell)."""
    return None if any(c in text for c in FOLDS_TO_ASCII) else text.lower()


@lru_cache(maxsize=512)
def _lower_terms(terms: tuple[str, ...]) -> tuple[str, ...] | None:
    """The terms in lower case, or None if one is not ASCII (no substring test then)."""
    return tuple(t.lower() for t in terms) if all(t.isascii() for t in terms) else None


def names_any(terms: tuple[str, ...], text: str, lowered: str | None) -> bool:
    """Whether ``text`` names any of ``terms`` as a whole word (:func:`term_pattern`).
    ``lowered`` is :func:`searchable` of ``text``, worked out once for all the term lists a
    text is tested against; no term a substring of it, the pattern need not run."""
    lower_terms = _lower_terms(terms)
    if lowered is not None and lower_terms is not None \
            and not any(t in lowered for t in lower_terms):
        return False
    pattern = term_pattern(terms)
    return pattern is not None and pattern.search(text) is not None


@lru_cache(maxsize=64)
def cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-blind pattern that matches where any of ``cues`` (one of the taxonomy's cue
    lists: regular expressions) does, compiled once per list: one search per passage instead
    of one per cue. ``None`` for no cues."""
    return re.compile("|".join(f"(?:{c})" for c in cues), re.I) if cues else None


@lru_cache(maxsize=512)
def term_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled, case-insensitive pattern that finds any of ``terms`` as whole words
    (not inside a longer word); compiled once per term list and reused for every passage.
    The longest term is tried first. ``None`` for no terms."""
    if not terms:
        return None
    alternatives = sorted((re.escape(t) for t in terms), key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z])(?:" + "|".join(alternatives) + r")(?![A-Za-z])", re.I)
