"""Saving and loading models: ``models/<version>/model.npz`` (or ``model.joblib``) +
``model.json`` (the card).

The linear TF-IDF kinds, the default among them, are stored as plain arrays
(:mod:`pipeline.modelarrays`): loading them runs no code, wherever the folder is. Other kinds
(embeddings, spaCy, ensembles) are joblib pickles, and loading a pickle runs whatever code
it names; a card beside a pickle proves nothing about who wrote it, so a pickle is loaded
only when the caller passes ``trust=True`` (``--trust-model``) every time, in any folder.
Either file is loaded only when its sha256 matches the card (integrity, not trust) and its
labels and scikit-learn version fit.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from .atomic import write_json, write_text
from .classify import TrainedModel
from .errors import ModelError
from .hashing import sha256_file
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from .project import Project

ARRAY_FILE = "model.npz"
MODEL_FILE = "model.joblib"
CARD_FILE = "model.json"
POINTER = "current"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("scikit-learn", "numpy", "scipy", "spacy", "pandas", "joblib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def save_model(model: TrainedModel, models_dir: Path, card: Mapping[str, object], *,
               make_current: bool = True) -> Path:
    """Write the artefact (arrays when the kind allows, else a pickle) and its card; point
    ``models/current`` at it if asked."""
    import joblib

    from .modelarrays import ArrayModelError, save_arrays

    folder = models_dir / model.version
    folder.mkdir(parents=True, exist_ok=True)
    try:
        save_arrays(model, folder / ARRAY_FILE)
        artefact, stored_as = folder / ARRAY_FILE, "arrays"
    except ArrayModelError:
        tmp = folder / (MODEL_FILE + ".tmp")
        joblib.dump(model, tmp, compress=3)
        tmp.replace(folder / MODEL_FILE)
        artefact, stored_as = folder / MODEL_FILE, "joblib"
    full_card = {
        "version": model.version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "labels": model.labels,
        "thresholds": {lab: float(t)
                       for lab, t in zip(model.labels, model.thresholds, strict=True)},
        "fallback_ratio": model.fallback_ratio,
        "fallback_cues": list(model.fallback_cues),
        "library_versions": library_versions(),
        **model.meta,
        **card,
        "model_file": artefact.name,
        "model_format": stored_as,
        "model_sha256": sha256_file(artefact),
    }
    write_json(folder / CARD_FILE, full_card)
    if make_current:
        set_current(models_dir, model.version)
    return folder


def set_current(models_dir: Path, version: str) -> None:
    """``models/current`` is a text file naming the version (not a symlink)."""
    if not (models_dir / version / CARD_FILE).is_file():
        raise ModelError(f"{models_dir / version}: no model card; cannot make it current")
    write_text(models_dir / POINTER, version + "\n")


def current_version(models_dir: Path) -> str | None:
    pointer = models_dir / POINTER
    if not pointer.is_file():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def resolve_model_dir(models_dir: Path, path: Path | None = None) -> Path:
    """A model folder from a path (folder, model.npz, model.joblib or model.json), else
    models/current.

    A path may also be a models folder of its own (``forcecov train --out DIR`` writes
    ``DIR/<version>/`` and ``DIR/current``): it resolves to the version its pointer names.
    """
    if path is None:
        version = current_version(models_dir)
        if version is None:
            raise ModelError(f"no model found: {models_dir / POINTER} is missing; "
                             "run `forcecov train`")
        return models_dir / version
    path = Path(path)
    if path.is_file():
        return path.parent
    if not (path / CARD_FILE).is_file() and (path / POINTER).is_file():
        version = current_version(path)
        if version is None:
            raise ModelError(f"{path / POINTER} is empty; run `forcecov train --out {path}`")
        return path / version
    return path


class ModelCard(TypedDict, total=False):
    """model.json: what a model is and how it was made (written by :func:`save_model`;
    training adds its figures, ``forcecov promote`` its decision)."""

    version: str
    created: str
    labels: list[str]
    thresholds: dict[str, float]
    fallback_ratio: float | None
    fallback_cues: list[str]
    library_versions: dict[str, str]
    model_file: str
    model_format: str  # arrays | joblib
    model_sha256: str
    promotion: dict[str, object]


def read_card(folder: Path) -> ModelCard:
    """A model folder's card; :class:`ModelError` saying what to do when it is missing or
    broken (a model without a card is never loaded)."""
    try:
        card: ModelCard = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        return card
    except FileNotFoundError as e:
        raise ModelError(f"{folder}: no model card ({CARD_FILE}); "
                         "refusing to load an unverified model") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"{folder / CARD_FILE}: the model card is not valid JSON") from e


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2] if x.isdigit())


def load_model(folder: Path, taxonomy: Taxonomy, *, trust: bool = False) -> TrainedModel:
    """Verify, then load. Raises :class:`ModelError` with the reason and what to do.

    ``model.npz`` loads without running code. ``model.joblib`` is a pickle: it is refused
    unless ``trust`` is given, before a byte of it is read.
    """
    import joblib

    from .modelarrays import ArrayModelError, load_arrays

    folder = folder.resolve()
    card = read_card(folder)
    arrays = (folder / ARRAY_FILE).is_file()
    artefact = folder / (ARRAY_FILE if arrays else MODEL_FILE)
    if not artefact.is_file():
        raise ModelError(f"{folder}: model file missing (neither {ARRAY_FILE} nor {MODEL_FILE})")
    if not arrays and not trust:
        raise ModelError(f"{artefact}: a pickled model runs code when loaded, and a card "
                         "beside it proves nothing about who wrote it; pass --trust-model "
                         "only if you made this file, or retrain with `forcecov train`")
    actual = sha256_file(artefact)
    if actual != card.get("model_sha256"):
        raise ModelError(f"{artefact}: sha256 does not match its card "
                         "(file changed or tampered with); "
                         "retrain with `forcecov train` or restore the file")
    if list(card.get("labels", [])) != taxonomy.labels:
        raise ModelError(f"{folder}: model labels {card.get('labels')} differ from the taxonomy's "
                         f"{taxonomy.labels}; retrain with `forcecov train`")
    saved = card.get("library_versions", {}).get("scikit-learn", "")
    now = library_versions().get("scikit-learn", "")
    if saved and now and _major_minor(saved) != _major_minor(now):
        raise ModelError(f"{folder}: saved with scikit-learn {saved}, but {now} is installed; "
                         "retrain with `forcecov train`")
    if arrays:
        try:
            model = load_arrays(artefact)
        except ArrayModelError as e:
            raise ModelError(f"{artefact}: {e}; retrain with `forcecov train`") from e
    else:
        model = joblib.load(artefact)
    if not isinstance(model, TrainedModel):
        raise ModelError(f"{artefact}: not a forcecov model")
    if list(model.labels) != taxonomy.labels:
        raise ModelError(f"{artefact}: its labels differ from its card's; retrain")
    return model


def model_for(project: Project, model_path: Path | None = None, *, trust: bool = False,
              on_training: Callable[[], None] | None = None) -> TrainedModel:
    """The model named (else models/current), verified. A project with no model at all
    (a fresh clone without the shipped one) first trains the default, offline, after
    calling ``on_training`` so the caller can say why it waits."""
    models = project.paths.models
    if model_path is None and current_version(models) is None:
        from .train import train_and_save

        if on_training is not None:
            on_training()
        train_and_save(project.paths.labelled, models, project.taxonomy, project.params,
                       field_dir=project.paths.field)
    return load_model(resolve_model_dir(models, model_path), project.taxonomy, trust=trust)
