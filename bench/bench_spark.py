"""Benchmark of `tag --engine spark` against the local engine, on the general corpus file, in one run.

Prints, for the local engine and for Spark (local[N], then a standalone cluster of 2 workers on
127.0.0.1 unless --skip-cluster): paragraphs per second after the Spark session started, the
session's start time, the driver's peak RSS (the Python driver and its JVM, which in local mode
runs the executors' JVM side too) and the executors' peak RSS (their Python workers, and on the
cluster the executor JVMs), with the input 1x and `--scale`x: the first 1/`--scale` of the file,
then the whole file (copies of one file would be scored from the model's cache).

    python bench/bench_spark.py [--model models/model.joblib] [--jobs 2] [--scale 4] [--skip-cluster] [--repeat N]

With --repeat N every row is run N times (engines in turn) and shows the median job time with its
range, the median of the ratios to the local engine's time in the same round, and the median peak
RSS with the largest: this machine's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the standalone cluster launcher of the tests

from peaks import rss, run_sampled, tree  # noqa: E402 - bench/ is the script's folder


def child(args) -> None:
    """The measured driver: start a session, run one job, print the timings as JSON."""
    from pipeline.config import load_params
    from pipeline.tagging.batch import TagRequest, _options
    from pipeline.tagging.spark import model_files, prepare, spark_session, tag_on_spark

    req = TagRequest(paths=args.inputs, output=args.out, model=args.model, engine="spark")
    options = _options(req, "jsonl", load_params(ROOT / "configs" / "params.yaml"))
    plan, out = prepare(req.paths, req.output, options)
    with tempfile.TemporaryDirectory() as tmp:
        model = model_files(req.model, Path(tmp))  # checked before the session starts, as `tag` does
        start = time.perf_counter()
        spark = spark_session(args.master, {"spark.executor.memory": "1g"})
        session = time.perf_counter() - start
        counts = tag_on_spark(spark, plan, out, options, model)
        job = time.perf_counter() - start - session
    spark.stop()
    print(json.dumps({"session": session, "job": job, "paragraphs": counts.paragraphs}))


def measure(cmd: list[str], cluster=None) -> dict:
    """Run a command; wall time, its stdout, and peak RSS of the driver side and of the executors (sampled)."""

    def sample(pid: int) -> dict:
        procs = tree(pid)
        workers = [p for p in procs if _is_python_worker(p)]
        executors = list(workers)
        if cluster is not None:
            for jvm in cluster.executor_jvms():
                executors += [jvm, *jvm.children(recursive=True)]
        return {"driver": rss([p for p in procs if p not in workers]), "executors": rss(executors)}

    seconds, peaks, proc, out, err = run_sampled(cmd, ROOT, sample, 0.1)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"seconds": seconds, "stdout": out, "stderr": err, "driver": 0, "executors": 0, **peaks}


def _is_python_worker(p) -> bool:
    with contextlib.suppress(Exception):
        return "pyspark.daemon" in " ".join(p.cmdline())
    return False


def spark_run(source_paths: list[Path], model: Path, out: Path, master: str, cluster=None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--master", master, "--model", str(model)]
    cmd += ["--out", str(out), "--inputs", *map(str, source_paths)]
    found = measure(cmd, cluster)
    found.update(json.loads(found["stdout"].strip().splitlines()[-1]))
    shutil.rmtree(out, ignore_errors=True)
    return found


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def peaks(runs: list[dict], key: str) -> str:
    """The median peak RSS of the runs, with the largest in parentheses when there are several."""
    values = [f[key] for f in runs]
    return mib(statistics.median(values)) + (f" ({mib(max(values))})" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "models" / "model.joblib"))
    parser.add_argument("--source", default=str(ROOT / ".." / "shared" / "corpus" / "general.jsonl.gz"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--master", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--inputs", nargs="*", default=[])
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    source, model = Path(args.source).resolve(), Path(args.model).resolve()

    print(
        "| engine | input | paragraphs/s after start | x local engine's time | session start s | job s "
        "| driver peak RSS | executors peak RSS |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        tmp = Path(tmp)
        # 1x is the first 1/scale of the file, `scale`x the whole file (copies would be scored from the cache).
        with gzip.open(source, "rb") as f:
            lines = f.readlines()
        part = tmp / "part.jsonl.gz"
        part.write_bytes(gzip.compress(b"".join(lines[: len(lines) // args.scale])))
        cmd = [sys.executable, "-m", "pipeline", "tag", str(source), "--model", str(model), "--jobs", str(args.jobs)]
        whole = f"{args.scale}x (whole file)"

        def local_run() -> dict:
            found = measure([*cmd, "-o", str(tmp / "local.jsonl"), "--quiet"])
            found["paragraphs"] = (tmp / "local.jsonl").read_bytes().count(b"\n")
            return found | {"job": found["seconds"], "session": None}

        runs = [("local engine", whole, local_run)]
        masters = [f"local[{args.jobs}]"]
        cluster = None
        if not args.skip_cluster:
            from spark_cluster import Cluster

            cluster = Cluster(tmp / "cluster", workers=2, cores=1, memory="2g").start()
            masters.append(cluster.url)
        try:
            for master in masters:
                on = cluster if master.startswith("spark://") else None
                name = "spark standalone, 2 workers x 1 core" if on else f"spark {master}"
                for scale, inputs in (("1x", [part]), (whole, [source])):
                    run = partial(spark_run, inputs, model, tmp / "spark_out", master, on)
                    runs.append((name, scale, run))
            found = {i: [] for i in range(len(runs))}
            for _ in range(args.repeat):  # engines in turn: a round shares the machine's speed
                for i, (_, _, run) in enumerate(runs):
                    found[i].append(run())
        finally:
            if cluster is not None:
                cluster.stop()
    local = [f["job"] for f in found[0]]
    for i, (name, scale, _) in enumerate(runs):
        jobs = [f["job"] for f in found[i]]
        job = statistics.median(jobs)
        spread = f" ({min(jobs):.1f}-{max(jobs):.1f})" if len(jobs) > 1 else ""
        ratio = statistics.median(j / t for j, t in zip(jobs, local, strict=True)) if scale == whole else None
        last = found[i][-1]
        cells = [
            name,
            scale,
            f"{last['paragraphs'] / job:,.0f}",
            f"{ratio:.2f}" if ratio is not None else "",
            f"{statistics.median(f['session'] for f in found[i]):.1f}" if last["session"] is not None else "",
            f"{job:.1f}{spread}",
            peaks(found[i], "driver"),
            peaks(found[i], "executors") if last["session"] is not None else "",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    n = found[0][-1]["paragraphs"]
    times = f"; each row the median of {args.repeat} runs (range)" if args.repeat > 1 else ""
    print(f"\ninput: {source.name} ({n:,} paragraphs); model {model.name}; {args.jobs} cores, machine shared{times}")
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
