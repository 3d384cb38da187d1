import pandas as pd

from pipeline.config import PromoteParams
from pipeline.modelstore import load_model
from pipeline.promote import gate
from pipeline.taxonomy import load_taxonomy
from tests.conftest import small_corpus

TAX = load_taxonomy()


class _Shifted:
    """A classifier whose probabilities for one label are pushed below its threshold."""

    def __init__(self, inner, column):
        self.inner, self.column = inner, column

    def predict_proba(self, X):
        p = self.inner.predict_proba(X).copy()
        p[:, self.column] *= 0.2
        return p


def test_gate_passes_an_equal_model_and_blocks_a_worse_one(project):
    current = load_model(project / "models" / "vtest", TAX)
    frozen = small_corpus(15, seed=3)
    same = gate(current, current, frozen, TAX, PromoteParams())
    assert same.passed and same.table["ok"].all()
    import copy

    worse = copy.copy(current)
    worse.classifier = _Shifted(current.classifier, TAX.labels.index("victim_support"))
    result = gate(worse, current, frozen, TAX, PromoteParams())
    assert not result.passed
    assert any("f1_victim_support" in r for r in result.reasons)
    assert isinstance(result.table, pd.DataFrame)
    assert set(result.table.columns) >= {"metric", "current", "candidate"}
