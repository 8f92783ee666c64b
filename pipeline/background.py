"""A second process that imports one module at once and runs its functions when asked.

The stages use it for MLflow: importing MLflow and opening its SQLite store take 3-4 s of one
core, which then overlap the stage's own work (reading, counting, fitting, scoring) instead of
adding to it. The stage itself never imports the module.
"""

from __future__ import annotations

import importlib

# loky's executor (joblib's process backend), not multiprocessing's: a spawned multiprocessing worker
# first re-runs the parent's main script, which fails for `python -` and is wrong for any script
from joblib.externals.loky import ProcessPoolExecutor


def _call(module: str, name: str, args: tuple, kwargs: dict):
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


class Background:
    """`module`'s functions in one worker process; `warm(*args)` runs there at once, to import and connect early.

    A call waits for its result and raises its exception here. A failed warm-up is not reported:
    the call that needs what it prepared fails the same way, where it is waited for.
    """

    def __init__(self, module: str, warm: str | None = None, *args):
        self.module = module
        # a fresh interpreter (loky spawns), not a fork of a process holding BLAS and joblib threads
        self._pool = ProcessPoolExecutor(1)
        if warm:
            self._pool.submit(_call, module, warm, args, {})

    def __call__(self, name: str, *args, **kwargs):
        return self._pool.submit(_call, self.module, name, args, kwargs).result()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc) -> None:
        # Every call has returned its result (or the stage failed and needs none): the worker is
        # stopped rather than waited for, since its own exit (MLflow's teardown) takes about a second.
        self._pool.shutdown(wait=True, kill_workers=True)
