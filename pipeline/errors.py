"""Typed errors. Each carries the file it is about and a one-line reason."""

from __future__ import annotations

from pathlib import Path


class ForcecovError(Exception):
    """Base class: the CLI turns these into one-line messages and exit codes."""


class IngestError(ForcecovError):
    """A document could not be read. ``reason`` is one line an analyst can act on."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


class ModelError(ForcecovError):
    """A model could not be loaded or does not fit the taxonomy."""


class DataValidationError(ForcecovError):
    """Labelled data broke the schema. ``problems`` lists (ids, message) pairs."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        head = "; ".join(problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{source}: {len(problems)} problem(s): {head}{more}")
