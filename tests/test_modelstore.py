import json
import shutil

import pytest

from pipeline.errors import ModelError
from pipeline.modelstore import current_version, load_model, read_card
from pipeline.taxonomy import load_taxonomy


@pytest.fixture
def model_copy(project, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(project / "models", models)
    return models


def test_card_records_what_a_reviewer_needs(project):
    card = read_card(project / "models" / "vtest")
    for key in ("version", "created", "labels", "thresholds", "library_versions", "model_sha256",
                "n_per_label"):
        assert key in card
    assert current_version(project / "models") == "vtest"
    pointer = project / "models" / "current"
    assert pointer.is_file() and not pointer.is_symlink()


def test_tampered_model_file_is_refused(model_copy):
    artefact = model_copy / "vtest" / "model.joblib"
    artefact.write_bytes(artefact.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="sha256 does not match"):
        load_model(model_copy / "vtest", load_taxonomy(), models_dir=model_copy)


def test_model_with_other_labels_is_refused(model_copy):
    card_path = model_copy / "vtest" / "model.json"
    card = json.loads(card_path.read_text())
    card["labels"] = ["nrm", "investigation"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="differ from the taxonomy"):
        load_model(model_copy / "vtest", load_taxonomy(), models_dir=model_copy)


def test_model_from_another_scikit_learn_is_refused(model_copy):
    card_path = model_copy / "vtest" / "model.json"
    card = json.loads(card_path.read_text())
    card["library_versions"]["scikit-learn"] = "0.24.2"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="scikit-learn 0.24.2"):
        load_model(model_copy / "vtest", load_taxonomy(), models_dir=model_copy)


def test_model_outside_models_folder_needs_trust(model_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(model_copy / "vtest", elsewhere)
    with pytest.raises(ModelError, match="--trust-model"):
        load_model(elsewhere, load_taxonomy(), models_dir=model_copy)
    trusted = load_model(elsewhere, load_taxonomy(), models_dir=model_copy, trust=True)
    assert trusted.version == "vtest"
