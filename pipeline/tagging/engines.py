"""The local engine: units of work through a pool of worker processes, results back in input order.

The model is loaded once: in the main process before it forks the workers (they share it), or
by each worker where processes are spawned. At most a few units per worker are in
flight, so memory stays bounded however large the input; results come back in the order the
units were read, so the output does not depend on timing. A worker that dies (killed, out of
memory) stops the run at once with a message (concurrent.futures notices the lost process), and
workers whose main process was killed end quietly (a parent-death signal).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from pipeline.tagging.inputs import Unit
from pipeline.tagging.scoring import TagOptions, UnitResult, load_scorer, process

IN_FLIGHT_PER_WORKER = 3
WATCH_SECONDS = 0.5  # how often a wait for a result checks that every worker is alive
_WORKER: dict = {}
_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


class EngineError(Exception):
    """The engine cannot go on (a worker process died); the message says what happened."""


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker(options: TagOptions) -> None:
    """Load the model for this run's units; a failure is kept and reported by the first unit."""
    _WORKER.clear()
    _WORKER["options"] = options
    try:
        _WORKER["scorer"] = load_scorer(options.model, estimator=options.explain > 0)
    except Exception as e:  # an initializer that raises makes the pool restart workers forever
        _WORKER["fatal"] = str(e) or type(e).__name__


def _end_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when its main process dies (Linux), so no orphan writes to a closed pipe."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the main process died before the signal was asked for
        os._exit(0)


def _init_pool_worker(options: TagOptions, parent: int) -> None:
    """Initializer of a pool worker: the main process alone answers Ctrl-C and SIGTERM, then ends the workers."""
    # A terminal's Ctrl-C (or hang-up) reaches every process of the group; a worker would die with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Forked workers inherit the main process's SIGTERM handler; ending a worker must simply end it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # An orphan's writes to its closed result pipe would print BrokenPipe tracebacks: it ends instead.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _end_with_parent(parent)
    if not (_WORKER.get("inherited") and _WORKER.get("options") == options):
        _init_worker(options)


def _run_unit(unit: Unit) -> UnitResult:
    if "fatal" in _WORKER:
        return UnitResult(fatal=_WORKER["fatal"])
    return process(_WORKER["scorer"], unit, _WORKER["options"])


def _context():
    # fork starts workers at once, sharing the already imported libraries; elsewhere the platform default.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _dead_worker(pool: ProcessPoolExecutor) -> bool:
    """Whether a worker process of the pool has ended (workers only end when the pool is shut)."""
    return any(proc.exitcode is not None for proc in (getattr(pool, "_processes", None) or {}).values())


def _result(future: Future, pool: ProcessPoolExecutor) -> UnitResult:
    """A unit's result; EngineError as soon as a worker has died (checked every WATCH_SECONDS while waiting)."""
    while True:
        try:
            return future.result(timeout=WATCH_SECONDS)
        except TimeoutError:
            # A worker killed while sending a result leaves the pool waiting for the rest of that
            # message for ever, without marking it broken: the watch here does not depend on it.
            if not _dead_worker(pool):
                continue
        except BrokenProcessPool:
            pass
        raise EngineError(
            "a worker process died (killed, or out of memory?): the run is stopped; "
            "the inputs done so far are kept when the output is a file"
        )


def _stop(pool: ProcessPoolExecutor, finished: bool) -> None:
    """Shut the pool: wait for idle workers after a finished run, else end them now (a signal, an error, a dead worker)."""
    if finished:
        pool.shutdown(wait=True)
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        with contextlib.suppress(OSError, ValueError):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    # The pool's thread may be reading half a message from a killed worker: with every worker gone,
    # closing this process's end of the result pipe ends that read, so the pool (and exit) can finish.
    with contextlib.suppress(AttributeError, OSError):
        pool._result_queue._writer.close()
    pool.shutdown(wait=False, cancel_futures=True)
    # Python 3.11's exit hook wakes every pool thread it still lists, even one whose wake-up pipe
    # that thread has closed on its way out (a traceback at exit, fixed in 3.12): let the thread
    # finish, then take it off the list.
    from concurrent.futures import process as cf_process

    thread = getattr(pool, "_executor_manager_thread", None)
    if thread is not None:
        thread.join(5)
        if not thread.is_alive():
            with contextlib.suppress(AttributeError, TypeError):
                cf_process._threads_wakeups.pop(thread, None)


def run_local(units: Iterable[Unit], options: TagOptions, jobs: int) -> Iterator[UnitResult]:
    """Tag every unit with `jobs` worker processes (in this process when jobs is 1); results in input order."""
    if jobs <= 1:
        _init_worker(options)
        for unit in units:
            yield _run_unit(unit)
        return
    context = _context()
    if context.get_start_method() == "fork":
        # Loaded once here, the model (and its compiled tables) reaches every forked worker at no
        # cost, instead of each worker unpickling and compiling it again at the same time.
        _init_worker(options)
        _WORKER["inherited"] = True
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_pool_worker, initargs=(options, os.getpid()))
    finished = False
    try:
        pending: deque = deque()
        for unit in units:
            pending.append(pool.submit(_run_unit, unit))
            if len(pending) >= jobs * IN_FLIGHT_PER_WORKER:
                yield _result(pending.popleft(), pool)
        while pending:
            yield _result(pending.popleft(), pool)
        finished = True
    finally:
        _stop(pool, finished)
        _WORKER.clear()  # the main process's copy of the model is not needed after the run
