"""Evaluation: frozen split, approaches on the same folds, leave one voice out, gold coverage."""

import json

import pandas as pd
import pytest

from pipeline.agreement import coverage_vs_gold
from pipeline.classifiers.cv import split_frozen
from pipeline.evaluate import run_evaluation
from pipeline.taxonomy import load_taxonomy
from pipeline.train import train
from tests.conftest import fast_params, small_corpus

TAX = load_taxonomy()


def _light_params():
    """Word n-grams and an uncalibrated logistic regression: seconds, not minutes."""
    params = fast_params().override("model", kind="tfidf_lr", calibration="none")
    return params.override("features", char_ngram_max=0)


def _coverage_run(folder, rows):
    """A scoring run's coverage.csv and documents.csv: rows of (file, category, addressed)."""
    folder.mkdir()
    files = sorted({f for f, _, _ in rows})
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(len(files))],
                         "path": [f"/in/{f}" for f in files]})
    doc_of = dict(zip(files, docs["doc_id"], strict=True))
    cov = pd.DataFrame([{"level": "document", "doc_id": doc_of[f], "category": c,
                         "addressed": a} for f, c, a in rows])
    cov = pd.concat([cov, cov.assign(level="force", doc_id="")])  # force rows are ignored
    cov.to_csv(folder / "coverage.csv", index=False)
    docs.to_csv(folder / "documents.csv", index=False)
    return folder


def test_coverage_agreement_counts_false_positives_and_negatives(tmp_path):
    run = _coverage_run(tmp_path / "run", [("a.pdf", "nrm", True), ("a.pdf", "section45", False),
                                           ("b.docx", "nrm", True), ("b.docx", "section45", True)])
    gold = tmp_path / "gold.csv"
    pd.DataFrame([{"file": "a.pdf", "category": "nrm", "addressed": 1},
                  {"file": "a.pdf", "category": "section45", "addressed": 1},
                  {"file": "b.docx", "category": "nrm", "addressed": 0},
                  {"file": "b.docx", "category": "section45", "addressed": 1},
                  {"file": "unscored.pdf", "category": "nrm", "addressed": 1}]).to_csv(gold,
                                                                                  index=False)
    table = coverage_vs_gold(run, gold).set_index("category")
    assert list(table.index) == ["nrm", "section45", "overall"]
    assert table.loc["nrm", "n"] == 2 and table.loc["nrm", "agreement"] == 0.5
    assert table.loc["nrm", "false_positives"] == 1 and table.loc["nrm", "false_negatives"] == 0
    assert table.loc["section45", "false_negatives"] == 1
    assert table.loc["overall", "n"] == 4 and table.loc["overall", "agreement"] == 0.5


def test_coverage_agreement_needs_matching_file_names(tmp_path):
    run = _coverage_run(tmp_path / "run", [("a.pdf", "nrm", True)])
    gold = tmp_path / "gold.csv"
    pd.DataFrame([{"file": "other.pdf", "category": "nrm", "addressed": 1}]).to_csv(gold,
                                                                                  index=False)
    with pytest.raises(ValueError, match="match"):
        coverage_vs_gold(run, gold)


def test_full_evaluation_writes_metrics_tables_and_plots(tmp_path):
    corpus = small_corpus(20)
    params = _light_params()
    model = train(corpus, TAX, params, version="veval").model
    run = _coverage_run(tmp_path / "run", [("a.pdf", "nrm", True),
                                           ("a.pdf", "investigation", False)])
    pd.DataFrame([{"file": "a.pdf", "category": "nrm", "addressed": 1},
                  {"file": "a.pdf", "category": "investigation", "addressed": 0}]).to_csv(
        run / "gold_coverage.csv", index=False)
    out = tmp_path / "eval"
    result = run_evaluation(model, corpus, TAX, params, out, compare_kinds=["keywords", "tfidf_lr"],
                            lovo=True, coverage_run=run)
    tables = result.pop("tables")
    assert result["model_version"] == "veval" and result["n_eval"] > 0
    assert 0 <= result["macro_f1"] <= 1 and set(result["per_label"]) == set(TAX.labels)
    assert 0 <= result["echo"]["recall"] <= 1 and result["echo"]["n_restated"] > 0
    # Approaches on the same folds: one row each, with speed and calibration.
    comparison = tables["comparison"].set_index("approach")
    assert list(comparison.index) == ["keywords", "tfidf_lr"]
    assert {f"f1_{lab}" for lab in TAX.labels} | {"macro_f1", "ece", "passages_per_s"} <= set(
        comparison.columns)
    assert (comparison["macro_f1"].between(0, 1)).all()
    # Leave one voice out: every voice is a test set once.
    lovo = tables["lovo"]
    assert sorted(lovo["voice"]) == sorted(corpus["voice"].unique())
    # ... and exactly once: the non-frozen passages, split by voice, with no passage lost.
    assert lovo["n"].sum() == len(split_frozen(corpus, params)[0])
    assert result["lovo_worst_macro_f1"] == pytest.approx(lovo["macro_f1"].min())
    assert result["lovo_mean_macro_f1"] == pytest.approx(lovo["macro_f1"].mean())
    assert result["coverage_agreement"]["overall"] == 1.0
    written = json.loads((out / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result))
    for name in ("comparison.csv", "lovo.csv", "coverage_agreement.csv", "plots/calibration.png",
                 "plots/calibration.csv", "plots/per_category.csv"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "calibration.png").read_bytes().startswith(b"\x89PNG")


def _fake_run(folder, docs, passages, coverage):
    """A scoring run folder with just what the scanned comparison reads."""
    folder.mkdir()
    pd.DataFrame(docs).to_csv(folder / "documents.csv", index=False)
    pd.DataFrame(coverage).to_csv(folder / "coverage.csv", index=False)
    pd.DataFrame(passages).to_parquet(folder / "passages.parquet")
    return folder


def test_character_error_rate_ignores_line_breaks_and_counts_edits():
    from pipeline.agreement import character_error_rate

    assert character_error_rate("Modern slavery\nteam", "Modern  slavery team") == 0.0
    assert character_error_rate("abcdefghij", "abcdefghiX") == pytest.approx(0.1)
    assert character_error_rate("abcdefghij", "") == 1.0


def test_scanned_documents_are_compared_with_their_text_twins(tmp_path):
    from pipeline.agreement import scanned_vs_twins

    docs = [{"doc_id": "t", "path": "data/raw/Kent.pdf", "status": "ok", "reason": "",
             "pages": 2, "n_passages": 2, "ocr_pages": 0, "ocr_confidence": None},
            {"doc_id": "s", "path": "data/raw/scanned/Kent (scanned).pdf", "status": "ok",
             "reason": "", "pages": 2, "n_passages": 3, "ocr_pages": 2, "ocr_confidence": 91.0}]
    passages = [{"doc_id": "t", "char_start": 0, "text": "The NRM team checks referrals."},
                {"doc_id": "t", "char_start": 40, "text": "Victims are supported."},
                {"doc_id": "s", "char_start": 0, "text": "The NRM tearn checks referrals."},
                {"doc_id": "s", "char_start": 40, "text": "Victims are supported."}]
    coverage = [{"level": "document", "doc_id": d, "category": c, "score": sc, "addressed": a,
                 "subpoints": sp}
                for d, c, sc, a, sp in [("t", "nrm", 0.9, True, "2b"),
                                        ("s", "nrm", 0.8, True, "2b"),
                                        ("t", "section45", 0.1, False, None),
                                        ("s", "section45", 0.7, True, "2c")]]
    run = _fake_run(tmp_path / "run", docs, passages, coverage)
    gold = tmp_path / "gold.csv"
    pd.DataFrame([{"file": "Kent (scanned).pdf", "category": c, "addressed": a,
                   "twin": "Kent.pdf", "dpi": 300} for c, a in (("nrm", 1), ("section45", 1))]
                 ).to_csv(gold, index=False)
    table = scanned_vs_twins(run, gold).set_index("file")
    row = table.loc["Kent (scanned).pdf"]
    assert row["cer"] == pytest.approx(2 / 53, abs=1e-3)  # "m" read as "rn": two edits
    assert row["agree_twin"] == 0.5 and row["agree_gold"] == 1.0
    assert row["same_subpoints"] == 0.5 and row["score_gap"] == pytest.approx(0.35)
    assert (row["passages"], row["passages_twin"]) == (3, 2)
    assert table.loc["overall", "cells"] == 2

    missing = pd.read_csv(gold).assign(twin="Surrey.pdf")
    missing.to_csv(gold, index=False)
    with pytest.raises(ValueError, match="no scored document named 'Surrey.pdf'.*--ocr"):
        scanned_vs_twins(run, gold)


def test_compare_scores_each_approach_with_the_one_out_of_fold_function(monkeypatch):
    """evaluate.compare times the folds through cv.out_of_fold_proba, not a copy of it."""
    import pipeline.evaluate as evaluate

    calls = []
    real = evaluate.out_of_fold_proba

    def counting(estimator, X, Y, folds, **kwargs):
        calls.append(type(estimator).__name__)
        return real(estimator, X, Y, folds, **kwargs)

    monkeypatch.setattr(evaluate, "out_of_fold_proba", counting)
    table = evaluate.compare(small_corpus(8), TAX, _light_params(), ["keywords"])
    assert calls == ["KeywordClassifier"]
    assert list(table["approach"]) == ["keywords"] and table.loc[0, "train_seconds"] > 0


def test_the_model_itself_is_scored_on_the_field_test_part_as_it_ships(tmp_path):
    from dataclasses import replace

    corpus = small_corpus(20)
    params = _light_params()
    model = train(corpus, TAX, params, version="vfield").model
    field = small_corpus(3).head(40)
    field = field.assign(genre="news", part=["calibration", "test"] * (len(field) // 2))
    test = field[field["part"] == "test"]
    plain = run_evaluation(model, corpus, TAX, params, tmp_path / "a", field=field)
    assert plain["field_model"]["n"] == len(test)
    assert 0 <= plain["field_model"]["macro_f1"] <= 1
    assert list(plain["tables"]["field_model"]["category"]) == TAX.labels
    assert "field" not in plain["tables"]  # approaches are trained only when asked
    # A fallback that labels everything leaves no labelled passage without a label.
    eager = run_evaluation(replace(model, fallback_ratio=1e-9, fallback_cues=()), corpus, TAX,
                           params,
                           tmp_path / "b", field=field)
    assert eager["field_model"]["unlabelled"] == 0.0
