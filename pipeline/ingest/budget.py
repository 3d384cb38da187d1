"""Run one call in a worker process, under a time and a memory budget.

A hostile or broken document must cost one error row, not the batch: a 0.5 MB DOCX that
expands to 54 MB of XML ran for over ten minutes at 3.1 GB, and a 200 MB text file grew to
14.6 GB. So every document is read in a worker process forked from the caller. The worker caps
its own address space (``RLIMIT_AS``: its size when forked plus ``max_memory_mb``, since it
inherits whatever the caller has loaded), and the caller waits ``timeout`` seconds for the
answer before it kills the worker.

Each calling process and thread has one worker, started on first use and reused for every
document (a round trip costs well under a millisecond); after a breach or a crash it is
reaped and the next call starts another. Workers end with the process that started them.
:func:`run_each` queues several documents in the worker at once, so that it reads on while
the caller classifies (:func:`run` and :func:`submit` are its one-call cases). Each answer
travels through a temporary file, because a worker blocked on a full pipe would stop
reading. A thread runs one :func:`run`, :func:`submit` or :func:`run_each` at a time.

Workers are forked, so they start with the caller's modules, and module state, as they were
at the fork: a test that monkeypatches a reader calls :func:`stop_workers` first.
"""

from __future__ import annotations

import atexit
import collections
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar, cast

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

    def __init__(self, max_memory_mb: float) -> None:
        self.max_memory_mb = max_memory_mb
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
                _worker_main(child_conn, conn, max_memory_mb, self.owner)
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
                 parent: int) -> NoReturn:
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
        _serve(conn, max_memory_mb, parent)
    except BaseException:  # nothing may escape a forked child
        code = 70
    finally:
        _save_coverage()
        os._exit(code)


def _serve(conn: Connection, max_memory_mb: float, parent: int) -> None:
    """Answer jobs until the pipe closes or a job leaves this process too big to reuse."""
    global _base, _limit, _job_conn
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's, which then ends us
    _die_with(parent)
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


def _worker_for(max_memory_mb: float) -> _Worker:
    """This thread's worker, started (or replaced) as needed."""
    worker: _Worker | None = getattr(_local, "worker", None)
    if worker is not None and (worker.owner != os.getpid()  # inherited through a fork
                               or worker.max_memory_mb != max_memory_mb or not worker.alive()):
        if worker.owner == os.getpid():
            worker.stop()
        worker = None
    if worker is None:
        with _lock:  # workers of threads that have ended are idle for good
            orphans = [w for w in _workers if w.owner == os.getpid() and not _running(w.thread())]
        for w in orphans:
            w.stop(grace=1.0)
        worker = _local.worker = _Worker(max_memory_mb)
    return worker


@functools.cache
def _warn_no_fork() -> None:
    log.warning("no fork() on this platform: documents are read in this process, without "
                "ingest.timeout_seconds or ingest.max_memory_mb")


def run(fn: Callable[..., T], *args: Any, timeout: float, max_memory_mb: float,
        **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in this thread's worker process, within ``timeout`` seconds and
    ``max_memory_mb`` MB of memory beyond what the caller had when the worker was forked.

    Raises :class:`BudgetExceeded` (one-line ``reason``) on a breach or when the worker dies;
    an exception raised by ``fn`` is raised here. ``fn`` (a module-level function), its
    arguments and its result must pickle. Inside a worker, or where there is no ``fork``, the
    call runs in place, without a budget.
    """
    call = functools.partial(fn, **kwargs) if kwargs else fn
    return submit(call, *args, timeout=timeout, max_memory_mb=max_memory_mb).result()


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One call's result, or the exception it ended with (:func:`run_each`)."""

    value: T | None = None
    error: BaseException | None = None

    def get(self) -> T:
        """The value, or the call's exception raised here."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


def _in_place() -> bool:
    """Calls run in this process, without a budget: inside a worker (a nested call), or where
    there is no ``fork`` (said once)."""
    if _in_worker:
        return True
    if not hasattr(os, "fork"):
        _warn_no_fork()
        return True
    return False


def _outcome_here(fn: Callable[..., T], args: tuple[Any, ...]) -> Outcome[T]:
    """``fn(*args)`` run in this process, as an :class:`Outcome`."""
    try:
        return Outcome(fn(*args))
    except Exception as e:  # noqa: BLE001 - handed to the caller, raised by Outcome.get
        return Outcome(error=e)


def run_each(fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], *, timeout: float,
             max_memory_mb: float, ahead: int = 1,
             cost: Callable[[tuple[Any, ...]], float] | None = None,
             max_cost: float = float("inf")) -> Iterator[Outcome[T]]:
    """``fn(*args)`` for each of ``calls``, in order, each as :func:`run` runs one, yielded as
    an :class:`Outcome`.

    Up to ``ahead`` calls are queued in the worker beyond the one being answered, so it goes
    on reading documents while the caller works on those already yielded (classifying a
    batch). Each call's ``timeout`` counts from when the worker starts it. A call that
    breaks its budget, or kills its worker, is that call's outcome; the calls queued behind
    it go to the next worker.

    With ``cost`` (of a call's args; a document's size, say), calls are also queued only
    while their total cost stays within ``max_cost`` (one is always queued): several callers
    sharing one source of calls then share out the costly ones.
    """
    if _in_place():
        for args in calls:
            yield _outcome_here(fn, args)
        return
    queue: _ReadAhead[T] = _ReadAhead(fn, calls, timeout, max_memory_mb, max(ahead, 1),
                                      cost, max_cost)
    try:
        while (out := queue.next_outcome()) is not None:
            yield out
    finally:
        queue.close()


_SPOOL_PREFIX = "forcecov-read-ahead-"


@functools.cache
def _sweep_spool_dirs() -> None:
    """Remove spool folders left by callers that were killed (SIGKILL leaves no chance to
    clean up): those whose process id, in their name, no longer runs."""
    import shutil
    import tempfile

    for folder in Path(tempfile.gettempdir()).glob(f"{_SPOOL_PREFIX}*-*"):
        try:
            os.kill(int(folder.name[len(_SPOOL_PREFIX):].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):  # not ours, or another user's live process
            continue


class _ReadAhead(Generic[T]):
    """The calls of :func:`run_each`: those sent to this thread's worker and not yet
    answered (``sent``, oldest first), and those still to send (``pending``)."""

    def __init__(self, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], timeout: float,
                 max_memory_mb: float, ahead: int,
                 cost: Callable[[tuple[Any, ...]], float] | None = None,
                 max_cost: float = float("inf")) -> None:
        import tempfile

        self.fn, self.timeout, self.max_memory_mb, self.ahead = fn, timeout, max_memory_mb, ahead
        # Costs are worked out only under a bound (a stat per file is not free on a hot path).
        self.cost = cost if max_cost != float("inf") else None
        self.max_cost = max_cost
        self.calls = iter(calls)
        self.pending: collections.deque[tuple[Any, ...]] = collections.deque()
        # Each entry: the call's args, its spool file, the error that kept it from a worker
        # (if one did), and its cost.
        self.sent: collections.deque[
            tuple[tuple[Any, ...], str, BaseException | None, float]] = collections.deque()
        _sweep_spool_dirs()
        self.spool_dir = tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-")
        self.n = 0
        self.worker: _Worker | None = None

    def next_outcome(self) -> Outcome[T] | None:
        """The oldest call's outcome, or None when every call has been answered."""
        self.fill()
        if not self.sent:
            return None
        if self.sent[0][2] is not None:
            return Outcome(error=self.sent.popleft()[2])
        out = self._receive_oldest()
        self.fill()  # the worker reads on while the caller works on this answer
        return out

    def fill(self) -> None:
        """Send calls until ``ahead`` are queued beyond the oldest unanswered one."""
        while len(self.sent) < self.ahead + 1:
            args = self.pending.popleft() if self.pending else next(self.calls, None)
            if args is None:
                return
            cost = self.cost(args) if self.cost is not None else 0.0
            if self.sent and sum(entry[3] for entry in self.sent) + cost > self.max_cost:
                self.pending.appendleft(args)  # sent once the calls before it are answered
                return
            spool = os.path.join(self.spool_dir, f"{self.n}.pickle")
            self.n += 1
            for _ in range(2):
                try:
                    if self.worker is None or self.worker.reaped:
                        self.worker = _worker_for(self.max_memory_mb)
                    self.worker.send(self.fn, args, {}, spool)
                    self.sent.append((args, spool, None, cost))
                    break
                except _WorkerGone:
                    if self.sent:  # it died with calls queued: receiving them will say how
                        self.pending.appendleft(args)
                        return
                    self.worker = None
                    continue  # killed while idle (not by a call): once more with a new one
                except Exception as e:  # noqa: BLE001 - e.g. no worker could be forked (EAGAIN)
                    self.sent.append((args, spool, e, cost))
                    return
            else:
                self.sent.append((args, spool, BudgetExceeded(crash_reason(None)), cost))
                return

    def _receive_oldest(self) -> Outcome[T]:
        worker = self.worker
        assert worker is not None
        spool = self.sent[0][1]
        deadline = None  # until the worker says the call has started
        granted = 0.0
        while True:
            wait = self.timeout if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                if not worker.conn.poll(wait):
                    worker.stop()
                    return self._lost(BudgetExceeded(timeout_reason(self.timeout, granted)))
                kind, value, retire = pickle.loads(worker.conn.recv_bytes())
            except (EOFError, OSError):  # it died (or was stopped) with this call queued
                return self._lost(BudgetExceeded(crash_reason(worker.stop(grace=1.0))))
            if kind == "start":
                deadline = value + self.timeout
            elif kind == "extend":
                deadline = (time.monotonic() if deadline is None else deadline) + value
                granted += value
            else:
                break
        self.sent.popleft()
        if retire:  # it ends after this answer: the calls queued in it go to the next one
            worker.stop(grace=1.0)
            self._requeue()
        if kind == "memory":
            return Outcome(error=BudgetExceeded(memory_reason(self.max_memory_mb)))
        if kind == "raise":
            return Outcome(error=value)
        with open(spool, "rb") as fh:
            result = cast(T, pickle.load(fh))
        os.unlink(spool)
        return Outcome(result)

    def _lost(self, error: BudgetExceeded) -> Outcome[T]:
        """The oldest call broke its budget or its worker died: its outcome is ``error``."""
        self.sent.popleft()
        self._requeue()
        return Outcome(error=error)

    def _requeue(self) -> None:
        self.pending.extendleft(reversed([entry[0] for entry in self.sent]))
        self.sent.clear()
        self.worker = None

    def close(self) -> None:
        """Stop a worker that still holds calls (their answers would reach the next caller),
        and remove the spool files."""
        import shutil

        if self.worker is not None and any(entry[2] is None for entry in self.sent):
            self.worker.stop()
        shutil.rmtree(self.spool_dir, ignore_errors=True)


class Pending(Generic[T]):
    """A call started by :func:`submit`; :meth:`result` waits for it."""

    def __init__(self, queue: _ReadAhead[T] | None = None, done: Outcome[T] | None = None):
        self._queue, self._done = queue, done

    def result(self) -> T:
        """The call's value, or its exception (or :class:`BudgetExceeded`) raised here."""
        if self._done is None:
            assert self._queue is not None
            try:
                self._done = self._queue.next_outcome()
            finally:
                self._queue.close()
        assert self._done is not None
        return self._done.get()


def submit(fn: Callable[..., T], *args: Any, timeout: float, max_memory_mb: float) -> Pending[T]:
    """Start ``fn(*args)`` in this thread's worker, as :func:`run` would, and return at once:
    for work that can go on in another process while the caller does something else. Inside
    a worker, or where there is no ``fork``, it runs in place before returning."""
    if _in_place():
        return Pending(done=_outcome_here(fn, args))
    queue: _ReadAhead[T] = _ReadAhead(fn, [args], timeout, max_memory_mb, ahead=0)
    queue.fill()
    return Pending(queue)


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
