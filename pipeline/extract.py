"""The extract stage over a batch: files -> documents.csv rows and passages.

One document never stops the batch: every input ends as a :class:`DocumentResult` with
status ok, warning or error and a one-line reason.
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import IngestParams, SegmentParams
from .errors import IngestError
from .extractcache import ExtractCache
from .hashing import sha256_file
from .ingest import budget, read_document
from .ingest.budget import BudgetExceeded
from .inputfiles import find_inputs
from .records import DocumentResult, Extracted, write_documents_csv
from .segment import segment, sentencizer
from .taxonomy import Taxonomy

log = logging.getLogger(__name__)

# Files the reading worker may run ahead of the caller: enough to keep it busy while the
# caller classifies a batch (about 2,000 passages, some 30 documents), few enough that their
# answers, spooled to temporary files, stay small.
READ_AHEAD = 32
# With several reading workers, each queues at most this many bytes of files, so that a
# handful of big documents (scans: megabytes each, a minute of OCR) is shared out between
# them instead of queued behind one.
READ_AHEAD_BYTES_PER_WORKER = 2 * 1024 * 1024
# Files per chunk when reading workers of our own extract (no joblib pool): a chunk's cached
# documents are loaded together, and the workers' read-ahead stops at a chunk's end.
SEQUENTIAL_CHUNK = 512


def extract_one(path: Path, *, ingest: IngestParams, seg: SegmentParams,
                taxonomy: Taxonomy | None = None,
                manifest: dict[str, str] | None = None) -> Extracted:
    """Read and segment one file. Never raises: failures become an error row.

    With ``ingest.isolate`` (the default) the work runs in a worker process, within
    ``ingest.timeout_seconds`` and ``ingest.max_memory_mb``: a breach, or a crash of the
    reader, is an error row like any other, and the next file gets a fresh worker.
    """
    return next(extract_in_order([path], ingest=ingest, seg=seg, taxonomy=taxonomy,
                                 manifest=manifest))


def extract_in_order(paths: Iterable[Path], *, ingest: IngestParams, seg: SegmentParams,
                     taxonomy: Taxonomy | None = None, manifest: dict[str, str] | None = None,
                     max_bytes: float = float("inf")) -> Iterator[Extracted]:
    """:func:`extract_one` for each path, in order. With ``ingest.isolate``, the worker reads
    up to :data:`READ_AHEAD` files beyond the one just yielded while the caller works on it,
    so reading and classifying overlap even with one job. ``paths`` is read as the worker
    has room, so it may be a generator that hands out work; ``max_bytes`` caps the size of
    the files queued at once (one is always queued)."""
    valid = None
    if taxonomy is not None:
        valid = set(taxonomy.subpoints) | {c.recommendation for c in taxonomy.categories}
    if not ingest.isolate:
        for path in paths:
            try:
                yield _read_and_segment(path, ingest, seg, valid, manifest)
            except MemoryError:
                yield _error_row(path, "ran out of memory (no budget: ingest.isolate is false)")
        return
    _warm_up()
    sent: collections.deque[Path] = collections.deque()

    def calls() -> Iterator[tuple[Any, ...]]:
        for path in paths:
            sent.append(path)
            yield path, ingest, seg, valid, manifest

    outcomes = budget.run_each(_read_and_segment, calls(), timeout=ingest.timeout_seconds,
                               max_memory_mb=ingest.max_memory_mb, ahead=READ_AHEAD,
                               cost=_file_size, max_cost=max_bytes, nice=ingest.worker_nice)
    for outcome in outcomes:
        path = sent.popleft()  # outcomes come back in the order the calls were taken
        try:
            yield outcome.get()
        except BudgetExceeded as e:
            yield _error_row(path, e.reason)
        except Exception as e:  # e.g. no worker could be forked (EAGAIN): still one row
            log.error("no worker for %s: %s", path, e)
            yield _error_row(path, f"internal error ({type(e).__name__}: {str(e)[:100]}); "
                                   "please report this file")


def _file_size(args: tuple[Any, ...]) -> float:
    """The size of a reading call's file (its first argument); 0 when it cannot be read."""
    try:
        return float(Path(args[0]).stat().st_size)
    except OSError:
        return 0.0


def _read_and_segment(path: Path, ingest: IngestParams, seg: SegmentParams,
                      valid: set[str] | None, manifest: dict[str, str] | None) -> Extracted:
    """The work of :func:`extract_one`, in whichever process runs it. MemoryError escapes:
    the worker reports it as a breach of the memory budget."""
    try:
        doc = read_document(path, params=ingest, manifest=manifest)
        if any(len(b.text) > 2 * seg.max_words and len(b.text.split()) > seg.max_words
               for b in doc.blocks):
            # A paragraph to split at sentences: the splitter is built once per process and
            # kept, so it is not this document's memory (spaCy maps ~700 MB with torch).
            budget.outside_budget(sentencizer)
        passages = segment(doc, params=seg, valid_refs=valid)
        status = "warning" if doc.warnings else "ok"
        if not passages:
            status, doc.warnings = "warning", doc.warnings + ["no passages found"]
        ocr = doc.ocr_pages
        result = DocumentResult(doc.doc_id, str(path), doc.sha256, doc.force, doc.format,
                                doc.pages, len(passages), status, "; ".join(doc.warnings),
                                len(ocr), round(sum(ocr.values()) / len(ocr), 1) if ocr else None)
        return Extracted(result, passages)
    except IngestError as e:
        reason = e.reason
    except MemoryError:
        raise
    except Exception as e:  # the per-document boundary: report, count, go on
        log.exception("unexpected failure on %s", path)
        reason = f"internal error ({type(e).__name__}: {str(e)[:100]}); please report this file"
    return _error_row(path, reason)


def _error_row(path: Path, reason: str) -> Extracted:
    try:
        sha = sha256_file(path)
    except OSError:
        sha = ""
    return Extracted(DocumentResult(sha[:16], str(path), sha, "unknown",
                                    path.suffix.lower().lstrip("."), 0, 0, "error", reason), [])


@functools.cache
def _warm_up() -> None:
    """Import the main readers once, in the process that forks the workers, so that each
    worker (and each replacement after a breach) starts with them. The sentence splitter is
    left to the workers that need it: with torch installed it takes 4 s and 300 MB."""
    try:
        import docx  # noqa: F401
        import pypdfium2  # noqa: F401
    except Exception:  # a reader that cannot load fails, and is reported, per document
        log.debug("warm-up failed", exc_info=True)


def extract_on_threads(paths: list[Path], jobs: int, *, ingest: IngestParams,
                       seg: SegmentParams, taxonomy: Taxonomy | None = None,
                       manifest: dict[str, str] | None = None) -> Iterator[Extracted]:
    """:func:`extract_in_order` with ``jobs`` reading workers at once, for ``--jobs``: one
    thread per worker (each thread has its own), each taking the next file whenever its
    worker has room, so work spreads by what it costs rather than by file count. The
    threads only wait on their workers; outcomes come back here in file order. Each worker
    queues up to :data:`READ_AHEAD` files but at most :data:`READ_AHEAD_BYTES_PER_WORKER`."""
    import threading

    todo = iter(enumerate(paths))
    done: dict[int, Extracted] = {}
    failures: list[BaseException] = []
    cond = threading.Condition()
    wanted, stop = 0, False
    limit = 2 * READ_AHEAD  # answers held for the caller, beyond the one it waits for

    def take(taken: collections.deque[int]) -> Iterator[Path]:
        while True:
            with cond:
                item = None if stop else next(todo, None)
            if item is None:
                return
            taken.append(item[0])
            yield item[1]

    def read() -> None:
        taken: collections.deque[int] = collections.deque()
        try:
            for out in extract_in_order(take(taken), ingest=ingest, seg=seg, taxonomy=taxonomy,
                                        manifest=manifest,
                                        max_bytes=READ_AHEAD_BYTES_PER_WORKER):
                i = taken.popleft()
                with cond:
                    # The answer the caller waits for always gets in: no thread can block it.
                    while len(done) >= limit and i != wanted and not stop:
                        cond.wait()
                    if stop:
                        return
                    done[i] = out
                    cond.notify_all()
        except BaseException as e:  # handed to the caller, raised there
            with cond:
                failures.append(e)
                cond.notify_all()

    threads = [threading.Thread(target=read, name=f"forcecov-reader-{k}", daemon=True)
               for k in range(min(jobs, len(paths)))]
    for t in threads:
        t.start()
    try:
        for i in range(len(paths)):
            with cond:
                wanted = i
                cond.notify_all()
                while i not in done and not failures:
                    cond.wait()
                if i not in done:
                    raise failures[0]
                out = done.pop(i)
                cond.notify_all()
            yield out
    finally:
        with cond:
            stop = True
            cond.notify_all()
        for t in threads:
            t.join(timeout=1.0)  # a thread mid-document ends with it; its worker with us


def _extract_chunk(paths: list[Path], ingest: IngestParams, seg: SegmentParams,
                   taxonomy: Taxonomy | None, manifest: dict[str, str] | None,
                   parallel: Any, jobs: int) -> Iterator[Extracted]:
    """Extract a chunk of files, in order: in reading workers (``jobs`` of them, each on its
    own thread when more than one), or through a joblib Parallel (the Dask backend, or
    ``--jobs`` with ``ingest.isolate`` off).

    Results come back lazily: while the caller classifies one document, the workers go on
    extracting the next ones.
    """
    if jobs > 1 and parallel is None and len(paths) > 1:
        return extract_on_threads(paths, jobs, ingest=ingest, seg=seg, taxonomy=taxonomy,
                                  manifest=manifest)
    if parallel is None or len(paths) <= 1:
        return extract_in_order(paths, ingest=ingest, seg=seg, taxonomy=taxonomy,
                                manifest=manifest)
    from joblib import delayed

    return iter(parallel(
        delayed(extract_one)(p, ingest=ingest, seg=seg, taxonomy=taxonomy, manifest=manifest)
        for p in paths))


def extract_many(files: list[Path], *, ingest: IngestParams, seg: SegmentParams,
                 taxonomy: Taxonomy | None = None, manifest: dict[str, str] | None = None,
                 on_done: Callable[[Extracted], None] | None = None, jobs: int = 1,
                 backend: str = "local", scheduler: str | None = None,
                 cache: ExtractCache | None = None,
                 chunk_size: int | None = None) -> Iterator[Extracted]:
    """Extract files in order, yielding each outcome as soon as its chunk is done.

    Work goes out in chunks to ``jobs`` reading workers (:func:`extract_in_order`,
    :func:`extract_on_threads`), which read ahead of the caller, or to a dask.distributed
    cluster (``backend="dask"``, through joblib's dask backend). Only a chunk's cached
    documents and the workers' read-ahead are ever in memory. Cached documents are not
    extracted again.
    """
    import contextlib

    if backend not in ("local", "dask"):
        raise ValueError(f"unknown backend {backend!r}: local or dask")
    # joblib for the Dask backend, and for --jobs when documents are read in this process's
    # children without a budget (ingest.isolate off); otherwise reading workers of our own.
    joblib_run = backend == "dask" or (jobs > 1 and not ingest.isolate)
    size = chunk_size or (max(8 * max(jobs, 1), 32) if joblib_run else SEQUENTIAL_CHUNK)
    first_seen: dict[str, str] = {}  # sha256 -> path: the same file twice is scored once
    stack = contextlib.ExitStack()
    with stack:
        if backend == "dask":
            from dask.distributed import Client
            from joblib import parallel_config

            client = stack.enter_context(
                Client(scheduler) if scheduler else Client(processes=False))
            stack.enter_context(parallel_config(backend="dask", wait_for_workers_timeout=60))
            log.info("dask cluster: %s", client.dashboard_link)
        parallel = None
        if joblib_run:
            import warnings

            from joblib import Parallel

            # loky warns when idle workers time out between chunks; nothing is lost.
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs")
            # One pool for the whole run: workers are started once, not per chunk.
            if backend == "dask":
                parallel = stack.enter_context(Parallel(n_jobs=-1))
            else:
                parallel = stack.enter_context(
                    Parallel(n_jobs=jobs, return_as="generator", pre_dispatch="all"))
        for start in range(0, len(files), size):
            chunk = files[start:start + size]
            ready: dict[int, Extracted] = {}
            todo: list[int] = []
            for i, f in enumerate(chunk):
                hit = None
                if cache is not None:
                    try:
                        hit = cache.get(f, sha256_file(f))
                    except OSError:
                        hit = None
                if hit is not None:
                    ready[i] = hit
                else:
                    todo.append(i)
            done = _extract_chunk([chunk[i] for i in todo], ingest, seg, taxonomy, manifest,
                                  parallel, jobs)
            for i in range(len(chunk)):
                if i in ready:
                    out = ready.pop(i)
                else:
                    out = next(done)
                    if cache is not None:
                        cache.put(chunk[i], out)
                sha = out.result.sha256
                if sha and sha in first_seen and out.result.status != "error":
                    r = out.result
                    reason = f"identical to {first_seen[sha]}; not scored twice"
                    out = Extracted(DocumentResult(r.doc_id, r.path, sha, r.force, r.format,
                                                   r.pages, 0, "warning", reason), [])
                elif sha:
                    first_seen.setdefault(sha, str(chunk[i]))
                if on_done:
                    on_done(out)
                yield out


@dataclass(frozen=True)
class ExtractSummary:
    n_files: int
    n_ok: int
    n_warning: int
    n_error: int
    n_passages: int
    results: list[DocumentResult]


def run_extract(inputs: Sequence[str | Path], out_dir: Path, *, ingest: IngestParams,
                seg: SegmentParams, taxonomy: Taxonomy | None = None,
                manifest: dict[str, str] | None = None,
                on_done: Callable[[Extracted], None] | None = None, jobs: int = 1,
                backend: str = "local", scheduler: str | None = None,
                cache_dir: Path | None = None) -> ExtractSummary:
    """Extract every input into ``out_dir/passages.jsonl`` and ``out_dir/documents.csv``.

    Passages are streamed to a temporary file as each document finishes, then moved into
    place, so a crash never leaves a half-written passages.jsonl.
    """
    import json

    from .atomic import atomic_open

    files = find_inputs(inputs)
    results: list[DocumentResult] = []
    n_passages = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = ExtractCache(cache_dir, ingest=ingest, seg=seg, taxonomy=taxonomy, manifest=manifest) \
        if cache_dir else None
    with atomic_open(out_dir / "passages.jsonl") as fh:
        for out in extract_many(files, ingest=ingest, seg=seg, taxonomy=taxonomy, manifest=manifest,
                                on_done=on_done, jobs=jobs, backend=backend, scheduler=scheduler,
                                cache=cache):
            results.append(out.result)
            for p in out.passages:
                fh.write(json.dumps(p.to_json(), ensure_ascii=False) + "\n")
            n_passages += len(out.passages)
    write_documents_csv(out_dir / "documents.csv", results)
    return ExtractSummary(
        n_files=len(files),
        n_ok=sum(r.status == "ok" for r in results),
        n_warning=sum(r.status == "warning" for r in results),
        n_error=sum(r.status == "error" for r in results),
        n_passages=n_passages,
        results=results,
    )
