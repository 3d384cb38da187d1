"""A scoring run is published whole: never files of two runs side by side, private by
default, and readers refuse an incomplete or mixed run folder."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pandas as pd
import pytest

from pipeline.errors import ForcecovError
from pipeline.runfolder import (
    OPTIONAL_OUTPUTS,
    RUN_OUTPUTS,
    check_run,
    publish_run,
    remove_stale_staging,
)


def _fake_run(folder, run_id, *, figures=True):
    """A run folder as score writes it (contents tagged with the run id)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for name in RUN_OUTPUTS:
        if name == "passages.parquet":
            table = pa.table({"passage_id": [run_id]}).replace_schema_metadata(
                {"forcecov_run_id": run_id})
            pq.write_table(table, folder / name)
        elif name == "summary.json":
            (folder / name).write_text(json.dumps({"run_id": run_id}))
        else:
            (folder / name).write_text(run_id)
    if figures:
        (folder / "figures").mkdir(exist_ok=True)
        (folder / "figures" / "heatmap.png").write_text(run_id)


def _run_ids(folder):
    ids = set()
    for name in RUN_OUTPUTS:
        path = folder / name
        if not path.exists():
            continue
        if name == "passages.parquet":
            ids.add(pd.read_parquet(path)["passage_id"][0])
        elif name == "summary.json":
            ids.add(json.loads(path.read_text())["run_id"])
        else:
            ids.add(path.read_text())
    return ids


def test_publish_replaces_the_old_run_and_keeps_other_files(tmp_path):
    out = tmp_path / "reports"
    _fake_run(out, "old")
    (out / "my_queue.csv").write_text("mine")
    _fake_run(tmp_path / "staging", "new")
    publish_run(tmp_path / "staging", out)
    assert _run_ids(out) == {"new"} and (out / "figures" / "heatmap.png").read_text() == "new"
    assert (out / "my_queue.csv").read_text() == "mine"
    assert check_run(out) == "new"


def test_an_earlier_runs_optional_outputs_go_with_it(tmp_path):
    """changes.csv and profile.txt of an earlier run would describe another run."""
    out = tmp_path / "reports"
    _fake_run(out, "old")
    for name in OPTIONAL_OUTPUTS:
        (out / name).write_text("old")
    _fake_run(tmp_path / "staging", "new")
    publish_run(tmp_path / "staging", out)
    assert not any((out / name).exists() for name in OPTIONAL_OUTPUTS)


@pytest.mark.parametrize("stop_after", [0, 1, 3, 7])
def test_a_run_stopped_while_publishing_never_mixes_two_runs(tmp_path, monkeypatch,
                                                             stop_after):
    out = tmp_path / "reports"
    _fake_run(out, "old")
    _fake_run(tmp_path / "staging", "new")
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        if len(calls) >= stop_after:
            raise KeyboardInterrupt  # the process is stopped here
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        publish_run(tmp_path / "staging", out)
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(_run_ids(out)) <= 1 and "old" not in _run_ids(out)
    with pytest.raises(ForcecovError, match="incomplete run|no passages.parquet"):
        check_run(out)


def test_files_of_two_runs_are_refused(tmp_path):
    _fake_run(tmp_path / "a", "one")
    (tmp_path / "a" / "summary.json").write_text(json.dumps({"run_id": "two"}))
    with pytest.raises(ForcecovError, match="different runs"):
        check_run(tmp_path / "a")


def test_outputs_are_private_unless_shared(tmp_path):
    _fake_run(tmp_path / "s1", "a")
    publish_run(tmp_path / "s1", tmp_path / "private")
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o700
    for path in [*(tmp_path / "private").iterdir(), tmp_path / "private/figures/heatmap.png"]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    _fake_run(tmp_path / "s2", "b")
    old = os.umask(0o022)
    try:
        publish_run(tmp_path / "s2", tmp_path / "shared", shared=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared" / "report.html").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "shared" / "figures").stat().st_mode) == 0o755


def test_atomic_writes_make_new_files_private_and_keep_an_owners_mode(tmp_path):
    from pipeline.atomic import write_text

    write_text(tmp_path / "new" / "queue.csv", "x")
    assert stat.S_IMODE((tmp_path / "new" / "queue.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    (tmp_path / "team.csv").write_text("x")
    os.chmod(tmp_path / "team.csv", 0o640)
    write_text(tmp_path / "team.csv", "y")
    assert stat.S_IMODE((tmp_path / "team.csv").stat().st_mode) == 0o640


def test_only_dead_runs_staging_folders_are_removed(tmp_path):
    out = tmp_path / "reports"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".reports.run-{dead.pid}-abc123").mkdir()
    (tmp_path / f".reports.run-{os.getpid()}-live99").mkdir()
    (tmp_path / ".other.run-1-x").mkdir()
    assert remove_stale_staging(out) == 1
    assert (tmp_path / f".reports.run-{os.getpid()}-live99").is_dir()
    assert (tmp_path / ".other.run-1-x").is_dir()


def test_a_killed_score_leaves_the_previous_run_whole(project, tmp_path, realistic_pdf):
    """Kill score mid-run into a folder that holds an older run: the old run is untouched
    (not a mix of new summary.json with an old report.html), and the next run cleans up."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(40):
        (folder / f"Avon and Somerset response {i}.pdf").write_bytes(
            realistic_pdf.read_bytes() + b"\n%" + str(i).encode())
    out = tmp_path / "run"
    env = {**os.environ, "FORCECOV_ROOT": str(project)}
    cmd = [sys.executable, "-m", "pipeline", "score", str(folder / "Avon and Somerset response "
                                                       "0.pdf"), "--out", str(out), "--no-cache"]
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    before = {name: (out / name).read_bytes() for name in RUN_OUTPUTS}
    first_id = check_run(out)
    proc = subprocess.Popen([*cmd[:4], str(folder), *cmd[5:]], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".run.run-*")):
        time.sleep(0.05)
    time.sleep(1.0)
    # Killed mid-run: the run has started staging and has not finished.
    assert list(tmp_path.glob(".run.run-*")) and proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {name: (out / name).read_bytes() for name in RUN_OUTPUTS} == before
    assert check_run(out) == first_id
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    assert check_run(out) != first_id
    assert not list(tmp_path.glob(".run.run-*"))
