"""End-to-end tests of the real command line."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import REPO


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_extract_handles_a_folder_of_good_and_bad_files(tmp_path, bad_inputs, realistic_pdf):
    folder = bad_inputs["corrupt"].parent
    (folder / "good.pdf").write_bytes(realistic_pdf.read_bytes())
    out = tmp_path / "out"
    proc = run_cli("extract", folder, "--out", out)
    assert proc.returncode == 0, proc.stderr
    docs = pd.read_csv(out / "documents.csv")
    by_name = {p.split("/")[-1]: row
               for p, row in zip(docs["path"], docs.to_dict("records"), strict=True)}
    assert by_name["good.pdf"]["status"] == "ok"
    assert by_name["corrupt.pdf"]["status"] == "error"
    assert "encrypted" in by_name["encrypted.pdf"]["reason"]
    assert "--ocr" in by_name["scanned letter.pdf"]["reason"]
    assert by_name["renamed.pdf"]["status"] == "warning"
    assert by_name["latin1.txt"]["status"] == "warning"
    assert "zip bomb" in by_name["bomb.docx"]["reason"]
    assert by_name["empty.txt"]["reason"] == "empty file (0 bytes)"
    # Each bad file gets its own one-line message on stderr, naming the file.
    assert "corrupt.pdf: corrupt PDF" in proc.stderr
    passages = [json.loads(line) for line in (out / "passages.jsonl").read_text().splitlines()]
    good = [p for p in passages if p["source_path"].endswith("good.pdf")]
    assert good and all(p["page"] >= 1 for p in good)
    assert set(passages[0]) >= {"passage_id", "doc_id", "force", "source_path", "page",
                                "heading", "text", "rec_refs", "char_start", "char_end"}


def test_extract_exits_1_when_nothing_could_be_read(tmp_path):
    (tmp_path / "a.xyz").write_text("x")
    proc = run_cli("extract", tmp_path, "--out", tmp_path / "out")
    assert proc.returncode == 1
    assert "unsupported file type" in proc.stderr


def test_usage_errors_exit_2(tmp_path):
    proc = run_cli("extract", "--bogus-flag")
    assert proc.returncode == 2


def run_in_project(project, *args):
    import os

    env = {**os.environ, "FORCECOV_ROOT": str(project)}
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)


def test_score_writes_every_output_with_evidence(project, tmp_path, realistic_pdf, bad_inputs):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Avon and Somerset response.pdf").write_bytes(realistic_pdf.read_bytes())
    (folder / "broken.pdf").write_bytes(bad_inputs["corrupt"].read_bytes())
    out = tmp_path / "run"
    proc = run_in_project(project, "score", folder, "--out", out, "--profile")
    assert proc.returncode == 0, proc.stderr
    for name in ("coverage.csv", "coverage_matrix.csv", "passages.parquet", "documents.csv",
                 "summary.json", "report.html", "practices.csv", "figures/heatmap.png"):
        assert (out / name).is_file(), name
    cov = pd.read_csv(out / "coverage.csv")
    assert list(cov.columns) == ["level", "force", "doc_id", "category", "score", "addressed",
                                 "strength", "n_evidence", "n_gap", "top_evidence_ids", "pages",
                                 "subpoints"]
    assert (cov["score"] <= cov["strength"] + 1e-9).all()
    doc_rows = cov[cov.level == "document"]
    # The realistic report speaks to all five categories, with pages behind each.
    assert doc_rows["addressed"].all(), doc_rows[["category", "score"]]
    assert (doc_rows["n_evidence"] > 0).all() and doc_rows["pages"].notna().all()
    passages = pd.read_parquet(out / "passages.parquet")
    assert {"p_nrm", "labels", "echo", "confidence", "needs_review", "status",
            "p_status_gap", "p_specific", "q_2b", "q_2g"} <= set(passages.columns)
    # Sub-point heads read the evidence (this model has no status annotations to learn from).
    evidence = passages[passages["labels"].map(lambda ls: "nrm" in ls)]
    assert evidence["q_2f"].notna().all() and passages["status"].eq("").all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_forces_responded"] == 1 and "Kent" in summary["forces_not_responded"]
    # Stage timings with their throughput, and the profile --profile asked for.
    stages = summary["stages"]
    assert list(stages) == ["extract", "classify", "coverage", "report"]
    assert stages["extract"]["pages_per_s"] > 0 and stages["classify"]["passages_per_s"] > 0
    assert "(_score_into)" in (out / "profile.txt").read_text()
    assert "broken.pdf: corrupt PDF" in proc.stderr


def test_review_loop_end_to_end(project, tmp_path, realistic_pdf):
    """score -> review export -> analyst edits -> review import -> train -> promote."""
    import csv

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Avon and Somerset response.pdf").write_bytes(realistic_pdf.read_bytes())
    run = tmp_path / "run"
    assert run_in_project(project, "score", folder, "--out", run).returncode == 0
    queue = tmp_path / "queue.csv"
    proc = run_in_project(project, "review", "export", "--from", run, "--n", "4", "--out", queue)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(queue)))
    assert 1 <= len(rows) <= 4
    rows[0]["victim_support"] = "1"
    with open(queue, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    proc = run_in_project(project, "review", "import", queue, "--annotator", "analyst.b")
    assert proc.returncode == 0, proc.stderr
    reviewed = project / "data" / "labelled" / "reviewed.jsonl"
    assert len(reviewed.read_text().splitlines()) == len(rows)
    proc = run_in_project(project, "review", "import", queue, "--annotator", "analyst.b")
    assert proc.returncode == 0
    assert len(reviewed.read_text().splitlines()) == len(rows)  # a second import adds nothing
    proc = run_in_project(project, "train", "--no-current")
    assert proc.returncode == 0, proc.stderr
    proc = run_in_project(project, "promote", "--force", "--by", "tester")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "macro_f1" in proc.stdout
    version = (project / "models" / "current").read_text().strip()
    card = json.loads((project / "models" / version / "model.json").read_text())
    assert card["promotion"]["by"] == "tester"
    assert card["promotion"]["forced"] == (not card["promotion"]["gate_passed"])
    # Put the fixture's model back for other tests.
    (project / "models" / "current").write_text("vtest\n")
    reviewed.unlink()


def test_a_formula_file_name_reaches_documents_csv_as_text(tmp_path):
    name = '=HYPERLINK("attacker.example") +1.txt'
    (tmp_path / name).write_text("We refer every potential victim to the NRM.\n")
    proc = run_cli("extract", name, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    raw = (tmp_path / "out" / "documents.csv").read_text()
    cells = [c for line in raw.splitlines()[1:] for c in line.split(",")]
    assert not any(c.lstrip('"').startswith(("=", "+", "-", "@")) for c in cells), raw
    docs = pd.read_csv(tmp_path / "out" / "documents.csv")
    assert docs.loc[0, "path"] == "'" + name
    # JSONL keeps the raw text.
    first = json.loads((tmp_path / "out" / "passages.jsonl").read_text().splitlines()[0])
    assert first["source_path"] == name


def test_a_newline_in_a_file_name_cannot_forge_a_line_on_stderr(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.txt").write_text("We refer every potential victim to the NRM.\n")
    (tmp_path / "in" / "x\nerror forged.pdf: corrupt PDF.txt").write_bytes(b"")
    proc = run_cli("extract", tmp_path / "in", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert not any(ln.startswith("error forged") for ln in lines), proc.stderr
    assert any("x\\nerror forged.pdf" in ln for ln in lines), proc.stderr


def test_a_folder_tree_someone_else_prepared_is_never_the_project_root(tmp_path):
    """Run forcecov inside a folder with its own params.yaml, pipeline/ and a planted pickle
    in models/current (with a matching card): the root is the installed package's project,
    printed with -v, and the planted pickle never runs."""
    import json
    import os

    import joblib

    from pipeline.hashing import sha256_file

    planted = tmp_path / "shared-drive"
    (planted / "pipeline").mkdir(parents=True)
    (planted / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (planted / "models" / "vplant").mkdir(parents=True)
    marker = tmp_path / "code-ran.marker"
    joblib.dump(_Planted(str(marker)), planted / "models" / "vplant" / "model.joblib")
    card = json.loads((REPO / "models" / (REPO / "models" / "current").read_text().strip()
                       / "model.json").read_text())
    card.update(version="vplant", model_file="model.joblib", model_format="joblib",
                model_sha256=sha256_file(planted / "models" / "vplant" / "model.joblib"))
    (planted / "models" / "vplant" / "model.json").write_text(json.dumps(card))
    (planted / "models" / "current").write_text("vplant\n")
    (planted / "Kent response.txt").write_text(
        "Kent Police\n\nEvery referral to the National Referral Mechanism is checked by the "
        "modern slavery coordinator before it is sent.\n")
    env = {k: v for k, v in os.environ.items() if k != "FORCECOV_ROOT"}
    # The installed command, as an analyst runs it (`python -m` would put the folder's own
    # pipeline/ first on sys.path, which is Python's behaviour, not ours).
    forcecov = str(Path(sys.executable).parent / "forcecov")
    proc = subprocess.run([forcecov, "-v", "score", "Kent response.txt",
                           "--out", str(tmp_path / "run")], cwd=planted, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"project root: {REPO.resolve()} (from the installed package's project)" in proc.stderr
    assert not marker.exists()
    proc = subprocess.run([forcecov, "--root", str(planted / "models"),
                           "score", "Kent response.txt"], cwd=planted, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "not a forcecov project (no params.yaml)" in proc.stderr
    proc = subprocess.run([forcecov, "--root", ".", "score",
                           "Kent response.txt", "--out", str(tmp_path / "run2")], cwd=planted,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "--trust-model" in proc.stderr
    assert not marker.exists()


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
