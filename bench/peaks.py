"""Peak resident memory of a command's processes, sampled while it runs: the helper of bench_tag and bench_spark."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable


def rss(procs) -> int:
    """Resident memory of some psutil processes, in bytes (one that ended meanwhile counts 0)."""
    total = 0
    for p in procs:
        with contextlib.suppress(Exception):  # a worker may end between listing and reading
            total += p.memory_info().rss
    return total


def tree(pid: int) -> list:
    """A process and all its descendants (empty once it has ended)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    return rss(tree(pid))


def run_sampled(cmd: list[str], cwd, sample: Callable[[int], dict], interval: float, stdout=subprocess.PIPE):
    """Run `cmd`, calling `sample(pid)` every `interval` s and keeping each key's largest value; (seconds, peaks, proc, out, err)."""
    peaks: dict = {}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True)

    def loop():
        while proc.poll() is None:
            for key, value in sample(proc.pid).items():
                peaks[key] = max(peaks.get(key, 0), value)
            time.sleep(interval)

    sampler = threading.Thread(target=loop, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    return seconds, peaks, proc, out, err
