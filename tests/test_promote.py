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


def test_the_gate_compares_depth_heads_and_blocks_a_candidate_that_lost_them(project):
    from dataclasses import replace

    from pipeline.config import DepthParams
    from pipeline.depthfit import fit_depth
    from tests.conftest import depth_corpus

    corpus, labels = depth_corpus()
    plain = replace(load_model(project / "models" / "vtest", TAX), depth=None)
    heads = fit_depth(corpus, labels, TAX, DepthParams(min_positives=5, min_annotations=20))
    with_heads = replace(plain, depth=heads)
    same = gate(with_heads, with_heads, corpus, TAX, PromoteParams(), labels)
    depth_rows = same.table[same.table["metric"].str.startswith("depth ")]
    assert same.passed and list(depth_rows["metric"]) == [
        "depth status, macro", "depth specificity, macro", "depth sub-points, macro"]
    assert (depth_rows["candidate"] > 0.5).all()
    lost = gate(plain, with_heads, corpus, TAX, PromoteParams(), labels)
    assert not lost.passed
    assert any(r.startswith("depth status, macro fell by") for r in lost.reasons)
    gained = gate(with_heads, plain, corpus, TAX, PromoteParams(), labels)
    assert gained.passed
    # Without annotations the gate compares the passage classifier alone, as before.
    unannotated = gate(plain, with_heads, corpus, TAX, PromoteParams())
    assert unannotated.passed
    assert not unannotated.table["metric"].str.startswith("depth ").any()
