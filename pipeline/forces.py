"""The forces of England and Wales (plus BTP, PSNI, Police Scotland) and how to recognise them.

A document's force is resolved, in order, from a manifest CSV (path, force), its file name,
then its first page of text. What cannot be resolved is ``unknown``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

UNKNOWN = "unknown"
_FORCES_FILE = Path(__file__).with_name("forces.yaml")


@dataclass(frozen=True)
class Force:
    name: str
    aliases: tuple[str, ...]
    territorial: bool


@lru_cache(maxsize=1)
def all_forces() -> tuple[Force, ...]:
    raw = yaml.safe_load(_FORCES_FILE.read_text(encoding="utf-8"))
    out = []
    for group, territorial in (("territorial", True), ("other", False)):
        for f in raw[group]:
            out.append(Force(f["name"], tuple(f.get("aliases", [])), territorial))
    return tuple(out)


def territorial_forces() -> list[str]:
    """The 43 territorial forces of England and Wales, by canonical name."""
    return [f.name for f in all_forces() if f.territorial]


def _normalise(text: str) -> str:
    text = text.replace("&", " and ").replace("_", " ").replace("-", " ")
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern[str], str, int, str]]:
    """(pattern, force, alias length, the alias as a plain substring: case-folded unless the
    pattern is case-sensitive)."""
    pats = []
    for f in all_forces():
        for alias in (f.name, *f.aliases):
            norm = _normalise(alias)
            # Short upper-case abbreviations (MPS, GMP) must match in upper case only.
            abbreviation = alias.isupper() and len(alias) <= 4
            pat = re.compile(r"(?<![A-Za-z])" + re.escape(norm) + r"(?![A-Za-z])",
                             0 if abbreviation else re.IGNORECASE)
            pats.append((pat, f.name, len(norm), norm if abbreviation else norm.casefold()))
    return pats


def match_force(text: str) -> str | None:
    """The force named earliest in ``text`` (longest alias wins at the same place), or None."""
    norm = _normalise(text)
    folded = norm.casefold()
    best: tuple[int, int, str] | None = None
    for pat, name, length, plain in _patterns():
        # A substring test first: a pattern that starts with a look-behind is searched
        # character by character, and a first page is tried against some 120 aliases.
        if plain not in (folded if pat.flags & re.IGNORECASE else norm):
            continue
        m = pat.search(norm)
        if m and (best is None or (m.start(), -length) < (best[0], best[1])):
            best = (m.start(), -length, name)
    return best[2] if best else None


def canonical_force(name: str) -> str:
    """Map any alias to the canonical name; unrecognised names come back ``unknown``."""
    norm = _normalise(name).lower()
    for f in all_forces():
        if norm in {_normalise(a).lower() for a in (f.name, *f.aliases)}:
            return f.name
    return match_force(name) or UNKNOWN


def read_manifest(path: str | Path) -> dict[str, str]:
    """Read a manifest CSV with columns ``path`` and ``force``; keys are file names and paths."""
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "force"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: manifest needs columns 'path' and 'force'")
        for row in reader:
            force = canonical_force(row["force"])
            out[row["path"]] = force
            out[Path(row["path"]).name] = force
    return out


def resolve_force(path: str | Path, first_page_text: str,
                  manifest: dict[str, str] | None = None) -> str:
    """Manifest, else file name, else the first page's text, else ``unknown``."""
    p = Path(path)
    if manifest:
        for key in (str(path), p.name):
            if key in manifest:
                return manifest[key]
    return match_force(p.stem) or match_force(first_page_text[:3000]) or UNKNOWN
