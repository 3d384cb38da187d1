"""The classifiers and their registry: shape, range, sense on clear cases, pickling, cloning,
the scikit-learn contract for every kind."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pipeline.classifiers import embeddings, registry
from pipeline.classifiers.ensemble import EnsembleClassifier
from pipeline.classifiers.tfidf import PassageClassifier
from pipeline.classify import label_matrix, model_frame
from pipeline.taxonomy import load_taxonomy
from tests.conftest import fast_params, small_corpus

# One unambiguous passage per category, in taxonomy label order.
CLEAR = {
    "force_systems": "Officers can open the modern slavery guidance page on the force intranet "
                     "and in the app on their mobile devices.",
    "nrm": "Every first responder is trained to spot the signs, make a National Referral "
           "Mechanism referral and complete the duty to notify.",
    "section45": "Custody sergeants record on every file whether the section 45 statutory "
                 "defence applies before the CPS makes a charging decision.",
    "investigation": "All modern slavery crimes are allocated to PIP2 detectives in the serious "
                     "and organised crime unit, with supervision by a detective inspector.",
    "victim_support": "The police and crime commissioner funds a charity that provides "
                      "accommodation and an advocate for survivors who decline the NRM.",
}

FITTED_KINDS = ["keywords", "spacy", "embeddings"]


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def data(taxonomy):
    corpus = small_corpus(per_voice=20)
    X = model_frame(corpus["text"], corpus["heading"], corpus["context"])
    return X, label_matrix(corpus, taxonomy)


@pytest.fixture(scope="module")
def clear_frame(taxonomy):
    assert list(CLEAR) == taxonomy.labels
    return model_frame(list(CLEAR.values()))


@pytest.fixture(scope="module", params=FITTED_KINDS)
def fitted(request, taxonomy, data):
    kind = request.param
    if not registry.available(kind):
        pytest.skip(f"{kind} is not installed (pip install -e '.[{kind}]')")
    X, Y = data
    return kind, registry.make(kind, taxonomy, fast_params()).fit(X, Y)


def test_predict_proba_shape_and_range(fitted, data, taxonomy):
    _, est = fitted
    X, _ = data
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), len(taxonomy.labels))
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()


def test_clear_passages_rank_highest_for_their_category(fitted, clear_frame, taxonomy):
    kind, est = fitted
    proba = est.predict_proba(clear_frame)
    right = []
    for j in range(len(taxonomy.labels)):
        others = np.delete(proba[:, j], j)
        right.append(bool(proba[j, j] > others.max()))
    assert sum(right) >= 4, (kind, dict(zip(taxonomy.labels, right, strict=True)), proba.round(3))


def test_joblib_round_trip_keeps_predictions(fitted, data, clear_frame, tmp_path):
    _, est = fitted
    X, _ = data
    path = tmp_path / "est.joblib"
    joblib.dump(est, path, compress=3)
    loaded = joblib.load(path)
    for frame in (X.head(40), clear_frame):
        np.testing.assert_array_equal(loaded.predict_proba(frame), est.predict_proba(frame))


def test_clone_gives_an_unfitted_copy_that_refits_the_same(fitted, data, clear_frame):
    _, est = fitted
    X, Y = data
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not [a for a in vars(copy) if a.endswith("_") and not a.startswith("__")]
    copy.fit(X, Y)
    np.testing.assert_allclose(copy.predict_proba(clear_frame), est.predict_proba(clear_frame),
                               atol=1e-6)


def test_keywords_match_whole_words_case_insensitively(taxonomy):
    est = registry.make("keywords", taxonomy).fit(model_frame(["x"]), None)
    frame = pd.DataFrame({
        "text": ["Our APP and the Intranet", "A happy application", "Section   45 applies"],
        "context": ["", "", ""],
    })
    hits = est.hits(frame)
    j_sys, j_s45 = taxonomy.labels.index("force_systems"), taxonomy.labels.index("section45")
    assert list(hits[:, j_sys]) == [2, 0, 0]
    assert list(hits[:, j_s45]) == [0, 0, 1]
    assert est.predict_proba(frame)[0, j_sys] == pytest.approx(0.75)


def test_keywords_read_the_context_too(taxonomy):
    est = registry.make("keywords", taxonomy).fit(model_frame(["x"]), None)
    frame = model_frame(["Done."], headings=["Section 45 defence"])
    assert est.predict_proba(frame)[0, taxonomy.labels.index("section45")] > 0


def test_make_kinds_and_availability(taxonomy, monkeypatch):
    assert registry.KINDS == ("keywords", "tfidf_lr", "tfidf_svm", "tfidf_lr_word",
                                "tfidf_svm_word", "spacy", "embeddings", "static",
                                "ensemble_svm_static", "ensemble_svm_word_static",
                                "ensemble_svm_embeddings")
    for kind in ("tfidf_lr", "tfidf_svm"):
        est = registry.make(kind, taxonomy, fast_params())
        assert isinstance(est, PassageClassifier) and est.linear == kind.removeprefix("tfidf_")
    assert registry.available("keywords") and registry.available("spacy")
    with pytest.raises(ValueError, match="unknown model kind"):
        registry.make("bert", taxonomy)
    ensemble = registry.make("ensemble_svm_static", taxonomy, fast_params())
    assert [type(m).__name__ for m in ensemble.members] == ["PassageClassifier",
                                                            "StaticEmbeddingClassifier"]
    monkeypatch.setattr(embeddings, "embeddings_available", lambda: False)
    assert not registry.available("embeddings")
    assert not registry.available("ensemble_svm_embeddings")
    assert registry.available("static")  # shipped in models/static, no extra needed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[embeddings\]'"):
        registry.make("embeddings", taxonomy)


def test_fit_refuses_a_label_matrix_of_the_wrong_shape(taxonomy, data):
    X, Y = data
    with pytest.raises(ValueError, match="one column per"):
        registry.make("spacy", taxonomy).fit(X, Y[:, :3])


def test_static_embeddings_learn_and_survive_a_joblib_round_trip(taxonomy, data, tmp_path):
    X, Y = data
    est = registry.make("static", taxonomy, fast_params()).fit(X, Y)
    proba = est.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    # It learns: on its own training passages the true labels score above the others.
    assert proba[Y == 1].mean() > proba[Y == 0].mean() + 0.2
    joblib.dump(est, tmp_path / "m.joblib")
    assert np.allclose(joblib.load(tmp_path / "m.joblib").predict_proba(X), proba)


def test_static_embeddings_refuse_weights_changed_since_fit(taxonomy, data):
    X, Y = data
    est = registry.make("static", taxonomy, fast_params()).fit(X, Y)
    est.static_sha256_ = "0" * 64
    with pytest.raises(ValueError, match="sha256 mismatch"):
        est.predict_proba(X)


def test_ensemble_is_the_weighted_mean_of_its_members(taxonomy, data):
    X, Y = data
    members = (registry.make("keywords", taxonomy), registry.make("static", taxonomy))
    ens = EnsembleClassifier(members, weights=(3.0, 1.0)).fit(X, Y)
    expected = (3 * ens.members_[0].predict_proba(X) + ens.members_[1].predict_proba(X)) / 4
    assert np.allclose(ens.predict_proba(X), expected)
    with pytest.raises(ValueError, match="one weight per member"):
        EnsembleClassifier(members, weights=(1.0,)).fit(X, Y)


@pytest.mark.parametrize("kind", registry.KINDS)
def test_every_kind_clones_and_refuses_to_predict_before_fit(kind, taxonomy, data):
    """The scikit-learn contract, kind by kind: clone gives equal parameters and an unfitted
    copy, and predicting before fit raises NotFittedError."""
    from sklearn.exceptions import NotFittedError

    if not registry.available(kind):
        pytest.skip(f"{kind} is not installed")
    X, _ = data
    est = registry.make(kind, taxonomy, fast_params())
    copy = clone(est)
    assert type(copy) is type(est)
    assert set(copy.get_params(deep=False)) == set(est.get_params(deep=False))
    with pytest.raises(NotFittedError):
        copy.predict_proba(X.head(3))


def test_tfidf_parameters_are_flat_so_a_grid_search_reaches_them(taxonomy):
    est = registry.make("tfidf_svm_word", taxonomy, fast_params())
    params = est.get_params()
    assert params["linear"] == "svm" and params["char_ngram_max"] == 0
    assert params["C"] == fast_params().model.C
    assert clone(est).set_params(C=0.5, min_df=1).get_params()["C"] == 0.5
    # Defaults are params.yaml's sections' defaults, not a second copy of them.
    assert PassageClassifier().feature_params() == type(fast_params().features)()


def test_the_echo_detector_refuses_to_predict_before_fit(taxonomy):
    from sklearn.exceptions import NotFittedError

    from pipeline.classifiers.echo import make_echo_detector

    detector = make_echo_detector(taxonomy, fast_params().echo)
    assert clone(detector).get_params() == detector.get_params()
    with pytest.raises(NotFittedError):
        detector.predict(["We refer victims to the NRM."])
