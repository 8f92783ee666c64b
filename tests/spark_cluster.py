"""A real Spark standalone cluster on 127.0.0.1 for tests and benchmarks: one master and N workers from pyspark's jars.

Started with `spark-class` (the launch classes ship inside pyspark), on free ports, web UIs on
free ports too (the master's JSON page tells when the workers have registered); `stop()` ends
every process it started, executors included.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def cluster_env(work: Path) -> dict:
    """Loopback only, logs and work folders in `work`, this Python for the executors' workers."""
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(work / "logs"),
        SPARK_WORKER_DIR=str(work / "work"),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    return env


class Cluster:
    """One master and `workers` workers, each with `cores` cores and `memory` for its executors."""

    def __init__(self, work: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
        self.work, self.n_workers, self.cores, self.memory = work, workers, cores, memory
        self.procs: list[subprocess.Popen] = []
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"

    def _launch(self, name: str, args: list[str]) -> None:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        self.procs.append(subprocess.Popen(cmd, env=cluster_env(self.work), stdout=log, stderr=subprocess.STDOUT))

    def start(self, timeout: float = 180) -> Cluster:
        self.work.mkdir(parents=True, exist_ok=True)
        master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port)]
        self._launch("master", [*master, "--webui-port", str(self.ui_port)])
        for i in range(self.n_workers):
            worker = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(free_port())]
            worker += ["--webui-port", str(free_port()), "--cores", str(self.cores), "--memory", self.memory]
            self._launch(f"worker{i}", [*worker, "--work-dir", str(self.work / f"work{i}"), self.url])
        deadline = time.monotonic() + timeout
        while self.alive_workers() < self.n_workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                logs = "\n".join((self.work / f).read_text(errors="replace")[-2000:] for f in ("master.log",))
                raise RuntimeError(f"the Spark cluster did not start:\n{logs}")
            time.sleep(0.5)
        return self

    def alive_workers(self) -> int:
        """Workers the master lists as ALIVE (0 while it is not up)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
                state = json.load(r)
        except (OSError, ValueError):  # not listening yet, or a page served before the JSON one is ready
            return 0
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def executor_jvms(self) -> list:
        """The executor processes (CoarseGrainedExecutorBackend) the workers started."""
        import psutil

        found = []
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        if "CoarseGrainedExecutorBackend" in " ".join(child.cmdline()):
                            found.append(child)
        return found

    def stop(self) -> None:
        """End the workers (and their executors) and the master; whatever is left is killed."""
        import psutil

        every = []
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                every += psutil.Process(proc.pid).children(recursive=True)
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in every:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.procs.clear()
