"""Saving and loading models: ``models/<version>/model.joblib`` + ``model.json`` (the card).

joblib files are pickles, and loading a pickle runs code. So a model is loaded only when
the sha256 of its file matches its card, only from the project's ``models/`` folder unless
the caller trusts it explicitly, and only when its labels and scikit-learn version fit.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import write_json, write_text
from .classify import TrainedModel
from .errors import ModelError
from .ingest import sha256_file
from .taxonomy import Taxonomy

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


def save_model(model: TrainedModel, models_dir: Path, card: dict[str, Any], *,
               make_current: bool = True) -> Path:
    """Write the artefact and its card; point ``models/current`` at it if asked."""
    import joblib

    folder = models_dir / model.version
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MODEL_FILE + ".tmp")
    joblib.dump(model, tmp, compress=3)
    tmp.replace(folder / MODEL_FILE)
    full_card = {
        "version": model.version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "labels": model.labels,
        "thresholds": {lab: float(t)
                       for lab, t in zip(model.labels, model.thresholds, strict=True)},
        "library_versions": library_versions(),
        **model.meta,
        **card,
        "model_sha256": sha256_file(folder / MODEL_FILE),
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
    """A model folder from a path (folder, model.joblib or model.json), else models/current.

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


def read_card(folder: Path) -> dict[str, Any]:
    try:
        card: dict[str, Any] = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        return card
    except FileNotFoundError as e:
        raise ModelError(f"{folder}: no model card ({CARD_FILE}); "
                         "refusing to load an unverified model") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"{folder / CARD_FILE}: the model card is not valid JSON") from e


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2] if x.isdigit())


def load_model(folder: Path, taxonomy: Taxonomy, *, models_dir: Path,
               trust: bool = False) -> TrainedModel:
    """Verify, then load. Raises :class:`ModelError` with the reason and what to do."""
    import joblib

    folder = folder.resolve()
    if not trust and models_dir.resolve() not in (folder, *folder.parents):
        raise ModelError(f"{folder}: models are loaded only from {models_dir} "
                         "(a model file is a pickle and runs code when loaded); "
                         "pass --trust-model if you trust this file")
    card = read_card(folder)
    artefact = folder / MODEL_FILE
    if not artefact.is_file():
        raise ModelError(f"{artefact}: model file missing")
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
                         "retrain with `forcecov train` (pickles do not move between versions)")
    model = joblib.load(artefact)
    if not isinstance(model, TrainedModel):
        raise ModelError(f"{artefact}: not a forcecov model")
    return model
