"""Atomic file writes and an advisory lock, so nothing is ever half-written or lost.

Every output goes to a temporary file in the same folder, is fsynced, then moved into place
with ``os.replace``: a reader sees the old file or the new one, never a mix. New files are
0600: they quote documents (see :func:`atomic_open`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; on success, replace ``path`` with it.

    Outputs quote police documents, so a new file is private to the user (0600, and a new
    folder 0700); a file that already exists keeps the mode its owner gave it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    with contextlib.suppress(FileNotFoundError):
        os.chmod(tmp, path.stat().st_mode & 0o777)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb", encoding=None) as fh:
        fh.write(data)


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, object]]) -> int:
    """Write one JSON object per line, atomically. Returns the number of lines."""
    n = 0
    with atomic_open(path, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


# A cell starting with one of these is read as a formula by spreadsheets (OWASP: CSV
# injection), e.g. "=HYPERLINK(...)" in a document's file name or a passage's text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, with ``'`` put in front (the
    spreadsheet shows the text as written); any other value unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def from_spreadsheet_safe(value: str) -> str:
    """The text :func:`spreadsheet_safe` was given (a file whose apostrophes a spreadsheet
    already dropped on saving comes through unchanged)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def write_frame_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV, atomically, with text cells made spreadsheet-safe
    (Parquet and JSONL outputs keep the raw text)."""
    safe = frame.copy()
    for col in safe.select_dtypes(include=["object", "string"]).columns:
        safe[col] = safe[col].map(spreadsheet_safe)
    with atomic_open(path, "w") as fh:
        safe.to_csv(fh, index=False)


def write_frame_parquet(path: str | Path, frame: Any) -> None:
    with atomic_open(path, "wb", encoding=None) as fh:
        frame.to_parquet(fh, index=False)


def append_jsonl(path: str | Path, records: Sequence[Mapping[str, object]]) -> None:
    """Append records to a JSONL file by rewriting it atomically (old lines + new lines).

    Callers hold :func:`locked` on the file so that concurrent appenders lose nothing.
    """
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with atomic_open(path, "wb", encoding=None) as fh:
        fh.write(old)
        fh.write(new)


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (through a ``.lock`` sibling)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as fh:
        _lock(fh)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _lock(fh: BinaryIO) -> None:
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
