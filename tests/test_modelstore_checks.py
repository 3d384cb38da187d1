"""Every way a model folder can be wrong ends in a ModelError that says what to do."""

import json
import shutil

import joblib
import pytest

from pipeline.errors import ModelError
from pipeline.hashing import sha256_file
from pipeline.modelstore import (
    ARRAY_FILE,
    CARD_FILE,
    MODEL_FILE,
    current_version,
    load_model,
    read_card,
    resolve_model_dir,
    set_current,
)
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()


@pytest.fixture
def models(project, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(project / "models", folder)
    (folder / "current").write_text("vtest\n")
    return folder


def _edit_card(folder, **changes):
    card = json.loads((folder / CARD_FILE).read_text())
    card.update(changes)
    (folder / CARD_FILE).write_text(json.dumps(card))


def test_pointer_and_paths_resolve_or_explain(models, tmp_path):
    assert resolve_model_dir(models) == models / "vtest"
    assert resolve_model_dir(models, models / "vtest" / ARRAY_FILE) == models / "vtest"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert current_version(empty) is None
    with pytest.raises(ModelError, match="is missing; run `forcecov train`"):
        resolve_model_dir(empty)
    (empty / "current").write_text("\n")
    with pytest.raises(ModelError, match="is empty"):
        resolve_model_dir(models, empty)
    with pytest.raises(ModelError, match="no model card; cannot make it current"):
        set_current(models, "v-does-not-exist")


def test_damaged_cards_are_refused(models):
    folder = models / "vtest"
    (folder / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        read_card(folder)
    (folder / CARD_FILE).unlink()
    with pytest.raises(ModelError, match="refusing to load an unverified model"):
        load_model(folder, TAX)


def test_missing_file_foreign_labels_and_old_libraries_are_refused(models):
    folder = models / "vtest"
    _edit_card(folder, labels=list(reversed(TAX.labels)))
    with pytest.raises(ModelError, match="differ from the taxonomy's"):
        load_model(folder, TAX)
    _edit_card(folder, labels=TAX.labels, library_versions={"scikit-learn": "0.1.0"})
    with pytest.raises(ModelError, match="saved with scikit-learn 0.1.0"):
        load_model(folder, TAX)
    (folder / ARRAY_FILE).unlink()
    with pytest.raises(ModelError, match="model file missing"):
        load_model(folder, TAX)


def test_a_pickle_that_is_not_a_model_is_refused(models):
    folder = models / "vtest"
    (folder / ARRAY_FILE).unlink()
    joblib.dump({"not": "a model"}, folder / MODEL_FILE)
    _edit_card(folder, model_sha256=sha256_file(folder / MODEL_FILE))
    with pytest.raises(ModelError, match="not a forcecov model"):
        load_model(folder, TAX, trust=True)


def test_a_damaged_array_file_is_refused(models):
    folder = models / "vtest"
    (folder / ARRAY_FILE).write_bytes(b"PK\x03\x04 not an npz")
    _edit_card(folder, model_sha256=sha256_file(folder / ARRAY_FILE))
    with pytest.raises(ModelError, match="not a valid array model"):
        load_model(folder, TAX)
