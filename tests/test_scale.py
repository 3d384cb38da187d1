"""Parallel, distributed, cached and resumed scoring give the same answers as a plain run."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.test_cli import run_in_project

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Twelve small response PDFs and DOCX files, generated in code."""
    from scripts.render import parse_source, render

    folder = tmp_path_factory.mktemp("many")
    forces = ["Kent", "Essex", "Surrey", "Sussex", "Dorset", "Durham", "Gwent", "Cheshire",
              "Norfolk", "Suffolk", "Cleveland", "Humberside"]
    for i, force in enumerate(forces):
        body = (f"# {force} Police response\n\nOfficers refer every potential victim to the NRM "
                f"and the SPOC checks referral {i}.\n\n## Victim care\n\n"
                f"The PCC commissions an advocacy service for survivors in {force}.\n\n"
                "- Investigations go to PIP2 detectives.\n- The intranet page has guidance.")
        output = "pdf" if i % 2 else "docx"
        src = parse_source(f"---\nforce: {force}\noutput: {output}\nmarking: OFFICIAL\n---\n{body}",
                           slug=force.lower())
        (folder / f"{force} response.{src.output}").write_bytes(render(src))
    return folder


def _outputs(run):
    cov = pd.read_csv(run / "coverage.csv").sort_values(["level", "force", "doc_id", "category"])
    cov = cov.reset_index(drop=True)
    passages = pd.read_parquet(run / "passages.parquet").sort_values("passage_id")
    passages = passages.reset_index(drop=True)
    return cov, passages.drop(columns=["source_path"])


def test_jobs_and_cache_give_identical_results(project, corpus_dir, tmp_path):
    base = tmp_path / "base"
    par = tmp_path / "par"
    assert run_in_project(project, "score", corpus_dir, "--out", base, "--no-cache").returncode == 0
    proc = run_in_project(project, "score", corpus_dir, "--out", par, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    again = run_in_project(project, "score", corpus_dir, "--out", par, "--jobs", "2")
    assert "(12 from cache)" in again.stdout
    for a, b in zip(_outputs(base), _outputs(par), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_dask_local_cluster_matches_the_local_run(project, corpus_dir, tmp_path):
    from dask.distributed import LocalCluster

    local = tmp_path / "local"
    proc = run_in_project(project, "score", corpus_dir, "--out", local, "--no-cache")
    assert proc.returncode == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        dist = tmp_path / "dask"
        proc = run_in_project(project, "score", corpus_dir, "--out", dist, "--no-cache",
                              "--backend", "dask", "--scheduler", cluster.scheduler_address)
        assert proc.returncode == 0, proc.stderr
    for a, b in zip(_outputs(local), _outputs(dist), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_interrupted_run_resumes_without_duplicates(project, corpus_dir, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for f in corpus_dir.iterdir():  # 24 documents, some of them the same file twice
        for k in range(2):
            suffix = b"" if f.suffix == ".docx" else b"\n%" + str(k).encode()
            (big / f"{k}-{f.name}").write_bytes(f.read_bytes() + suffix)
    run = tmp_path / "run"
    env = {**os.environ, "FORCECOV_ROOT": str(project)}
    command = [sys.executable, "-m", "pipeline", "score", str(big), "--out", str(run)]
    cache = project / "data" / "interim" / "cache"

    def cached() -> int:
        return sum(1 for _ in cache.rglob("*.json")) if cache.exists() else 0

    before = cached()  # the project's cache may hold other tests' documents already
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and cached() < before + 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    # Killed mid-way, nothing was published: outputs appear only when a run is complete. Its
    # half-written staging folder stays beside --out until the next run removes it.
    assert not (run / "summary.json").exists() and not (run / "coverage.csv").exists()
    assert list(tmp_path.glob(".run.run-*"))
    resumed = run_in_project(project, "score", big, "--out", run)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(tmp_path.glob(".run.run-*"))
    assert "from cache)" in resumed.stdout and "(0 from cache)" not in resumed.stdout
    passages = pd.read_parquet(run / "passages.parquet")
    assert passages["passage_id"].is_unique
    docs = pd.read_csv(run / "documents.csv")
    # the repeated DOCX files
    assert docs["reason"].fillna("").str.contains("identical to").sum() == 6
    assert not list(run.glob(".*.tmp"))
    clean = tmp_path / "clean"
    assert run_in_project(project, "score", big, "--out", clean, "--no-cache").returncode == 0
    assert len(pd.read_parquet(clean / "passages.parquet")) == len(passages)


def test_parallel_classification_matches_serial(project):
    from pipeline.config import load_params
    from pipeline.modelstore import load_model
    from pipeline.predict import predict_passages
    from pipeline.taxonomy import load_taxonomy

    model = load_model(project / "models" / "vtest", load_taxonomy())
    texts = [f"Passage {i}: officers refer victims to the NRM; PIP2 detectives investigate {i}."
             for i in range(1100)]
    passages = pd.DataFrame({"passage_id": [f"p{i}" for i in range(1100)], "text": texts,
                             "heading": ["Recommendation 3"] * 1100, "context": [""] * 1100})
    params = load_params(project / "params.yaml")
    serial = predict_passages(passages, model, params, jobs=1)
    parallel = predict_passages(passages, model, params, jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_only_temporary_files_of_our_own_outputs_are_cleared(tmp_path):
    from pipeline.runfolder import remove_stale_temp_files

    ours = [tmp_path / ".coverage.csv.ab12cd_9.tmp", tmp_path / ".passages.parquet.x1y2z3w4.tmp"]
    foreign = [tmp_path / ".notes.tmp", tmp_path / ".coverage.csv.tmp",
               tmp_path / ".my-draft.docx.abcdefgh.tmp"]
    for f in ours + foreign:
        f.write_text("x")
    assert remove_stale_temp_files(tmp_path) == 2
    assert not any(f.exists() for f in ours)
    assert all(f.exists() for f in foreign)


def test_a_cache_entry_written_by_other_code_is_never_read(tmp_path, monkeypatch):
    from pipeline import extractcache
    from pipeline.config import IngestParams, SegmentParams

    def entry_for(cache):
        return cache._file(tmp_path / "response.pdf", "ab" * 32)

    now = extractcache.ExtractCache(tmp_path, ingest=IngestParams(), seg=SegmentParams(),
                                    taxonomy=None, manifest=None)
    assert entry_for(now) == entry_for(extractcache.ExtractCache(
        tmp_path, ingest=IngestParams(), seg=SegmentParams(), taxonomy=None, manifest=None))
    # Same version and parameters, edited extraction code: another entry.
    monkeypatch.setattr(extractcache, "code_digest", lambda: "edited reader")
    edited = extractcache.ExtractCache(tmp_path, ingest=IngestParams(), seg=SegmentParams(),
                                       taxonomy=None, manifest=None)
    assert entry_for(edited) != entry_for(now)
