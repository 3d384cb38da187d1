import pandas as pd

from pipeline.config import CoverageParams
from pipeline.coverage import coverage, evidence_table, national_summary
from pipeline.practices import practices_by_force
from pipeline.records import DocumentResult
from pipeline.report import build_context, render_html
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()
HOSTILE = ('<script>alert(1)</script> see <a href="javascript:alert(2)">here</a> '
           'and our SPOC refers victims to the NRM ' + "x" * 1_000_000)


def _context():
    passages = pd.DataFrame([{"passage_id": "p0", "doc_id": "d1", "force": "Kent", "page": 3,
                              "text": HOSTILE, "rec_refs": [], "labels": ["nrm"], "echo": False,
                              **{f"p_{c}": (0.9 if c == "nrm" else 0.0) for c in TAX.labels}}])
    docs = [DocumentResult("d1", "/x/<b>evil</b>.pdf", "s", "Kent", "pdf", 3, 1, "ok", "")]
    cov = coverage(passages, pd.DataFrame([d.__dict__ for d in docs]), TAX, CoverageParams())
    ev = evidence_table(passages, TAX)
    summary = national_summary(cov, TAX, ["Kent"])
    summary.update(generated="now", model_version="v", n_documents=1, n_documents_error=0,
                   n_passages=1, n_echo=0, n_needs_review=0)
    return build_context(coverage=cov, evidence=ev, practices=practices_by_force(ev, TAX),
                         summary=summary, documents=docs, taxonomy=TAX, heatmap_b64="")


def test_hostile_passage_text_is_escaped_and_truncated():
    html = render_html(_context())
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
    assert "<b>evil</b>" not in html
    assert len(html) < 200_000  # the megabyte string was truncated for display


def test_report_has_heatmap_summary_and_practices():
    html = render_html(_context())
    assert 'id="heatmap"' in html
    assert "1 of 1 responding forces addressed" in html
    assert "SPOC" in html  # named practice counted for the force


def test_documents_read_by_ocr_say_so_with_their_confidence():
    context = _context()
    context["documents"] = [
        DocumentResult("d1", "/x/letter.pdf", "s", "Kent", "pdf", 3, 1, "ok", "").__dict__,
        DocumentResult("d2", "/x/scan.pdf", "s", "Kent", "pdf", 2, 4, "ok", "", ocr_pages=2,
                       ocr_confidence=91.6).__dict__]
    html = render_html(context)
    assert "2 pages, confidence 92" in html
    assert html.count("confidence 9") == 1 and "0 pages" not in html  # nothing for the letter


def test_gaps_a_force_states_are_a_finding_of_their_own():
    passages = pd.DataFrame([{"passage_id": "p0", "doc_id": "d1", "force": "Kent", "page": 2,
                              "text": "We do not yet have a dedicated modern slavery team.",
                              "rec_refs": [], "labels": ["investigation"], "echo": False,
                              **{f"p_{c}": (0.9 if c == "investigation" else 0.0)
                                 for c in TAX.labels}}])
    docs = [DocumentResult("d1", "/x/kent.pdf", "s", "Kent", "pdf", 3, 1, "ok", "")]
    cov = coverage(passages, pd.DataFrame([d.__dict__ for d in docs]), TAX, CoverageParams())
    ev = evidence_table(passages, TAX)
    from pipeline.coverage import stated_gaps

    summary = national_summary(cov, TAX, ["Kent"], stated_gaps(ev, TAX))
    assert summary["categories"]["investigation"]["forces_stating_gap"] == ["Kent"]
    summary.update(generated="now", model_version="v", n_documents=1, n_documents_error=0,
                   n_passages=1, n_echo=0, n_needs_review=0)
    html = render_html(build_context(coverage=cov, evidence=ev, practices=practices_by_force(
        ev, TAX), summary=summary, documents=docs, taxonomy=TAX, heatmap_b64=""))
    assert 'id="gaps"' in html and "1 force states a gap" in html
    assert "1 state a gap in their own words" in html and "kent.pdf, page 2" in html


def _coverage_table():
    passages = pd.DataFrame([{"passage_id": "p0", "doc_id": "d1", "force": "Kent", "page": 1,
                              "text": "Our SPOC refers victims to the NRM.", "rec_refs": [],
                              "labels": ["nrm"], "echo": False,
                              **{f"p_{c}": (0.9 if c == "nrm" else 0.0) for c in TAX.labels}}])
    docs = pd.DataFrame([{"doc_id": "d1", "force": "Kent", "status": "ok"}])
    return coverage(passages, docs, TAX, CoverageParams())


def test_figures_render_in_the_reading_worker_as_they_would_here():
    import os

    from pipeline.config import Params
    from pipeline.findings import figures_of, start_figures
    from pipeline.ingest import budget
    from pipeline.report import render_figures

    cov = _coverage_table()
    budget.stop_workers()
    pending = start_figures(cov, TAX, Params())
    assert [w for w in budget._workers if w.owner == os.getpid()]  # sent to a worker
    figures = figures_of(pending)
    budget.stop_workers()
    assert figures == render_figures(cov, TAX)
    assert figures.heatmap.startswith(b"\x89PNG")


def test_the_report_renders_its_figures_itself_when_the_worker_cannot(monkeypatch, caplog):
    from pipeline.config import Params
    from pipeline.findings import figures_of, start_figures
    from pipeline.ingest import budget

    def broken(*args, **kwargs):
        return budget.Pending(done=budget.Outcome(error=budget.BudgetExceeded("it crashed")))

    monkeypatch.setattr(budget, "submit", broken)
    assert figures_of(start_figures(_coverage_table(), TAX, Params())) is None
    assert "figures could not be rendered in a worker (it crashed)" in caplog.text
