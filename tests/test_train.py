"""Training runs: the depth-only refit keeps the passage classifier and stores as arrays."""

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ForcecovError
from pipeline.modelstore import load_model, save_model
from pipeline.taxonomy import load_taxonomy
from pipeline.train import retrain_depth
from tests.conftest import depth_corpus, fast_params

TAX = load_taxonomy()


def test_a_depth_only_refit_keeps_the_classifier_and_round_trips_as_arrays(project, tmp_path):
    base = load_model(project / "models" / "vtest", TAX)
    assert base.depth is None or not base.depth.statuses  # trained without annotations
    corpus, labels = depth_corpus()
    params = fast_params().override("depth", min_positives=5, min_annotations=20)
    model = retrain_depth(base, corpus, labels, TAX, params, data_sha256="abc",
                          version="vdepth")
    assert model.depth is not None and model.depth.statuses
    assert model.classifier is base.classifier
    np.testing.assert_array_equal(model.thresholds, base.thresholds)
    assert model.meta["classifier_from"] == "vtest" and model.version == "vdepth"
    assert base.depth is None or not base.depth.statuses  # the base model is not changed
    # A classifier loaded from arrays is stored as arrays again, unchanged.
    folder = save_model(model, tmp_path, {}, make_current=False)
    assert (folder / "model.npz").is_file() and not (folder / "model.joblib").exists()
    again = load_model(folder, TAX)
    passages = pd.DataFrame({"text": ["We will introduce a safe house next year.",
                                      "Officers refer victims to the National Referral "
                                      "Mechanism using an app at every custody suite."],
                             "heading": ["", ""]})
    pd.testing.assert_frame_equal(again.predict(passages), model.predict(passages))
    np.testing.assert_allclose(again.predict(passages)[[f"p_{c}" for c in TAX.labels]],
                               base.predict(passages)[[f"p_{c}" for c in TAX.labels]])


def test_a_depth_only_refit_without_annotations_says_what_to_do(project):
    base = load_model(project / "models" / "vtest", TAX)
    corpus, _ = depth_corpus()
    corpus["subpoints"] = [[] for _ in range(len(corpus))]  # nothing any head could learn
    with pytest.raises(ForcecovError, match="label more passages"):
        retrain_depth(base, corpus, None, TAX, fast_params())
