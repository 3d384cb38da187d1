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
at the fork: a test that monkeypatches a reader calls :func:`stop_workers` first. The worker
processes themselves, both the caller's handle and what runs inside them, are
:mod:`pipeline.ingest.workers`.
"""

from __future__ import annotations

import collections
import functools
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from . import workers
from .workers import (  # noqa: F401 - _workers: every live worker, which tests inspect
    BudgetExceeded,
    _warn_no_fork,
    _Worker,
    _worker_for,
    _WorkerGone,
    _workers,
    crash_reason,
    extend,
    memory_reason,
    outside_budget,
    stop_workers,
    timeout_reason,
)

T = TypeVar("T")

# What the rest of the package uses: the calls below, and the budget's side of the workers.
__all__ = ["BudgetExceeded", "Outcome", "Pending", "crash_reason", "extend", "memory_reason",
           "outside_budget", "run", "run_each", "stop_workers", "submit", "timeout_reason"]


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
    if workers._in_worker:  # read from the module: a fork sets it there
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
             max_cost: float = float("inf"), nice: int = 0) -> Iterator[Outcome[T]]:
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

    ``nice``: the worker runs at this much lower CPU priority than the caller, so that
    while both have work the caller (classifying what was read) keeps its core.
    """
    if _in_place():
        for args in calls:
            yield _outcome_here(fn, args)
        return
    queue: _ReadAhead[T] = _ReadAhead(fn, calls, timeout, max_memory_mb, max(ahead, 1),
                                      cost, max_cost, nice)
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
                 max_cost: float = float("inf"), nice: int = 0) -> None:
        import tempfile

        self.fn, self.timeout, self.max_memory_mb, self.ahead = fn, timeout, max_memory_mb, ahead
        self.nice = nice
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
                        self.worker = _worker_for(self.max_memory_mb, self.nice)
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

    def abandon(self) -> None:
        """Give up on the call: its worker is stopped if it has not answered, so that the
        answer never reaches a later call in this thread."""
        if self._done is None and self._queue is not None:
            self._queue.close()
            self._done = Outcome(error=BudgetExceeded("abandoned by its caller"))


def submit(fn: Callable[..., T], *args: Any, timeout: float, max_memory_mb: float,
           nice: int = 0) -> Pending[T]:
    """Start ``fn(*args)`` in this thread's worker, as :func:`run` would, and return at once:
    for work that can go on in another process while the caller does something else. Inside
    a worker, or where there is no ``fork``, it runs in place before returning."""
    if _in_place():
        return Pending(done=_outcome_here(fn, args))
    queue: _ReadAhead[T] = _ReadAhead(fn, [args], timeout, max_memory_mb, ahead=0, nice=nice)
    queue.fill()
    return Pending(queue)
