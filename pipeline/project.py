"""The project a command runs in: its folders, its parameters and its taxonomy, built once.

``forcecov --root DIR --params FILE --taxonomy FILE --set section.key=value ...`` builds one
:class:`Project` (:func:`open_project`) and every command hands it to the stage it calls,
so no stage reads ``params.yaml`` or the taxonomy behind the caller's back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .config import Params, Paths, find_root, load_params
from .errors import ForcecovError
from .taxonomy import (
    TAXONOMY_ENV,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
    uses_packaged_taxonomy,
)

ROOT_ENV = "FORCECOV_ROOT"


@dataclass(frozen=True)
class Project:
    """Where a command runs (``root``: params.yaml, data/, models/), with what parameters and
    against which recommendations. ``packaged_taxonomy``: the taxonomy is the packaged one
    (the labelled data and the field set are labelled against it)."""

    root: Path
    params: Params
    taxonomy: Taxonomy
    packaged_taxonomy: bool = True

    @property
    def paths(self) -> Paths:
        return Paths(self.root)


def parse_override(text: str) -> tuple[str, str, str]:
    """``"section.key=value"`` as its three parts; :class:`ForcecovError` when malformed."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ForcecovError(f"--set {text!r}: expected section.key=value, for example "
                            "--set coverage.addressed_min=0.6")
    return section, key, value.strip()


def _typed(value: str, default: Any, where: str) -> Any:
    """``value`` (YAML syntax) as the type of the parameter's default (any type where the
    default is None; an integer is taken where a float is expected)."""
    parsed = yaml.safe_load(value) if value else ""
    kind = type(default)
    if kind is float and isinstance(parsed, int) and not isinstance(parsed, bool):
        parsed = float(parsed)
    if kind is tuple and isinstance(parsed, list):
        parsed = tuple(parsed)
    if kind is str and isinstance(parsed, int | float | bool):
        parsed = value  # "--set ingest.ocr_lang=123" means the text
    if default is None or (isinstance(parsed, kind)
                           and (kind is bool or not isinstance(parsed, bool))):
        return parsed
    raise ForcecovError(f"--set {where}={value}: expected {kind.__name__} like the default "
                        f"({default!r})")


def with_overrides(params: Params, overrides: Sequence[str]) -> Params:
    """``params`` with each ``section.key=value`` applied, each value checked against the
    type of its parameter; an unknown section or key is an error naming the known ones."""
    for text in overrides:
        section_name, key, value = parse_override(text)
        sections = {f.name for f in fields(Params)}
        if section_name not in sections:
            raise ForcecovError(f"--set {text}: no section {section_name!r} in params.yaml "
                                f"(sections: {', '.join(sorted(sections))})")
        section = getattr(params, section_name)
        keys = {f.name for f in fields(section)}
        if key not in keys:
            raise ForcecovError(f"--set {text}: no key {key!r} in {section_name} "
                                f"(keys: {', '.join(sorted(keys))})")
        typed = _typed(value, getattr(section, key), f"{section_name}.{key}")
        params = replace(params, **{section_name: replace(section, **{key: typed})})
    return params


def open_project(root: Path | None = None, params_file: Path | None = None,
                 taxonomy_file: Path | None = None, overrides: Sequence[str] = ()) -> Project:
    """The project at ``root`` (else ``$FORCECOV_ROOT``, else the installed package's),
    with ``params_file`` (else its params.yaml) and ``overrides``, scoring against
    ``taxonomy_file`` (else ``$FORCECOV_TAXONOMY``, else the packaged taxonomy).

    The root and taxonomy chosen are also put in the environment, so that worker
    processes (joblib, Dask) see the same ones. Errors say what to pass instead.
    """
    if root is not None and not (root / "params.yaml").is_file():
        raise ForcecovError(f"{root}: not a forcecov project (no params.yaml); pass the "
                            "folder that holds params.yaml, models/ and data/")
    if root is not None:
        os.environ[ROOT_ENV] = str(root.resolve())
    if params_file is not None and not params_file.is_file():
        raise ForcecovError(f"{params_file}: no such parameters file")
    project_root = find_root()  # --root, just put in the environment, comes first
    try:
        params = load_params(params_file or project_root / "params.yaml")
        taxonomy = load_taxonomy(taxonomy_file)
    except (TaxonomyError, ValueError, yaml.YAMLError) as e:  # names the file and the reason
        raise ForcecovError(str(e)) from e
    if taxonomy_file is not None:
        os.environ[TAXONOMY_ENV] = str(taxonomy_file.resolve())
    packaged = uses_packaged_taxonomy()
    return Project(project_root, with_overrides(params, overrides), taxonomy, packaged)
