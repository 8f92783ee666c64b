"""The local engine: units of work through a pool of worker processes, results back in input order.

Each worker loads the model once (pool initializer). At most a few units per worker are in
flight, so memory stays bounded however large the input; results come back in the order the
units were read, so the output does not depend on timing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator

from pipeline.tagging.inputs import Unit
from pipeline.tagging.scoring import Scorer, TagOptions, UnitResult, load_for_tagging, process

IN_FLIGHT_PER_WORKER = 3
_WORKER: dict = {}


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker(options: TagOptions) -> None:
    """Pool initializer: load the model once per worker; a failure is kept and reported by the first unit."""
    _WORKER.clear()
    _WORKER["options"] = options
    try:
        _WORKER["scorer"] = Scorer(load_for_tagging(options.model)[0])
    except Exception as e:  # an initializer that raises makes the pool restart workers forever
        _WORKER["fatal"] = str(e) or type(e).__name__


def _init_pool_worker(options: TagOptions) -> None:
    """Initializer of a pool worker: the main process alone answers Ctrl-C and SIGTERM, then ends the workers."""
    # A terminal's Ctrl-C (or hang-up) reaches every process of the group; a worker would die with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Forked workers inherit the main process's SIGTERM handler; pool.terminate() must simply end them.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _init_worker(options)


def _run_unit(unit: Unit) -> UnitResult:
    if "fatal" in _WORKER:
        return UnitResult(fatal=_WORKER["fatal"])
    return process(_WORKER["scorer"], unit, _WORKER["options"])


def _context():
    # fork starts workers at once, sharing the already imported libraries; elsewhere the platform default.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def run_local(units: Iterable[Unit], options: TagOptions, jobs: int) -> Iterator[UnitResult]:
    """Tag every unit with `jobs` worker processes (in this process when jobs is 1); results in input order."""
    if jobs <= 1:
        _init_worker(options)
        for unit in units:
            yield _run_unit(unit)
        return
    pool = _context().Pool(jobs, initializer=_init_pool_worker, initargs=(options,))
    try:
        pending: deque = deque()
        for unit in units:
            pending.append(pool.apply_async(_run_unit, (unit,)))
            if len(pending) >= jobs * IN_FLIGHT_PER_WORKER:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()
