"""The stage chain: extract -> classify -> report writes the same run folder as `score`,
which composes the same stages in one process."""

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq

from pipeline.passagefile import MODEL_VERSION_KEY, passage_file_metadata
from pipeline.records import PASSAGE_COLUMNS
from pipeline.runfolder import check_run


def _cli(project, *args):
    env = {**os.environ, "FORCECOV_ROOT": str(project)}
    proc = subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_the_chain_writes_what_score_writes(project, tmp_path, realistic_pdf, realistic_docx):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "Kent Police response.pdf").write_bytes(realistic_pdf.read_bytes())
    (inputs / "Dorset Police response.docx").write_bytes(realistic_docx.read_bytes())
    (inputs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    _cli(project, "extract", inputs, "--out", tmp_path / "interim", "--no-cache")
    processed = tmp_path / "processed" / "passages.parquet"
    _cli(project, "classify", "--in", tmp_path / "interim" / "passages.jsonl", "--out", processed)
    assert passage_file_metadata(processed)[MODEL_VERSION_KEY] == "vtest"
    assert pq.read_schema(processed).names[:len(PASSAGE_COLUMNS)] == PASSAGE_COLUMNS
    chained = tmp_path / "chained"
    proc = _cli(project, "report", processed, "--documents",
                tmp_path / "interim" / "documents.csv", "--out", chained)
    assert "broken.pdf" in proc.stdout + proc.stderr  # the bad file is still reported
    scored = tmp_path / "scored"
    _cli(project, "score", inputs, "--out", scored, "--no-cache")

    for name in ("coverage.csv", "coverage_matrix.csv", "practices.csv", "themes.csv",
                 "documents.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(chained / name), pd.read_csv(scored / name))
    pd.testing.assert_frame_equal(pd.read_parquet(chained / "passages.parquet"),
                                  pd.read_parquet(scored / "passages.parquet"))
    # The run folder names its own run, not the processed file's, and the model behind it.
    summary = json.loads((chained / "summary.json").read_text())
    assert check_run(chained) == summary["run_id"] != check_run(scored)
    assert summary["model_version"] == "vtest"
    assert summary["n_passages"] == len(pd.read_parquet(processed)) > 0


def test_classify_still_takes_any_jsonl_of_passages(project, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "Victims are referred into the National "
                                  "Referral Mechanism by first responders.", "extra": 1}) + "\n")
    _cli(project, "classify", "--in", source, "--out", tmp_path / "out.jsonl")
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record["extra"] == 1 and set(record["probs"]) >= {"nrm", "section45"}


def test_evidence_collected_during_the_run_counts_as_coverage_not_extraction(
        project, tmp_path, monkeypatch):
    import time

    from pipeline import findings
    from pipeline.config import load_params
    from pipeline.modelstore import load_model
    from pipeline.score import run_score
    from pipeline.taxonomy import load_taxonomy

    tax = load_taxonomy()
    model = load_model(project / "models" / "vtest", tax)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "Kent Police response.txt").write_text(
        "Kent Police\n\nOur SPOC checks every NRM referral. Officers use the app.\n")
    original = findings.EvidenceCollector.add

    def slow_add(self, scored):
        time.sleep(1.5)
        original(self, scored)

    monkeypatch.setattr(findings.EvidenceCollector, "add", slow_add)
    out = run_score([inputs], tmp_path / "run", model=model, params=load_params(project /
                    "params.yaml"), taxonomy=tax)
    assert out.seconds["coverage"] >= 1.5 and out.seconds["extract"] < 1.5
    assert list(out.seconds)[:4] == ["extract", "classify", "coverage", "report"]
