"""Array models predict exactly what the fitted scikit-learn objects predict, and loading
them never unpickles."""

import numpy as np
import pandas as pd
import pytest

from pipeline.classifiers.echo import make_echo_detector
from pipeline.classifiers.tfidf import PassageClassifier
from pipeline.classify import TrainedModel, model_frame
from pipeline.config import EchoParams
from pipeline.modelarrays import ArrayModelError, load_arrays, save_arrays, to_arrays
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()

TEXTS = [
    "Our intranet page gives first responders the referral form and contacts.",
    "Officers record every referral to the National Referral Mechanism on the system.",
    "The statutory defence under section 45 is considered before any charge.",
    "Detectives trained to PIP2 investigate every modern slavery crime.",
    "Victim navigators support survivors before and after a referral.",
    "The custody record flags a possible victim of human trafficking.",
    "Partner agencies help victims of exploitation find safe housing.",
    "A detective inspector reviews modern slavery investigations weekly.",
    "Prosecutors and officers check whether the section 45 defence applies.",
    "The duty to notify is met through the online referral portal.",
    "We fund advocates for survivors of modern slavery.",
    "The app on officers' mobile devices links to the guidance page.",
]


def _fitted(linear: str, calibration: str) -> TrainedModel:
    Y = np.zeros((len(TEXTS) * 3, len(TAX.labels)), dtype=int)
    texts = TEXTS * 3
    keys = ["intranet", "Referral Mechanism", "section 45", "PIP2", "navigators"]
    for i, t in enumerate(texts):
        for j, key in enumerate(keys):
            Y[i, j] = int(key in t or (j == 4 and "survivors" in t) or (j == 3 and "investig" in t)
                          or (j == 0 and ("system" in t or "app " in t)))
    X = model_frame(texts, [""] * len(texts), [f"heading {i % 3}" for i in range(len(texts))])
    clf = PassageClassifier(tuple(TAX.labels), linear, min_df=1,
                            calibration=calibration).fit(X, Y)
    echo = make_echo_detector(TAX, EchoParams()).fit(texts)
    return TrainedModel(TAX.labels, clf, np.linspace(0.3, 0.6, len(TAX.labels)), echo, "va")


@pytest.mark.parametrize(("linear", "calibration"), [("svm", "sigmoid"), ("svm", "isotonic"),
                                                     ("lr", "none")])
def test_array_model_predicts_exactly_as_the_fitted_model(tmp_path, linear, calibration):
    model = _fitted(linear, calibration)
    save_arrays(model, tmp_path / "model.npz")
    loaded = load_arrays(tmp_path / "model.npz")
    passages = pd.DataFrame({"text": TEXTS + ["Recommendation 2: forces should review.",
                                              "Nothing about the topic at all here."],
                             "heading": ["h"] * (len(TEXTS) + 2)})
    X = model_frame(passages["text"], passages["heading"])
    np.testing.assert_allclose(loaded.classifier.predict_proba(X),
                               model.classifier.predict_proba(X), atol=1e-9)
    expected, got = model.predict(passages), loaded.predict(passages)
    assert got["labels"].tolist() == expected["labels"].tolist()
    assert got["echo"].tolist() == expected["echo"].tolist()
    assert loaded.labels == model.labels and loaded.version == "va"


def test_an_object_array_is_refused_not_unpickled(tmp_path):
    """np.load with allow_pickle=False: an object array in the file is an error."""
    path = tmp_path / "model.npz"
    np.savez(path, layout=np.array(["x", object()], dtype=object))
    with pytest.raises(ArrayModelError, match="not a valid array model"):
        load_arrays(path)


def test_models_that_need_code_are_not_stored_as_arrays():
    model = _fitted("svm", "sigmoid")
    assert "coef" in to_arrays(model)
    model.classifier = object()
    with pytest.raises(ArrayModelError, match="not a fitted TF-IDF linear classifier"):
        to_arrays(model)


def test_a_keyword_model_is_stored_as_arrays_and_predicts_the_same(tmp_path):
    """The bootstrap for a new taxonomy needs no --trust-model either."""
    from pipeline.classifiers.keywords import KeywordClassifier

    model = _fitted("svm", "sigmoid")
    model.classifier = KeywordClassifier(tuple(TAX.labels),
                                         tuple(c.keywords for c in TAX.categories),
                                         decay=0.4).fit(None)
    save_arrays(model, tmp_path / "model.npz")
    assert "coef" not in to_arrays(model)
    loaded = load_arrays(tmp_path / "model.npz")
    assert isinstance(loaded.classifier, KeywordClassifier) and loaded.classifier.decay == 0.4
    passages = pd.DataFrame({"text": TEXTS, "heading": ["h"] * len(TEXTS)})
    expected, got = model.predict(passages), loaded.predict(passages)
    assert got["labels"].tolist() == expected["labels"].tolist()
    assert any(got["labels"].map(len))  # the keywords do match something
