"""Every document is read in a worker under a time and a memory budget: a breach, or a crash,
is one error row for that file and the batch goes on (pipeline/ingest/budget.py)."""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline import extract
from pipeline.config import IngestParams, SegmentParams
from pipeline.extract import extract_one, run_extract
from pipeline.ingest import budget

SEG = SegmentParams()
TIGHT = IngestParams(timeout_seconds=2, max_memory_mb=200)
TEST_PROCESS = os.getpid()


@pytest.fixture(autouse=True)
def fresh_workers():
    """Workers are forked: one started before a monkeypatch would not see it."""
    budget.stop_workers()
    yield
    budget.stop_workers()


@pytest.fixture
def batch(tmp_path):
    """A file the patched reader misbehaves on, then an ordinary one."""
    (tmp_path / "hostile.txt").write_text("Kent Police. This file is read by a bad reader.\n")
    (tmp_path / "good.txt").write_text("Kent Police. We refer every potential victim to the NRM.\n")
    return [tmp_path / "hostile.txt", tmp_path / "good.txt"]


def _misbehave_on(monkeypatch, name, action):
    """Make the reader run ``action(path)`` on the file called ``name`` (in the worker: fork
    copies the patched module)."""
    real = extract.read_document

    def reader(path, **kwargs):
        if Path(path).name == name:
            if os.getpid() == TEST_PROCESS:
                raise AssertionError("read in the calling process, not in a worker")
            Path(path).with_suffix(".pid").write_text(str(os.getpid()))
            action(path)
        return real(path, **kwargs)

    monkeypatch.setattr(extract, "read_document", reader)


def _run(files, tmp_path, ingest=TIGHT):
    summary = run_extract(files, tmp_path / "out", ingest=ingest, seg=SEG)
    return {Path(r.path).name: r for r in summary.results}


def _reaped(pid_file: Path) -> bool:
    """The worker that read this file is gone, not left as a zombie."""
    return not Path(f"/proc/{pid_file.read_text()}").exists()


def _sleep(_):
    time.sleep(60)


def _hoard(_, hoard=[]):  # noqa: B006 - kept alive on purpose, so the memory stays in use
    hoard.append(bytearray(600 << 20))


def _die(_):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize(("misbehave", "reason"), [
    (_sleep, "took longer than 2 s (ingest.timeout_seconds); the batch went on without it"),
    (_hoard, "needed more than 200 MB of memory (ingest.max_memory_mb); "
             "the batch went on without it"),
    (_die, "the reader crashed (signal 9, SIGKILL); the batch went on without it"),
], ids=["timeout", "memory", "signal"])
def test_a_reader_that_breaks_its_budget_is_an_error_row_and_the_next_file_is_read(
        monkeypatch, batch, tmp_path, misbehave, reason):
    _misbehave_on(monkeypatch, "hostile.txt", misbehave)
    start = time.monotonic()
    rows = _run(batch, tmp_path)
    assert time.monotonic() - start < 20
    hostile, good = rows["hostile.txt"], rows["good.txt"]
    assert hostile.status == "error" and hostile.n_passages == 0
    assert hostile.reason == reason
    assert good.status == "ok" and good.n_passages == 1
    assert _reaped(batch[0].with_suffix(".pid"))


def test_one_worker_serves_every_document_and_is_reaped_at_the_end(tmp_path):
    files = []
    for i in range(5):
        files.append(tmp_path / f"Kent {i}.txt")
        files[-1].write_text(f"Kent Police. Response {i}: we refer victims to the NRM.\n")
    assert all(extract_one(f, ingest=TIGHT, seg=SEG).result.status == "ok" for f in files)
    workers = [w for w in budget._workers if w.owner == os.getpid()]
    assert len(workers) == 1
    pid = workers[0].pid
    budget.stop_workers()
    assert not budget._workers and not Path(f"/proc/{pid}").exists()


def test_in_process_reading_when_isolation_is_off(monkeypatch, batch):
    seen = []
    real = extract.read_document
    monkeypatch.setattr(extract, "read_document",
                        lambda path, **kw: seen.append(os.getpid()) or real(path, **kw))
    out = extract_one(batch[1], ingest=IngestParams(isolate=False), seg=SEG)
    assert out.result.status == "ok" and seen == [os.getpid()]
    assert not budget._workers


def test_exceptions_come_back_to_the_caller():
    with pytest.raises(ValueError, match="invalid literal"):
        budget.run(int, "not a number", timeout=5, max_memory_mb=100)
    # An exception that cannot be rebuilt from its pickle arrives as a RuntimeError that names
    # it. Once dask.distributed is imported (an earlier test's cluster), its pickling support
    # rebuilds any exception, and the IngestError itself arrives: either way, it says what.
    from pipeline.errors import IngestError

    with pytest.raises((RuntimeError, IngestError), match="x.txt: refused") as raised:
        budget.run(_raise_ingest_error, timeout=5, max_memory_mb=100)
    assert isinstance(raised.value, IngestError) or "IngestError: " in str(raised.value)


def _raise_ingest_error():
    from pipeline.errors import IngestError

    raise IngestError("x.txt", "refused")


def _sleep_in_a_worker(seconds):
    """Run in a loky worker: its own budget worker must start there, time out and be reaped."""
    try:
        budget.run(time.sleep, seconds, timeout=0.5, max_memory_mb=100)
    except budget.BudgetExceeded as e:
        return os.getpid(), e.reason
    return os.getpid(), "finished"


def test_loky_workers_start_their_own_budget_workers():
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=2)(delayed(_sleep_in_a_worker)(5) for _ in range(2))
    assert all(reason.startswith("took longer than 0.5 s") for _, reason in out)
    assert all(pid != os.getpid() for pid, _ in out)


def test_each_thread_has_its_own_worker():
    """The dask backend runs documents on threads of one process."""
    barrier = threading.Barrier(2)

    def worker_pid(_):
        barrier.wait()
        return budget.run(os.getpid, timeout=5, max_memory_mb=100)

    with ThreadPoolExecutor(2) as pool:
        pids = list(pool.map(worker_pid, range(2)))
    assert len(set(pids)) == 2 and os.getpid() not in pids


_KEPT = []


def _load_once_then_work():
    """Like the sentence splitter: 300 MB loaded once and kept, then 50 MB of real work."""
    if not _KEPT:
        budget.outside_budget(lambda: _KEPT.append(bytearray(300 << 20)))
    return len(bytearray(50 << 20))


def test_what_a_worker_loads_once_for_every_document_is_outside_the_budget():
    for _ in range(3):  # the same worker, which keeps what it loaded
        assert budget.run(_load_once_then_work, timeout=10, max_memory_mb=100) == 50 << 20
    assert len([w for w in budget._workers if w.owner == os.getpid()]) == 1
    with pytest.raises(budget.BudgetExceeded, match="needed more than 100 MB"):
        budget.run(bytearray, 300 << 20, timeout=10, max_memory_mb=100)


def test_a_long_paragraph_is_split_at_sentences_within_a_small_budget(tmp_path):
    """The sentence splitter (spaCy; ~700 MB of address space with torch installed) is built
    in the worker when a document first needs it, not charged to that document."""
    path = tmp_path / "Kent response.txt"
    path.write_text("Kent Police. " + " ".join(f"Officers refer victim {i} to the NRM."
                                               for i in range(60)) + "\n")
    out = extract_one(path, ingest=IngestParams(max_memory_mb=150), seg=SEG)
    assert out.result.status == "ok" and len(out.passages) > 1


def _work_in_pieces(pieces, seconds_each, extend_each):
    for _ in range(pieces):
        budget.extend(extend_each)
        time.sleep(seconds_each)
    return pieces


def test_a_job_may_ask_for_more_time_piece_by_piece_but_not_beyond_what_it_asked():
    # Three pieces of 0.4 s overrun a 0.5 s budget unless each piece asks for its own time
    # (as OCR does, page by page).
    assert budget.run(_work_in_pieces, 3, 0.4, 0.5, timeout=0.5, max_memory_mb=100) == 3
    with pytest.raises(budget.BudgetExceeded, match=r"longer than 0\.[6-8] s.*ocr_page_seconds"):
        budget.run(_work_in_pieces, 3, 0.4, 0.1, timeout=0.5, max_memory_mb=100)
    with pytest.raises(budget.BudgetExceeded, match=r"longer than 0\.5 s \(ingest"):
        budget.run(_work_in_pieces, 3, 0.4, 0.0, timeout=0.5, max_memory_mb=100)


def _started_at(value, seconds=0.0):
    """Run in the worker: when the call began (wall clock, comparable across processes)."""
    began = time.time()
    time.sleep(seconds)
    return value, began


def _misbehaving(value, action=None):
    """Run in the worker: ``action`` (sleep, hoard memory, die) or answer (value, pid)."""
    if action is not None:
        action(None)
    return value, os.getpid()


def test_run_each_answers_in_order_with_the_next_call_already_running():
    """The next document is read while the caller works on the one just handed over."""
    handed_over, answers = [], []
    for outcome in budget.run_each(_started_at, [(i,) for i in range(4)], timeout=10,
                                   max_memory_mb=100):
        answers.append(outcome.get())
        handed_over.append(time.time())
        time.sleep(0.3)  # the caller's own work (classifying the passages)
    assert [value for value, _ in answers] == [0, 1, 2, 3]
    # Call k + 1 began before the caller finished with call k, not after it came back.
    for k in range(3):
        assert answers[k + 1][1] < handed_over[k] + 0.3


def test_run_each_reports_a_breach_as_that_call_s_outcome_and_goes_on():
    calls = [(0,), (1, 30.0), (2,)]
    outcomes = list(budget.run_each(_started_at, calls, timeout=1, max_memory_mb=100))
    assert outcomes[0].get()[0] == 0 and outcomes[2].get()[0] == 2
    with pytest.raises(budget.BudgetExceeded, match="took longer than 1 s"):
        outcomes[1].get()


def test_a_caller_that_stops_early_does_not_leave_an_answer_for_the_next_call():
    outcomes = budget.run_each(_started_at, [("first",), ("second", 0.5)], timeout=10,
                               max_memory_mb=100)
    assert next(outcomes).get()[0] == "first"
    outcomes.close()  # "second" is still running in the worker: it must not answer below
    assert budget.run(_started_at, "third", timeout=10, max_memory_mb=100)[0] == "third"


def _spool_dirs():
    return set(Path(tempfile.gettempdir()).glob(f"forcecov-read-ahead-{os.getpid()}-*"))


def test_run_each_keeps_up_to_ahead_calls_queued_while_the_caller_is_busy():
    before = _spool_dirs()
    outcomes = budget.run_each(_started_at, [(i, 0.05) for i in range(6)], timeout=10,
                               max_memory_mb=100, ahead=3)
    first = next(outcomes).get()
    handed_over = time.time()
    time.sleep(0.6)  # a long batch to classify: the worker reads the next three meanwhile
    rest = [o.get() for o in outcomes]
    assert [value for value, _ in [first, *rest]] == [0, 1, 2, 3, 4, 5]
    assert all(began < handed_over + 0.6 for _, began in rest[:3])
    assert _spool_dirs() == before  # its answers' folder is gone


def test_spool_folders_of_killed_callers_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"forcecov-read-ahead-{dead.pid}-abc"
    live = tmp_path / f"forcecov-read-ahead-{os.getpid()}-def"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "0.pickle").write_bytes(b"x")
    budget._sweep_spool_dirs.cache_clear()
    budget._sweep_spool_dirs()
    assert not stale.exists() and live.exists()


def test_a_queued_call_s_timeout_counts_from_when_the_worker_starts_it():
    # Four calls of 0.6 s queued at once: the last starts after 1.8 s, within its own 1 s.
    outcomes = list(budget.run_each(_started_at, [(i, 0.6) for i in range(4)], timeout=1,
                                    max_memory_mb=100, ahead=3))
    assert [o.get()[0] for o in outcomes] == [0, 1, 2, 3]


@pytest.mark.parametrize(("misbehave", "reason"), [
    (_sleep, "took longer than 2 s"),
    (_hoard, "needed more than 200 MB"),
    (_die, "the reader crashed (signal 9, SIGKILL)"),
], ids=["timeout", "memory", "signal"])
def test_a_breach_in_a_queue_is_that_call_s_outcome_and_the_calls_behind_it_go_on(
        misbehave, reason):
    calls = [("a",), ("b", misbehave), ("c",), ("d",)]
    outcomes = list(budget.run_each(_misbehaving, calls, timeout=2, max_memory_mb=200,
                                    ahead=3))
    with pytest.raises(budget.BudgetExceeded, match=re.escape(reason)):
        outcomes[1].get()
    (a, first_pid), (c, next_pid), (d, _) = (outcomes[i].get() for i in (0, 2, 3))
    assert (a, c, d) == ("a", "c", "d")
    assert next_pid != first_pid  # the queued calls were read again, by a fresh worker


def test_a_caller_that_stops_early_with_calls_queued_leaves_no_answer_behind():
    outcomes = budget.run_each(_started_at, [(i, 0.2) for i in range(5)], timeout=10,
                               max_memory_mb=100, ahead=4)
    assert next(outcomes).get()[0] == 0
    outcomes.close()
    assert budget.run(_started_at, "next", timeout=10, max_memory_mb=100)[0] == "next"


def _ended_at(seconds):
    time.sleep(seconds)
    return time.time(), os.getpid()


def test_submit_returns_while_the_call_runs_in_the_worker_and_result_waits_for_it():
    pending = budget.submit(_ended_at, 0.5, timeout=10, max_memory_mb=100)
    returned = time.time()
    ended, pid = pending.result()
    assert returned < ended and pid != os.getpid()
    with pytest.raises(ValueError, match="invalid literal"):
        budget.submit(int, "not a number", timeout=5, max_memory_mb=100).result()


def test_an_abandoned_call_s_answer_never_reaches_the_next_caller():
    pending = budget.submit(_ended_at, 0.5, timeout=10, max_memory_mb=100)
    pending.abandon()
    with pytest.raises(budget.BudgetExceeded, match="abandoned"):
        pending.result()
    # Had the worker been kept, this call would have received the abandoned call's answer.
    assert budget.run(_started_at, "next", timeout=10, max_memory_mb=100)[0] == "next"


def test_jobs_read_on_threads_each_with_its_own_worker_and_answer_in_file_order(
        monkeypatch, tmp_path):
    """--jobs N: N reading workers share the files; a breach is one row, in its place."""
    files = []
    for i in range(80):
        files.append(tmp_path / f"Kent {i:02d}.txt")
        files[-1].write_text(f"Kent Police. Response {i}: we refer victims to the NRM.\n")
    real = extract.read_document
    readers = tmp_path / "readers"
    readers.mkdir()

    def reader(path, **kwargs):
        (readers / Path(path).name).write_text(str(os.getpid()))
        if Path(path).name == "Kent 07.txt":
            time.sleep(60)
        return real(path, **kwargs)

    monkeypatch.setattr(extract, "read_document", reader)
    rows = [out.result for out in extract.extract_on_threads(files, 2, ingest=TIGHT, seg=SEG)]
    assert [Path(r.path).name for r in rows] == [f.name for f in files]
    assert rows[7].status == "error" and rows[7].reason.startswith("took longer than 2 s")
    assert all(r.status == "ok" for i, r in enumerate(rows) if i != 7)
    pids = {p.read_text() for p in readers.iterdir()}
    assert len(pids) >= 3  # two workers, and a fresh one after the breach
    assert str(os.getpid()) not in pids


def test_a_caller_that_stops_early_ends_the_reading_threads(tmp_path):
    files = []
    for i in range(40):
        files.append(tmp_path / f"Kent {i}.txt")
        files[-1].write_text(f"Kent Police. Response {i}.\n")
    outcomes = extract.extract_on_threads(files, 2, ingest=TIGHT, seg=SEG)
    assert next(outcomes).result.status == "ok"
    outcomes.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("forcecov-reader-")]


def test_run_each_queues_calls_only_while_their_cost_fits():
    outcomes = budget.run_each(_started_at, [(i, 0.05) for i in range(4)], timeout=10,
                               max_memory_mb=100, ahead=5, cost=lambda args: 1.5, max_cost=2)
    handed_over, answers = [], []
    for outcome in outcomes:
        answers.append(outcome.get())
        handed_over.append(time.time())
        time.sleep(0.5)
    assert [value for value, _ in answers] == [0, 1, 2, 3]
    # One call at a time beyond the one answered: call k + 2 waited for the caller.
    assert all(answers[k + 2][1] > handed_over[k] + 0.5 for k in range(2))


def test_big_files_are_shared_out_between_reading_workers(monkeypatch, tmp_path):
    files = []
    for i in range(4):
        files.append(tmp_path / f"Kent {i}.txt")
        files[-1].write_text("Kent Police. We refer every potential victim to the NRM.\n" * 14)
    monkeypatch.setattr(extract, "READ_AHEAD_BYTES_PER_WORKER", 1000)  # about one file each
    real = extract.read_document

    def reader(path, **kwargs):
        Path(path).with_suffix(".pid").write_text(str(os.getpid()))
        time.sleep(0.3)
        return real(path, **kwargs)

    monkeypatch.setattr(extract, "read_document", reader)
    rows = [out.result for out in extract.extract_on_threads(files, 2, ingest=TIGHT, seg=SEG)]
    assert all(r.status == "ok" for r in rows)
    assert len({f.with_suffix(".pid").read_text() for f in files}) == 2


def test_reading_workers_run_below_the_caller_s_priority_and_are_replaced_for_another():
    # os.nice(0) returns the process's niceness without changing it.
    mine = os.nice(0)
    assert budget.submit(os.nice, 0, timeout=10, max_memory_mb=100, nice=5).result() == mine + 5
    assert next(budget.run_each(os.nice, [(0,)], timeout=10, max_memory_mb=100,
                                nice=0)).get() == mine
    assert IngestParams().worker_nice > 0


def test_worker_nice_out_of_range_is_refused():
    with pytest.raises(ValueError, match="worker_nice"):
        IngestParams(worker_nice=25)
