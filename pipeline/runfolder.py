"""A scoring run's folder: what it holds, how a finished run is published into it, and
how a reader checks that it holds one complete run.

A run is written into a staging folder beside its destination (:func:`staging_folder`) and
moved in at the end (:func:`publish_run`), so the folder never mixes the files of two runs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compare import RunTables
    from .taxonomy import Taxonomy

# What a scoring run writes into its folder; only temporary files of these are its own.
RUN_OUTPUTS = ("passages.parquet", "coverage.csv", "coverage_matrix.csv", "practices.csv",
               "themes.csv", "documents.csv", "summary.json", "report.html")
# Written only when asked for (--compare-with, --profile); a run without them still removes
# an earlier run's, so the folder never mixes two runs.
OPTIONAL_OUTPUTS = ("changes.csv", "profile.txt")
# atomic_open's temporary names: ".<output>.<8 random characters>.tmp"
_OWN_TEMP = re.compile(r"^\.(?:" + "|".join(map(re.escape, RUN_OUTPUTS + OPTIONAL_OUTPUTS))
                       + r")\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(out_dir: Path) -> int:
    """Temporary files an interrupted run of ours left (never read; safe to delete). Other
    hidden ``.tmp`` files in the folder are not ours and are left alone."""
    n = 0
    for tmp in out_dir.glob(".*.tmp") if out_dir.is_dir() else []:
        if _OWN_TEMP.match(tmp.name):
            tmp.unlink(missing_ok=True)
            n += 1
    return n


RUN_FIGURES = "figures"
_STAGING = re.compile(r"^\.(?P<name>.+)\.run-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out_dir: Path) -> int:
    """Staging folders that killed runs into ``out_dir`` left beside it (their process is
    gone); a staging folder of a run still going is left alone."""
    import shutil

    n = 0
    parent = out_dir.parent
    for folder in parent.glob(f".{out_dir.name}.run-*") if parent.is_dir() else []:
        m = _STAGING.match(folder.name)
        if m and m["name"] == out_dir.name and not _pid_alive(int(m["pid"])):
            shutil.rmtree(folder, ignore_errors=True)
            n += 1
    return n


def publish_run(staging: Path, out_dir: Path, *, shared: bool = False) -> None:
    """Move a finished run from its staging folder into ``out_dir``.

    The old run's outputs go first, summary.json before the rest; the new ones come in with
    summary.json last. A kill at any point leaves outputs of one run only, and a folder
    without summary.json is an incomplete run that :func:`check_run` refuses. Files that are
    not outputs of a run (queues, notes) are left alone. Outputs quote documents, so they
    are private to the user (files 0600, folders 0700) unless ``shared``.
    """
    import os
    import shutil

    umask = os.umask(0)
    os.umask(umask)
    file_mode, dir_mode = (0o666 & ~umask, 0o777 & ~umask) if shared else (0o600, 0o700)
    if not out_dir.exists():
        out_dir.mkdir(parents=True, mode=dir_mode)
        os.chmod(out_dir, dir_mode)  # mkdir's mode is masked by the umask
    old = ["summary.json", *[n for n in RUN_OUTPUTS + OPTIONAL_OUTPUTS if n != "summary.json"],
           RUN_FIGURES]
    for name in old:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for name in reversed(old):
        source = staging / name
        if not source.exists():
            continue
        if source.is_dir():
            os.chmod(source, dir_mode)
            for f in source.rglob("*"):
                os.chmod(f, dir_mode if f.is_dir() else file_mode)
        else:
            os.chmod(source, file_mode)
        os.replace(source, out_dir / name)
    with contextlib.suppress(OSError):
        fd = os.open(out_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_run(run_dir: Path) -> str:
    """The run id of a complete scoring run folder, or :class:`ForcecovError` saying why not:
    no run there, a run interrupted while it was being published, or files of two runs."""
    import json

    from .errors import ForcecovError
    from .passagefile import RUN_ID_KEY, passage_file_metadata

    parquet, summary = Path(run_dir) / "passages.parquet", Path(run_dir) / "summary.json"
    if not parquet.is_file():
        raise ForcecovError(
            f"{run_dir}: no passages.parquet; run `forcecov score ... --out {run_dir}` first")
    if not summary.is_file():
        raise ForcecovError(f"{run_dir}: incomplete run (no summary.json: the run was stopped "
                            f"while its files were moved into place); run `forcecov score` again")
    try:
        run_id = str(json.loads(summary.read_text(encoding="utf-8")).get("run_id", ""))
    except (ValueError, AttributeError) as e:
        raise ForcecovError(f"{summary}: not valid JSON; run `forcecov score` again") from e
    parquet_id = passage_file_metadata(parquet)[RUN_ID_KEY]
    if run_id and parquet_id and run_id != parquet_id:
        raise ForcecovError(f"{run_dir}: summary.json and passages.parquet come from different "
                            "runs; run `forcecov score` again")
    return run_id


@contextlib.contextmanager
def staging_folder(out_dir: Path, *, shared: bool = False) -> Iterator[Path]:
    """A private staging folder beside ``out_dir`` (same file system), published into
    ``out_dir`` when the block succeeds and removed either way. Leftovers of killed runs
    into ``out_dir`` are cleared first."""
    import os
    import shutil
    import tempfile

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)
    remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.run-{os.getpid()}-",
                                    dir=out_dir.parent))  # 0700
    try:
        yield staging
        publish_run(staging, out_dir, shared=shared)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_previous_run(previous_run: Path | None, taxonomy: Taxonomy) -> RunTables | None:
    """An earlier run's tables to compare with (:mod:`pipeline.compare`), or None."""
    if previous_run is None:
        return None
    from .compare import load_run

    return load_run(previous_run, taxonomy)
