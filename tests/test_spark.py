"""The Spark engine on a real standalone cluster (1 master, 2 workers on 127.0.0.1), against the local engine.

One cluster for the module. Jobs are submitted to spark://127.0.0.1:PORT as a user would:
`spark-submit pipeline/tagging/spark_job.py` and `python -m pipeline tag --engine spark`. The
inputs are a few hundred corpus articles (read at test time) with hostile records among them;
one job loses a Python worker (SIGKILL) mid-job. Sentences here were written for these tests.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from spark_cluster import Cluster, cluster_env, spark_home

from pipeline.tagging.outputs import flat_row, summary_columns
from pipeline.tagging.spark import SLICE_CONF

NOTE = (
    "Hai nước ký kết thỏa thuận hợp tác phòng, chống mua bán người.\n\nCác nạn nhân được hỗ trợ tâm lý và học nghề.\n"
)
KEYS = ["source_path", "article_id", "paragraph"]


def corpus_lines(corpus: Path, name: str, n: int) -> list[str]:
    with gzip.open(corpus / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, n)]


@pytest.fixture(scope="module")
def spark_inputs(tmp_path_factory, corpus_dir):
    """A folder: 200 trafficking records (gzip; record 101 again at the end), 40 general records with hostile
    lines, 60 related rows in Parquet, text files. With the jobs' SLICE_CONF the gzip file is tagged in slices."""
    folder = tmp_path_factory.mktemp("spark_in") / "in"
    (folder / "texts").mkdir(parents=True)
    lines = corpus_lines(corpus_dir, "trafficking", 200)
    lines.append(lines[100])  # line 201 repeats line 101's id, which another slice tags: warned of all the same
    records = folder / "a_records.jsonl.gz"
    records.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    general = corpus_lines(corpus_dir, "general", 40)
    hostile = [*general[:20], "{this is not json", *general[20:], json.dumps({"id": "empty-1", "text": " "})]
    (folder / "b_hostile.jsonl").write_text("\n".join(hostile) + "\n", encoding="utf-8")
    recs = [json.loads(line) for line in corpus_lines(corpus_dir, "related", 60)]
    table = pa.table(
        {"id": [r["id"] for r in recs], "text": [r["text"] for r in recs], "source": [r["source"] for r in recs]}
    )
    pq.write_table(table, folder / "c_rows.parquet", row_group_size=20)
    (folder / "texts" / "note.txt").write_text(NOTE, encoding="utf-8")
    (folder / "texts" / "blob.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "texts" / "empty.txt").write_bytes(b"")
    expected = {
        (str(records), 201, "warning", "was already used at"),
        (str(folder / "b_hostile.jsonl"), 21, "error", "malformed JSON"),
        (str(folder / "b_hostile.jsonl"), 42, "error", "has empty 'text'"),
        (str(folder / "texts" / "blob.txt"), None, "error", "cannot be decoded"),
        (str(folder / "texts" / "empty.txt"), None, "error", "is empty"),
    }
    return folder, expected


def run(cmd: list[str], env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def tag_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "pipeline", "--params", str(ROOT / "configs" / "params.yaml"), "tag", *map(str, args)]


@pytest.fixture(scope="module")
def local_run(spark_inputs, model_file, tmp_path_factory):
    """The local engine on the same inputs: paragraph rows and summaries, and its messages."""
    folder, _ = spark_inputs
    out = tmp_path_factory.mktemp("local")
    done = run(tag_cmd(folder, "--model", model_file, "-o", out / "tags.parquet", "--summary", out / "summary.jsonl"))
    assert done.returncode == 1, done.stderr
    summary = pd.DataFrame([flat_row(json.loads(line)) for line in (out / "summary.jsonl").open(encoding="utf-8")])
    summary = summary[summary_columns()]
    return pd.read_parquet(out / "tags.parquet"), summary, done.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One master and two workers (one core, 1 GB each) on free ports; every process ended at the end."""
    started = Cluster(tmp_path_factory.mktemp("cluster"), workers=2, cores=1, memory="1g").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def job_env(tmp_path_factory, cluster):
    """The jobs' environment: loopback, small executors, gzip files over 50 kB in slices, and an event log."""
    conf = tmp_path_factory.mktemp("conf")
    events = conf / "events"
    events.mkdir()
    (conf / "spark-defaults.conf").write_text(
        f"spark.executor.memory 512m\n{SLICE_CONF} 50000\nspark.eventLog.enabled true\nspark.eventLog.compress false\n"
        f"spark.eventLog.rolling.enabled false\nspark.eventLog.dir {events.as_uri()}\n",
        encoding="utf-8",
    )
    env = cluster_env(cluster.work)
    env["SPARK_CONF_DIR"] = str(conf)
    return env, events


def closing(stderr: str) -> list[str]:
    """The closing lines of a run (under spark-submit the driver's log lines are interleaved with them)."""
    return [line for line in stderr.splitlines() if line.startswith("tag: ") and "inputs failed" in line]


def sorted_frame(frame: pd.DataFrame, keys=KEYS) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def failed_tasks(events: Path) -> list[str]:
    """The end reasons of every task that did not succeed, from the event logs of the jobs run so far."""
    reasons = []
    for log in (p for p in events.rglob("*") if p.is_file() and not p.name.startswith(".")):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            event = json.loads(line)
            if event.get("Event") == "SparkListenerTaskEnd" and event["Task End Reason"]["Reason"] != "Success":
                reasons.append(event["Task End Reason"]["Reason"])
    return reasons


@pytest.fixture(scope="module")
def submitted(spark_inputs, model_file, cluster, job_env, tmp_path_factory):
    """`spark-submit pipeline/tagging/spark_job.py` on the cluster, Parquet part files."""
    folder, _ = spark_inputs
    env, _ = job_env
    out = tmp_path_factory.mktemp("spark_out") / "tags.parquet"
    submit = [str(spark_home() / "bin" / "spark-submit"), "--master", cluster.url]
    done = run(
        [*submit, str(ROOT / "pipeline" / "tagging" / "spark_job.py"), folder, "-o", out, "--model", model_file], env
    )
    return done, out


def test_cluster_job_equals_local_engine(submitted, local_run):
    done, out = submitted
    local, local_summary, local_err = local_run
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    # spark-submit passes the Python driver's standard error on through its standard output
    assert closing(done.stdout + done.stderr) == closing(local_err)[-1:]  # "tag: 4 of 305 inputs failed ..."
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "_SUCCESS",
        "_errors",
        "_job.json",
        "_summary",
        *sorted(p.name for p in out.glob("part-*.parquet")),
    ]
    tags = pd.read_parquet(out)
    assert len(tags) > 3000 and tags.article_id.nunique() == 200 + 40 + 60 + 1
    pd.testing.assert_frame_equal(sorted_frame(tags), sorted_frame(local))
    summary = sorted_frame(pd.read_parquet(out / "_summary"), ["source_path", "article_id"])
    assert list(summary.columns) == summary_columns()
    pd.testing.assert_frame_equal(summary, sorted_frame(local_summary, ["source_path", "article_id"]))
    records = str(Path(local.source_path.iloc[0]).parent / "a_records.jsonl.gz")
    holding = [p for p in out.glob("part-*.parquet") if (pd.read_parquet(p).source_path == records).any()]
    assert len(holding) == 2  # the gzip file was tagged in two slices, one per worker
    for part in out.glob("part-*.parquet"):  # the documented order inside a part file: by file, place in it, paragraph
        frame = pd.read_parquet(part)
        assert frame.source_path.is_monotonic_increasing
        same = frame.article_id.eq(frame.article_id.shift())
        assert (frame.paragraph[same] == frame.paragraph.shift()[same] + 1).all()
        assert (frame.paragraph[~same] == 0).all()


def test_json_lines_on_the_cluster_are_the_local_engine_s(spark_inputs, model_file, cluster, job_env, tmp_path):
    """JSONL part files (the executors write the local engine's fast encoding) hold its very lines, and its summaries."""
    folder, _ = spark_inputs
    env, _ = job_env
    local, local_summary = tmp_path / "local.jsonl", tmp_path / "summary.jsonl"
    done = run(tag_cmd(folder, "--model", model_file, "-o", local, "--summary", local_summary))
    assert done.returncode == 1, done.stderr
    out = tmp_path / "spark_out"
    done = run(
        tag_cmd(folder, "--engine", "spark", "--spark-master", cluster.url, "--model", model_file, "-o", out), env
    )
    assert done.returncode == 1, done.stderr[-3000:]

    def lines(paths) -> list[str]:
        return sorted(line for p in paths for line in p.read_text(encoding="utf-8").splitlines())

    assert lines(sorted(out.glob("part-*"))) == lines([local])  # byte for byte
    parsed = [json.dumps(json.loads(line), sort_keys=True) for line in lines(sorted((out / "_summary").glob("part-*")))]
    assert sorted(parsed) == sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines([local_summary]))


def test_hostile_records_are_rows_of_the_errors_output(submitted, spark_inputs, local_run):
    done, out = submitted
    _, expected = spark_inputs
    errors = pd.read_parquet(out / "_errors")
    assert list(errors.columns) == ["file", "line", "severity", "reason"]
    found = {(r.file, None if pd.isna(r.line) else int(r.line)) for r in errors.itertuples()}
    assert found == {(f, line) for f, line, _, _ in expected}
    for f, line, severity, reason in expected:
        row = errors[(errors.file == f) & (errors.line.isna() if line is None else errors.line == line)].iloc[0]
        assert reason in row.reason and row.severity == severity
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith(("error:", "warning:"))]
    assert sorted(said) == sorted(line for line in local_run[2].splitlines() if line.startswith(("error:", "warning:")))
    counts = json.loads((out / "_job.json").read_text())["counts"]
    assert (counts["failed"], counts["warned"]) == (4, 1)


def python_workers(cluster) -> list:
    """Python workers running tasks: children of the pyspark daemon whose parent is an executor JVM."""
    import psutil

    found = []
    for jvm in cluster.executor_jvms():
        with contextlib.suppress(psutil.NoSuchProcess):
            for daemon in jvm.children():
                found += daemon.children()
    return found


def test_killed_python_worker_is_retried_and_rerun_replaces_output(submitted, local_run, cluster, job_env, model_file):
    done, out = submitted
    env, events = job_env
    before = sorted_frame(pd.read_parquet(out))
    folder = Path(local_run[0].source_path.iloc[0]).parent
    cmd = tag_cmd(folder, "--engine", "spark", "--spark-master", cluster.url, "--model", model_file, "-o", out)
    failed_before = len(failed_tasks(events))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for worker in python_workers(cluster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)  # as the OOM killer would
                killed = worker.pid
                break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=900)
    assert killed is not None, "no Python worker was seen while the job ran"
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    assert len(failed_tasks(events)) > failed_before  # the task on the killed worker failed, and was run again
    after = sorted_frame(pd.read_parquet(out))
    pd.testing.assert_frame_equal(after, before)
    pd.testing.assert_frame_equal(after, sorted_frame(local_run[0]))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no staging left


def test_altered_model_is_refused_on_every_executor(cluster, job_env, spark_inputs, model_file, tmp_path):
    env, _ = job_env
    folder, _ = spark_inputs
    model = tmp_path / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    (tmp_path / "model.json").write_bytes(model_file.with_suffix(".json").read_bytes())
    out = tmp_path / "out"
    # A file:// URI is read by the executors only: the driver never opens it, each Python worker checks it.
    done = run(
        tag_cmd(folder, "--engine", "spark", "--spark-master", cluster.url, "--model", model.as_uri(), "-o", out), env
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "does not match" in done.stderr.strip().splitlines()[-1], done.stderr[-3000:]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-", "-o", "{tmp}/out"], "standard input is read by the local engine only"),
        (["{tmp}/in", "-o", "{tmp}/in"], "would hold or replace an input"),
        (["{tmp}/in", "-o", "{tmp}/other"], "did not write; refusing to replace it"),
        (["{tmp}/in", "-o", "{tmp}/in/note.txt.d"], "is a file"),
        (["{tmp}/in", "-o", "{tmp}/out", "--summary", "{tmp}/s.jsonl"], "--summary is not available"),
        (["{tmp}/in", "-o", "{tmp}/out.csv"], "JSONL or Parquet part files"),
        (["{tmp}/in"], "give -o FOLDER"),
    ],
    ids=["stdin", "output is the input", "foreign folder", "output is a file", "summary", "csv", "no output"],
)
def test_refused_before_spark_starts(tmp_path, model_file, args, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "note.txt").write_text(NOTE, encoding="utf-8")
    (tmp_path / "in" / "note.txt.d").write_text("a file", encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine", encoding="utf-8")
    args = [a.format(tmp=tmp_path) for a in args]
    done = run(tag_cmd(*args, "--engine", "spark", "--model", model_file), timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "other" / "keep.txt").read_text(encoding="utf-8") == "mine"
