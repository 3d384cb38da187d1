"""The worker processes that read documents under a time and a memory budget, both sides.

The caller's side: :class:`_Worker` (one forked process and the caller's end of its pipe),
one per calling process and thread (:func:`_worker_for`), all ended by :func:`stop_workers`.
The worker's side: :func:`_serve` answers jobs under a cap on its own address space
(``RLIMIT_AS``), and :func:`extend` and :func:`outside_budget` adjust the budget from inside
a job. How calls are queued in a worker and their answers read back is
:mod:`pipeline.ingest.budget`, which is what the rest of the package uses.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import pickle
import resource
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection, Pipe
from typing import Any, NoReturn, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


_MB = 1024 * 1024


class BudgetExceeded(Exception):
    """The call ran out of time or memory, or its worker died. ``reason`` is one line."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def timeout_reason(timeout: float, granted: float = 0.0) -> str:
    if granted:
        return (f"took longer than {timeout + granted:g} s (ingest.timeout_seconds, plus "
                "ingest.ocr_page_seconds for each page read by OCR); the batch went on "
                "without it")
    return (f"took longer than {timeout:g} s (ingest.timeout_seconds); "
            "the batch went on without it")


def memory_reason(max_memory_mb: float) -> str:
    return (f"needed more than {max_memory_mb:g} MB of memory (ingest.max_memory_mb); "
            "the batch went on without it")


def crash_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = f", {signal.Signals(-code).name}"
        except ValueError:
            name = ""
        return f"the reader crashed (signal {-code}{name}); the batch went on without it"
    shown = f" (exit code {code})" if code is not None else ""
    return f"the reader stopped unexpectedly{shown}; the batch went on without it"


class _WorkerGone(Exception):
    """The worker died while idle (before this call reached it): start another."""


_lock = threading.Lock()
_workers: list[_Worker] = []  # every worker this process started and has not reaped
_local = threading.local()
_in_worker = False  # set in a worker: a nested call runs in place
_job_conn: Connection | None = None  # in a worker: the pipe of the job it is running
_base: int | None = None  # in a worker: its address space when forked, plus what it keeps
_limit: int | None = None  # in a worker: the cap on its address space (RLIMIT_AS)


class _Worker:
    """One forked worker process and the caller's end of its pipe."""

    def __init__(self, max_memory_mb: float, nice: int = 0) -> None:
        self.max_memory_mb = max_memory_mb
        self.nice = nice
        self.owner = os.getpid()
        self.thread = weakref.ref(threading.current_thread())
        self.code: int | None = None  # exit code once reaped (negative: killed by a signal)
        self.reaped = False
        # Under the lock, no other thread forks a worker while this one is half made: that
        # worker would inherit this pipe unregistered, and hide its EOF when this one dies.
        with _lock:
            conn, child_conn = Pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                _worker_main(child_conn, conn, max_memory_mb, self.owner, nice)
            child_conn.close()
            self.pid = pid
            self.conn: Connection = conn
            _workers.append(self)

    def alive(self) -> bool:
        return not self.reaped and not self._reap(wait=0.0)

    def send(self, fn: Callable[..., Any], args: tuple[object, ...],
             kwargs: Mapping[str, object], spool: str) -> None:
        """Hand the worker a job; it writes the answer to ``spool`` and says so on the pipe
        (read by :class:`_ReadAhead`)."""
        job = pickle.dumps((fn, args, kwargs, spool), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.conn.send_bytes(job)
        except OSError as e:  # BrokenPipeError: it died since it last answered
            self.stop()
            raise _WorkerGone from e

    def stop(self, grace: float = 0.0) -> int | None:
        """End the worker and reap it; its exit code. ``grace``: seconds it may take to end on
        its own (it exits when its pipe closes) before it is killed."""
        if not self.reaped:
            with _lock, contextlib.suppress(OSError):  # never half-closed while a worker forks
                self.conn.close()
            if not self._reap(wait=grace):
                # Its own children first (a reader may run a tool, e.g. Tesseract for OCR).
                for pid in (*_children(self.pid), self.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self._reap(wait=None)
        return self.code

    def _reap(self, wait: float | None) -> bool:
        """Reap the worker if it has ended, waiting up to ``wait`` seconds (None: forever)."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                pid, status = os.waitpid(self.pid, 0 if wait is None else os.WNOHANG)
                code: int | None = os.waitstatus_to_exitcode(status) if pid else None
            except ChildProcessError:  # reaped by someone else: the exit code is lost
                pid, code = self.pid, None
            if pid:
                self.code = code
                self.reaped = True
                with _lock:
                    if self in _workers:
                        _workers.remove(self)
                return True
            if deadline is None or time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def _children(pid: int) -> list[int]:
    """A process's child processes (Linux /proc; none where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(child) for child in fh.read().split()]
    except (OSError, ValueError):
        return []


def _worker_main(conn: Connection, caller_conn: Connection, max_memory_mb: float,
                 parent: int, nice: int = 0) -> NoReturn:
    """The worker's whole life: never returns into the caller's code, never runs its atexit
    handlers (``os._exit``)."""
    global _in_worker
    code = 0
    try:
        _in_worker = True
        caller_conn.close()
        for other in _workers:  # other workers' pipes: each must see EOF when its caller goes
            with contextlib.suppress(OSError):
                other.conn.close()
        _serve(conn, max_memory_mb, parent, nice)
    except BaseException:  # nothing may escape a forked child
        code = 70
    finally:
        _save_coverage()
        os._exit(code)


def _serve(conn: Connection, max_memory_mb: float, parent: int, nice: int = 0) -> None:
    """Answer jobs until the pipe closes or a job leaves this process too big to reuse.
    ``nice``: how much lower than the caller's this process's CPU priority is."""
    global _base, _limit, _job_conn
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's, which then ends us
    _die_with(parent)
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)
    _base = _vm_size()
    headroom = int(max_memory_mb * _MB)
    if _base is not None:
        _limit = _capped(_base + headroom)
        resource.setrlimit(resource.RLIMIT_AS, (_limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    with contextlib.suppress(ValueError, OSError):  # a crash is reported, not dumped
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the caller closed the pipe or is gone
        reply: tuple[str, Any]
        _job_conn = conn
        try:
            fn, args, kwargs, spool = pickle.loads(data)
            # It may have been queued behind others: say when it starts, for its deadline.
            conn.send_bytes(pickle.dumps(("start", time.monotonic(), False)))
            value = fn(*args, **kwargs)
            # The answer goes to a file and the pipe carries its name: a caller busy with
            # earlier answers must not leave this worker blocked on a full pipe.
            with open(spool, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            del value
            reply = ("spooled", spool)
        except MemoryError:
            reply = ("memory", None)
        except BaseException as e:  # the caller decides what an exception means
            reply = ("raise", _portable(e))
        del data
        size = _vm_size()
        # Memory a big document leaves behind (fragmentation) would shrink the next one's
        # budget: a worker that grew by half its headroom is replaced.
        retire = reply[0] == "memory" or (
            _base is not None and size is not None and size > _base + headroom // 2)
        try:
            payload = pickle.dumps((*reply, retire), protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            payload = pickle.dumps(("memory", None, True))
        except Exception as e:  # an unpicklable result is the caller's bug: say so there
            payload = pickle.dumps(("raise", RuntimeError(
                f"the result could not be sent back ({type(e).__name__}: {e})"), False))
        del reply
        _job_conn = None
        conn.send_bytes(payload)
        if retire:
            return


def _capped(limit: int) -> int:
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    return limit if hard == resource.RLIM_INFINITY else min(limit, hard)


def outside_budget(fn: Callable[[], T]) -> T:
    """``fn()``, with the memory it takes left out of the budget: for loading what a worker
    keeps for every later document (the sentence splitter), never for a document's own work.
    Outside a worker, a plain call."""
    global _base, _limit
    if _base is None or _limit is None:
        return fn()
    before = _vm_size()
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    try:
        return fn()
    finally:
        after = _vm_size()
        grown = after - before if before is not None and after is not None else 0
        _base += max(grown, 0)
        _limit = _capped(_limit + max(grown, 0))
        resource.setrlimit(resource.RLIMIT_AS, (_limit, hard))


def _portable(error: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError that says what it was
    (exceptions with required constructor arguments do not unpickle)."""
    if isinstance(error, Exception):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(error))
            return error
    return RuntimeError(f"{type(error).__name__}: {error}")


def _vm_size() -> int | None:
    """This process's virtual size in bytes (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _die_with(parent: int) -> None:
    """Linux: have the kernel kill this worker when its caller dies, so a worker stuck in a
    runaway parse never outlives it (an idle one sees its pipe close and exits anyway)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG
    if os.getppid() != parent:  # the caller died before the line above took effect
        os._exit(0)


def _save_coverage() -> None:
    """Under coverage.py (the test suite), save this worker's data: ``os._exit`` skips the
    hook that would."""
    coverage = sys.modules.get("coverage")
    current = getattr(getattr(coverage, "Coverage", None), "current", None)
    with contextlib.suppress(Exception):
        cov = current() if current is not None else None
        if cov is not None:
            cov.stop()
            cov.save()


def _running(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


def _worker_for(max_memory_mb: float, nice: int = 0) -> _Worker:
    """This thread's worker, started (or replaced) as needed."""
    worker: _Worker | None = getattr(_local, "worker", None)
    if worker is not None and (worker.owner != os.getpid()  # inherited through a fork
                               or worker.max_memory_mb != max_memory_mb or worker.nice != nice
                               or not worker.alive()):
        if worker.owner == os.getpid():
            worker.stop()
        worker = None
    if worker is None:
        with _lock:  # workers of threads that have ended are idle for good
            orphans = [w for w in _workers if w.owner == os.getpid() and not _running(w.thread())]
        for w in orphans:
            w.stop(grace=1.0)
        worker = _local.worker = _Worker(max_memory_mb, nice)
    return worker


@functools.cache
def _warn_no_fork() -> None:
    log.warning("no fork() on this platform: documents are read in this process, without "
                "ingest.timeout_seconds or ingest.max_memory_mb")


def extend(seconds: float) -> None:
    """Ask for ``seconds`` more than the job's timeout, from inside the job: for work whose
    size is only known once the document is open (OCR, page by page), where each piece has
    its own limit. Outside a worker, nothing to do."""
    if _job_conn is not None and seconds > 0:
        _job_conn.send_bytes(pickle.dumps(("extend", float(seconds), False)))


def stop_workers() -> None:
    """End every worker this process started: at exit, and in tests after monkeypatching."""
    with _lock:
        mine = [w for w in _workers if w.owner == os.getpid()]
    for w in mine:
        w.stop(grace=2.0)  # time to save coverage data under the test suite
    _local.worker = None


atexit.register(stop_workers)
