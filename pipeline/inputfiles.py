"""Which files a batch reads: the files named, and every file under the folders named, less
hidden files and what a folder's ``.forcecovignore`` lists."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

IGNORE_FILE = ".forcecovignore"


def _ignored(path: Path, root: Path, patterns: list[str]) -> bool:
    rel = path.relative_to(root).as_posix()
    for pat in patterns:
        pat = pat.strip()
        if not pat or pat.startswith("#"):
            continue
        if pat.endswith("/"):
            if rel.startswith(pat) or f"/{pat}" in f"/{rel}":
                return True
        elif fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat):
            return True
    return False


def find_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named, plus every file under folders named (recursive, sorted).

    Hidden files are skipped, and so is whatever a folder's ``.forcecovignore`` lists
    (glob patterns, one a line; ``name/`` for a folder).
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            ignore_file = p / IGNORE_FILE
            patterns = (ignore_file.read_text(encoding="utf-8").splitlines()
                        if ignore_file.exists() else [])
            for f in sorted(p.rglob("*")):
                rel_parts = f.relative_to(p).parts
                if f.is_file() and not any(part.startswith(".") for part in rel_parts) \
                        and not _ignored(f, p, patterns):
                    found.append(f)
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique
