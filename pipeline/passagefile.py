"""passages.parquet: scored passages on disk, written batch by batch and read back.

The classify stage writes it (into ``data/processed/`` in the DVC chain, or straight into a
run folder by ``forcecov score``); coverage, the report and the review loop read it. Its
columns are :func:`pipeline.records.scored_passage_schema`; its metadata names the run and
the model that scored it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .depth import depth_columns, with_depth_columns
from .records import scored_passage_schema

RUN_ID_KEY = "forcecov_run_id"
MODEL_VERSION_KEY = "forcecov_model_version"


class PassageWriter:
    """Appends scored passages to passages.parquet batch by batch; moved into place on close."""

    def __init__(self, path: Path, labels: list[str], subpoints: list[str], run_id: str = "",
                 model_version: str = ""):
        import os
        import tempfile

        import pyarrow.parquet as pq

        self.path = path
        self.subpoints = subpoints
        self.schema = scored_passage_schema(labels, depth_columns(subpoints)).with_metadata(
            {RUN_ID_KEY: run_id, MODEL_VERSION_KEY: model_version})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        self.writer = pq.ParquetWriter(self.tmp, self.schema)

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if len(frame):
            frame = with_depth_columns(frame, self.subpoints)
            table = pa.Table.from_pandas(frame[self.schema.names], schema=self.schema,
                                         preserve_index=False)
            self.writer.write_table(table)

    def close(self) -> None:
        import os

        self.writer.close()
        with open(self.tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        import contextlib
        import os

        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def passage_file_metadata(path: Path) -> dict[str, str]:
    """The run id and model version a passages.parquet was written with ("" if absent)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return {key: meta.get(key.encode(), b"").decode() for key in (RUN_ID_KEY, MODEL_VERSION_KEY)}


def copy_passage_file(source: Path, target: Path, *, run_id: str,
                      on_batch: Callable[[pd.DataFrame], None] | None = None) -> None:
    """``source`` copied to ``target`` batch by batch under a new run id (atomically), each
    batch also handed to ``on_batch``: a run folder's passages.parquet names its own run."""
    import pyarrow.parquet as pq

    from .atomic import atomic_open

    source_file = pq.ParquetFile(source)
    meta = dict(source_file.schema_arrow.metadata or {})
    meta[RUN_ID_KEY.encode()] = run_id.encode()
    schema = source_file.schema_arrow.with_metadata(meta)
    with atomic_open(target, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        for batch in source_file.iter_batches(batch_size=20_000):
            writer.write_batch(batch)
            if on_batch is not None:
                on_batch(batch.to_pandas())
