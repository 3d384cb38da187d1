"""Training runs: the depth-only refit keeps the passage classifier and stores as arrays."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.classifiers.cv import choose_fallback, labelled_frame
from pipeline.errors import ForcecovError
from pipeline.modelstore import load_model, read_card, save_model
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


def test_a_depth_only_refit_chooses_the_fallback_on_a_calibration_part_and_stores_it(
        project, tmp_path):
    base = load_model(project / "models" / "vtest", TAX)
    assert base.fallback_ratio is None  # the test project has no field set
    corpus, labels = depth_corpus()
    params = fast_params().override("depth", min_positives=5, min_annotations=20) \
        .override("thresholds", max_unlabelled=0.1, fallback_min_ratio=0.05)
    # Passages the classifier cannot place surely: one category's words, faintly.
    calibration = pd.DataFrame({"text": [f"Victims were mentioned in meeting {i}."
                                         for i in range(12)]})
    for c in TAX.labels:
        calibration[c] = int(c == "victim_support")
    model = retrain_depth(base, corpus, labels, TAX, params, version="vfall",
                          calibration=calibration)
    X, Y = labelled_frame(calibration, TAX)
    assert model.fallback_ratio == choose_fallback(Y, base.classifier.predict_proba(X),
                                                   base.thresholds, params.thresholds)
    assert model.fallback_ratio is not None
    assert retrain_depth(base, corpus, labels, TAX, params).fallback_ratio is None  # kept
    folder = save_model(replace(model, fallback_ratio=0.55), tmp_path, {}, make_current=False)
    assert load_model(folder, TAX).fallback_ratio == 0.55
    assert read_card(folder)["fallback_ratio"] == 0.55
