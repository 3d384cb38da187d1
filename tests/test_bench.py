"""The benchmark runs end to end on a tiny corpus and reports every figure it promises."""

import json
import shutil

import pytest

from pipeline.ingest import read_document
from scripts import bench
from tests.test_ocr import scanned_pdf


def test_generated_documents_are_realistic_and_unique(tmp_path):
    files = bench.generate(tmp_path / "docs", 11, 2)  # the 11th is a copy of the 10th, made unique
    assert [f.name for f in files] == [f"doc-{i:05d}.pdf" for i in range(11)]
    assert len({f.read_bytes() for f in files}) == 11
    assert files[10].read_bytes().startswith(files[9].read_bytes())
    doc = read_document(files[0])
    assert doc.force == "Kent" and doc.pages >= 1
    assert [b.text for b in doc.blocks if b.kind == "heading"][-2:] == ["Section 1", "Section 2"]
    assert "Reference 0-1-3." in doc.text
    assert bench.generate(tmp_path / "docs", 11, 2) == files  # existing files are kept


@pytest.mark.slow
def test_benchmark_prints_and_writes_its_figures(project, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FORCECOV_ROOT", str(project))
    full_rate = bench.classify_rate
    monkeypatch.setattr(bench, "classify_rate", lambda: full_rate(n=300))
    figures = tmp_path / "bench.json"
    argv = ["--docs", "2", "--pages", "1", "--rss-small", "1", "--rss-large", "2",
            "--workdir", str(tmp_path / "work"), "--json", str(figures)]
    ocr = shutil.which("tesseract") is not None
    if ocr:  # one small scanned letter stands in for data/raw/scanned
        scans = tmp_path / "scans"
        scans.mkdir()
        scanned_pdf(scans)
        argv += ["--ocr-samples", str(scans)]
    else:
        argv += ["--skip-ocr"]
    # The scoring processes' peak memory must be their own, not this process's: Linux
    # carries a parent's peak across exec into ru_maxrss. A ballast makes this one large.
    ballast = b"\x01" * (900 * 2**20)
    assert bench.main(argv) == 0
    del ballast
    out = capsys.readouterr().out
    for line in ("pdfium  jobs=1:", "pdfium  jobs=2:", "plumber jobs=1:", "--jobs 2 vs --jobs 1",
                 "raw pdfium:", "raw plumber:", "classify:", "2 vs 1 documents: peak RSS",
                 "2 documents vs the main corpus",
                 *(["OCR jobs=1: 2 scanned pages", "OCR jobs=2: 2 scanned pages"] if ocr else [])):
        assert line in out, line
    results = json.loads(figures.read_text())
    assert results["docs"] == 2 and results["pages_per_doc"] == 1
    pdfium = results["pdfium"]["1"]
    assert pdfium["pages"] == 2 and pdfium["passages"] > 0 and pdfium["peak_rss_mb"] > 0
    assert 0 < pdfium["main_rss_mb"] < 800 and 0 < pdfium["worker_rss_mb"] < 800
    assert set(pdfium["seconds"]) >= {"extract", "classify", "coverage", "report", "total"}
    for key in ("jobs2_speedup", "raw_pdfium_pages_per_s", "raw_plumber_pages_per_s",
                "pdfium_overhead", "plumber_overhead", "pdfium_wait_overhead", "jobs_speedup_bound",
                "classify_passages_per_s", "rss_ratio",
                "scale_rate_ratio", "scale_vs_main_rate"):
        assert results[key] > 0, key
    assert set(results["rss_mb"]) == {"1", "2"}
    if ocr:
        assert results["ocr"]["1"]["pages"] == 2 and results["ocr"]["2"]["pages_per_s"] > 0
