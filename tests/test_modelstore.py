import json
import shutil

import pytest

from pipeline.errors import ModelError
from pipeline.hashing import sha256_file
from pipeline.modelstore import ARRAY_FILE, MODEL_FILE, current_version, load_model, read_card
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
    artefact = model_copy / "vtest" / ARRAY_FILE
    artefact.write_bytes(artefact.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="sha256 does not match"):
        load_model(model_copy / "vtest", load_taxonomy())


def test_model_with_other_labels_is_refused(model_copy):
    card_path = model_copy / "vtest" / "model.json"
    card = json.loads(card_path.read_text())
    card["labels"] = ["nrm", "investigation"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="differ from the taxonomy"):
        load_model(model_copy / "vtest", load_taxonomy())


def test_model_from_another_scikit_learn_is_refused(model_copy):
    card_path = model_copy / "vtest" / "model.json"
    card = json.loads(card_path.read_text())
    card["library_versions"]["scikit-learn"] = "0.24.2"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="scikit-learn 0.24.2"):
        load_model(model_copy / "vtest", load_taxonomy())


def test_array_model_loads_anywhere_without_running_code(model_copy, tmp_path):
    card = read_card(model_copy / "vtest")
    assert card["model_format"] == "arrays" and card["model_file"] == ARRAY_FILE
    assert not (model_copy / "vtest" / MODEL_FILE).exists()
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(model_copy / "vtest", elsewhere)
    assert load_model(elsewhere, load_taxonomy()).version == "vtest"


class _Payload:
    """Unpickling this creates a marker file: the proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("where", ["models", "elsewhere"])
def test_a_pickle_never_runs_without_trust_even_with_a_matching_card(model_copy, tmp_path,
                                                                    where):
    """A malicious model.joblib with a card whose sha256 matches, inside the project's own
    models/ or in a folder someone else prepared: refused, and the marker never appears."""
    import joblib

    folder = model_copy / "vtest" if where == "models" else tmp_path / "planted"
    if where == "elsewhere":
        shutil.copytree(model_copy / "vtest", folder)
    (folder / ARRAY_FILE).unlink()
    marker = tmp_path / "code-ran.marker"
    joblib.dump(_Payload(marker), folder / MODEL_FILE)
    card = json.loads((folder / "model.json").read_text())
    card["model_sha256"] = sha256_file(folder / MODEL_FILE)
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="--trust-model"):
        load_model(folder, load_taxonomy())
    assert not marker.exists()
