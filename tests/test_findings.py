"""The coverage and report stages' collector: evidence reduced batch by batch."""

import pandas as pd

from pipeline.config import ThemeParams
from pipeline.findings import EvidenceCollector
from pipeline.practices import practices_by_force, practices_by_row
from pipeline.taxonomy import load_taxonomy
from pipeline.themes import national_rows, themes

TAX = load_taxonomy()
TEXTS = [
    ("Kent", ["nrm"], "Our SPOC checks every NRM referral before it goes to the Single Competent "
                      "Authority."),
    ("Essex", ["nrm", "victim_support"], "The College of Policing has published guidance for "
                                         "first responders on the NRM."),
    ("Kent", ["investigation"], "Cases go to PIP2 detectives in the exploitation team."),
    ("unknown", ["force_systems"], "Guidance sits on the intranet page and in the app."),
    ("Surrey", ["force_systems"], "We rewrote the intranet page and added a pocket guide."),
    ("Surrey", [], "The weather was fine."),
]


def _scored(rows):
    return pd.DataFrame([{"passage_id": f"p{i}", "doc_id": f"d-{force}", "force": force,
                          "page": 1, "text": text, "labels": labels, "rec_refs": [], "echo": False,
                          "needs_review": False,
                          **{f"p_{c}": (0.9 if c in labels else 0.1) for c in TAX.labels}}
                         for i, (force, labels, text) in rows])


def test_rows_found_batch_by_batch_match_those_found_on_the_whole_evidence():
    collected = EvidenceCollector(TAX)
    rows = list(enumerate(TEXTS))
    collected.add(_scored(rows[:3]))
    collected.add(_scored(rows[3:]))
    evidence = collected.evidence()
    assert len(evidence) == 6 and collected.n_passages == 6
    assert collected.practices == practices_by_row(evidence, TAX)
    assert collected.national == national_rows(evidence, TAX).tolist()
    assert any(collected.practices) and any(collected.national)  # both have something found
    by_batch = practices_by_force(evidence, TAX, collected.practices)
    pd.testing.assert_frame_equal(by_batch, practices_by_force(evidence, TAX))
    national = pd.Series(collected.national, index=evidence.index, dtype=bool)
    pd.testing.assert_frame_equal(themes(evidence, TAX, ThemeParams(), national),
                                  themes(evidence, TAX, ThemeParams()))


def test_plotting_warmed_in_the_worker_then_the_figures_drawn_there(tmp_path):
    from pipeline.config import load_params
    from pipeline.coverage import coverage_from_evidence
    from pipeline.findings import figures_of, start_figures, warm_figures

    params = load_params()
    collected = EvidenceCollector(TAX)
    collected.add(_scored(enumerate(TEXTS)))
    documents = pd.DataFrame({"doc_id": [f"d-{f}" for f in ("Kent", "Essex", "Surrey")],
                              "force": ["Kent", "Essex", "Surrey"], "status": "ok"})
    cov = coverage_from_evidence(collected.evidence(), documents, TAX, params.coverage)
    warmed = warm_figures(params)
    assert warmed is not None
    pending = start_figures(cov, TAX, params)  # queued behind the warm-up, same worker
    figures = figures_of(pending, warmed)
    assert figures is not None and figures.heatmap.startswith(b"\x89PNG")
    assert warmed.result() is None
    # With no worker processes wanted, nothing is warmed and the figures are drawn here.
    from dataclasses import replace
    here = replace(params, ingest=replace(params.ingest, isolate=False))
    assert warm_figures(here) is None
    assert figures_of(start_figures(cov, TAX, here)).heatmap.startswith(b"\x89PNG")


def test_a_failing_report_stage_leaves_no_answer_for_the_worker_s_next_caller(
        monkeypatch, tmp_path):
    import pytest

    import pipeline.findings as findings
    from pipeline.config import load_params
    from pipeline.ingest import budget

    params = load_params()
    collected = EvidenceCollector(TAX)
    collected.add(_scored(enumerate(TEXTS)))

    def broken(*args, **kwargs):
        raise RuntimeError("themes broke")

    monkeypatch.setattr(findings, "themes", broken)
    with pytest.raises(RuntimeError, match="themes broke"):
        findings.write_findings(tmp_path, collected, [], model_version="m", run_id="r",
                                params=params, taxonomy=TAX,
                                warmed=findings.warm_figures(params))
    # The warm-up's and the figures' answers were dropped with their worker.
    # The same worker (same budget and priority) would otherwise answer with the warm-up's.
    assert budget.submit(abs, -3, timeout=10, max_memory_mb=params.ingest.max_memory_mb,
                         nice=params.ingest.worker_nice).result() == 3
