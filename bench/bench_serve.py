"""Bounded load benchmark of the served model: `mlflow models serve` on 127.0.0.1, every answer checked.

    python bench/bench_serve.py [--model models/model.joblib] [--workers 1 2] [--time-limit 300]
                                [--connections keep-alive per-request]

Sets up a temporary SQLite MLflow store, logs the saved model (the joblib file and its model.json)
there as the project's pyfunc model with pipeline.tracking.log_training, and for each `--workers`
value starts `mlflow models serve -m runs:/<id>/model --env-manager local -h 127.0.0.1 -p <free port>`
in its own process group. Then `--clients` threads send `--requests` POSTs in all, each of
`--min-paras` to `--max-paras` paragraphs (seeded sizes) drawn from the paragraphs of the corpus's
general.jsonl.gz, read at run time (no corpus text is written anywhere but the temporary folder),
each client on one keep-alive connection or a new connection per request (`--connections`; one run
per workers x connections pair, each on a fresh server).

Every answer is checked against what the same saved model gives locally for the same rows in the
same batch (pipeline.model.predict, each paragraph scored as a one-paragraph article, as the pyfunc
does): HTTP 200, one prediction per row, the same label, `probability` and every `p_<label>` within
1e-9. Answers are checked after the load phase, so checking costs the server no CPU.

At `--time-limit` seconds of load the clients stop: no new request starts, and a request still in
flight is cut (reported, not counted as an error). Prints requests/s, paragraphs/s, p50/p90/p99
latency, errors and mismatches per configuration.

Exit code: 0 every request answered and correct; 1 an error or a mismatch; 2 the setup failed
(model, corpus, server start); 3 no error but the time limit stopped the run before all requests.
The server is stopped (its whole process group) on every path out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

HOST = "127.0.0.1"  # the only address this benchmark talks to
TOLERANCE = 1e-9


class SetupError(Exception):
    """The benchmark could not start: a missing model or corpus, a server that does not come up."""


@dataclass
class Result:
    """What happened to one request: an HTTP answer, a client-side error, or a cut at the time limit."""

    status: int | None = None
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""
    cut: bool = False


# -- workload --------------------------------------------------------------------------------------


def corpus_paragraphs(path: Path) -> list[str]:
    """Every paragraph of a corpus file, cut as `tag` cuts articles (pipeline.text.paragraphs)."""
    from pipeline.text import CorpusError, paragraphs, read_jsonl

    out: list[str] = []
    try:
        for _, rec in read_jsonl(path):
            out.extend(paragraphs(rec["text"]))
    except CorpusError as e:
        raise SetupError(str(e)) from None
    if not out:
        raise SetupError(f"{path}: no paragraphs")
    return out


def make_requests(pool: list[str], n: int, lo: int, hi: int, seed: int) -> list[list[str]]:
    """`n` batches of `lo`..`hi` paragraphs drawn (seeded, with replacement) from `pool`."""
    rnd = random.Random(seed)
    return [rnd.choices(pool, k=rnd.randint(lo, hi)) for _ in range(n)]


def payload(texts: list[str]) -> bytes:
    """The documented request body: a `dataframe_split` with one `text` column."""
    body = {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# -- model and store -------------------------------------------------------------------------------


def log_model(model_path: Path, meta_file: Path, store: str) -> str:
    """Log the saved model into the store `store` as the pipeline does (pipeline.tracking.log_training); its run id."""
    from pipeline import tracking

    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    missing = {"sha256", "labels", "params", "data_hash", "n_train"} - set(meta)
    if missing:
        raise SetupError(f"{meta_file}: not a training record of this project (no {', '.join(sorted(missing))})")
    # Only the train section is logged as params; no registered model (serving a runs:/ URI needs none).
    params = {"train": meta["params"], "mlflow": {"experiment": "bench-serve", "tracking_uri": store}}
    os.environ["MLFLOW_TRACKING_URI"] = store  # configure() reads it before the params
    return tracking.log_training(params, meta, model_path, train_seconds=0.0)


# -- server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(run_id: str, workers: int, store: str, cwd: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    """`mlflow models serve` of the run's model in its own process group (stopping the group stops uvicorn too)."""
    port = free_port()
    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    cmd = [mlflow_cli, "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local"]
    cmd += ["-h", HOST, "-p", str(port), "--workers", str(workers)]
    venv_bin = str(Path(sys.executable).parent)  # `mlflow models serve` runs `uvicorn` from PATH
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}", "MLFLOW_TRACKING_URI": store}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds so far of a process and each descendant, by pid; empty without psutil."""
    try:
        import psutil
    except ImportError:
        return {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (all cores); NaN without psutil."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return ""


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, limit: float = 180) -> float:
    """Seconds until /ping answers 200; SetupError if the server exits or takes longer than `limit`."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise SetupError(f"the server exited with code {proc.returncode}:\n{tail(log_path)}")
        if time.monotonic() - start > limit:
            raise SetupError(f"no answer on /ping in {limit:.0f} s:\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.25)


# -- load ------------------------------------------------------------------------------------------


def client(
    port: int, bodies: list[bytes], results: list, claim, deadline: float, request_timeout: float, keep_alive: bool
) -> None:
    """One client: requests claimed one at a time until none is left or time is up, on one keep-alive
    connection (or a new connection per request)."""
    conn: http.client.HTTPConnection | None = None
    headers = {"Content-Type": "application/json"}
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            i = claim()
            if i is None:
                return
            timeout = min(request_timeout, deadline - now)  # no request outlives the time limit
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
                elif conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request("POST", "/invocations", body=bodies[i], headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                results[i] = Result(status=resp.status, body=body, seconds=time.perf_counter() - start)
                if resp.will_close or not keep_alive:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                    conn = None
                if isinstance(e, TimeoutError) and time.monotonic() >= deadline - 0.05:
                    results[i] = Result(cut=True, seconds=time.perf_counter() - start)
                else:
                    results[i] = Result(error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - start)
    finally:
        if conn is not None:
            conn.close()


def run_load(port: int, bodies: list[bytes], clients: int, time_limit: float, request_timeout: float, keep_alive: bool):
    """Send every body with `clients` threads; (results by request, wall seconds, time limit hit)."""
    results: list[Result | None] = [None] * len(bodies)
    lock = threading.Lock()
    counter = iter(range(len(bodies)))

    def claim():
        with lock:
            return next(counter, None)

    start = time.monotonic()
    deadline = start + time_limit
    threads = [
        threading.Thread(
            target=client,
            args=(port, bodies, results, claim, deadline, request_timeout, keep_alive),
            daemon=True,
            name=f"c{k}",
        )
        for k in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():  # short joins, so Ctrl-C reaches the main thread
            t.join(0.5)
    wall = time.monotonic() - start
    unfinished = any(r is None or r.cut for r in results)
    return results, wall, unfinished


# -- checking --------------------------------------------------------------------------------------


def check(body: bytes, labels: list[str], proba, classes: list[str]) -> str:
    """'' when the answer has one prediction per row equal to the local one (to 1e-9), else what differs."""
    try:
        preds = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError) as e:
        return f"answer is not {{'predictions': [...]}} ({type(e).__name__})"
    if not isinstance(preds, list) or len(preds) != len(labels):
        n = len(preds) if isinstance(preds, list) else type(preds).__name__
        return f"{n} predictions for {len(labels)} rows"
    for r, (a, label, row) in enumerate(zip(preds, labels, proba, strict=True)):
        try:
            if a["label"] != label:
                return f"row {r}: label {a['label']!r}, expected {label!r}"
            if abs(a["probability"] - float(row.max())) > TOLERANCE:
                return f"row {r}: probability {a['probability']!r}, expected {float(row.max())!r}"
            for j, c in enumerate(classes):
                if abs(a[f"p_{c}"] - float(row[j])) > TOLERANCE:
                    return f"row {r}: p_{c} {a[f'p_{c}']!r}, expected {float(row[j])!r}"
        except (KeyError, TypeError) as e:
            return f"row {r}: malformed prediction ({type(e).__name__}: {e})"
    return ""


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def summarise(results: list, requests: list[list[str]], expected: list, classes: list[str]) -> dict:
    """Counts, latencies and the first few problems of one load run."""
    out = {"completed": 0, "paragraphs": 0, "errors": 0, "mismatches": 0, "cut": 0, "not_started": 0}
    problems: list[str] = []
    latencies = []
    for i, r in enumerate(results):
        if r is None:
            out["not_started"] += 1
        elif r.cut:
            out["cut"] += 1
        elif r.error:
            out["errors"] += 1
            problems.append(f"request {i}: {r.error}")
        elif r.status != 200:
            out["errors"] += 1
            problems.append(f"request {i}: HTTP {r.status}: {r.body[:200].decode('utf-8', 'replace')}")
        else:
            out["completed"] += 1
            out["paragraphs"] += len(requests[i])
            latencies.append(r.seconds)
            why = check(r.body, *expected[i], classes)
            if why:
                out["mismatches"] += 1
                problems.append(f"request {i} ({len(requests[i])} rows): {why}")
    latencies.sort()
    out.update({f"p{p}": percentile(latencies, p) for p in (50, 90, 99)})
    out["max"] = latencies[-1] if latencies else float("nan")
    out["problems"] = problems
    return out


# -- main ------------------------------------------------------------------------------------------


def bench(args) -> int:
    from pipeline.model import ModelError, load_model, meta_path, predict

    model_src = Path(args.model)
    meta_src = meta_path(model_src)
    for p in (model_src, meta_src):
        if not p.is_file():
            raise SetupError(f"{p}: not found (train a model with `dvc repro` first)")
    corpus = Path(args.corpus)

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        # A private copy: a concurrent `dvc repro` may rewrite models/ while this runs.
        model_path, meta_file = tmp / "model.joblib", tmp / "model.json"
        shutil.copyfile(model_src, model_path)
        shutil.copyfile(meta_src, meta_file)
        try:
            model, meta = load_model(model_path, meta_file)  # sha256-checked
        except ModelError as e:
            raise SetupError(str(e)) from None
        classes = [str(c) for c in model.classes_]

        t = time.perf_counter()
        pool = corpus_paragraphs(corpus)
        requests = make_requests(pool, args.requests, args.min_paras, args.max_paras, args.seed)
        bodies = [payload(texts) for texts in requests]
        total_paras = sum(len(r) for r in requests)
        print(
            f"workload: {len(requests)} requests, {total_paras} paragraphs ({args.min_paras}-{args.max_paras} each, "
            f"seed {args.seed}) drawn from {len(pool)} paragraphs of {corpus.name}; "
            f"{sum(map(len, bodies)) / 1e6:.1f} MB of JSON; built in {time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        expected = []
        for texts in requests:  # the same batches the server gets
            labels, proba = predict(model, texts)
            expected.append((labels, proba))
        print(f"expected answers: local predict on every request's rows in {time.perf_counter() - t:.1f} s")

        store = f"sqlite:///{tmp / 'mlflow.db'}"
        t = time.perf_counter()
        run_id = log_model(model_path, meta_file, store)
        print(
            f"model: {model_src} (sha256 {meta['sha256'][:12]}), logged as run {run_id} in {time.perf_counter() - t:.1f} s"
        )

        reports = []
        for workers, connections in [(w, c) for w in args.workers for c in args.connections]:
            log_path = tmp / f"serve-w{workers}-{connections}.log"
            proc, port = start_server(run_id, workers, store, tmp, log_path)  # a fresh server per configuration
            try:
                ready = wait_ready(proc, port, log_path)
                print(
                    f"\nserver: --workers {workers} on {HOST}:{port}, /ping after {ready:.1f} s; "
                    f"load starts, {connections} connections"
                )
                before, client_cpu, machine = tree_cpu_seconds(proc.pid), time.process_time(), machine_busy_seconds()
                results, wall, unfinished = run_load(
                    port, bodies, args.clients, args.time_limit, args.request_timeout, connections == "keep-alive"
                )
                after, client_cpu = tree_cpu_seconds(proc.pid), time.process_time() - client_cpu
                machine = machine_busy_seconds() - machine
            finally:
                stop_server(proc)
            per_process = sorted((after[p] - before.get(p, 0.0) for p in after), reverse=True)
            s = summarise(results, requests, expected, classes)
            s.update(
                workers=workers,
                connections=connections,
                wall=wall,
                time_limit_hit=unfinished,
                server_cpu=per_process,
                client_cpu=client_cpu,
                other_cpu=machine - sum(per_process) - client_cpu,  # other jobs on a shared machine
            )
            reports.append(s)
            print_report(s, args)

    print("\nsummary")
    print(
        "workers  connections  requests  seconds   req/s  paras/s  p50 ms  p90 ms  p99 ms  max ms  errors  mismatches"
        "  limit hit  server/other cores"
    )
    for s in reports:
        print(
            f"{s['workers']:>7}  {s['connections']:>11}  {s['completed']:>8}  {s['wall']:>7.1f}  {s['completed'] / s['wall']:>6.1f}  "
            f"{s['paragraphs'] / s['wall']:>7.0f}  {s['p50'] * 1e3:>6.0f}  {s['p90'] * 1e3:>6.0f}  "
            f"{s['p99'] * 1e3:>6.0f}  {s['max'] * 1e3:>6.0f}  {s['errors']:>6}  {s['mismatches']:>10}  "
            f"{'yes' if s['time_limit_hit'] else 'no':>9}  "
            f"{cores(s):>18}"
        )
    if any(s["errors"] or s["mismatches"] for s in reports):
        return 1
    return 3 if any(s["time_limit_hit"] for s in reports) else 0


def cores(s: dict) -> str:
    """'server/other' cores busy during the load, '?' without psutil."""
    if not s["server_cpu"] or s["other_cpu"] != s["other_cpu"]:
        return "?"
    return f"{sum(s['server_cpu']) / s['wall']:.2f}/{max(0.0, s['other_cpu'] / s['wall']):.2f}"


def print_report(s: dict, args) -> None:
    wall = s["wall"]
    print(
        f"  {s['completed']}/{args.requests} requests answered and checked in {wall:.1f} s "
        f"({args.clients} clients, time limit {args.time_limit:.0f} s: {'HIT' if s['time_limit_hit'] else 'not hit'})"
    )
    if s["cut"] or s["not_started"]:
        print(f"  stopped by the time limit: {s['cut']} requests cut in flight, {s['not_started']} never sent")
    print(f"  {s['completed'] / wall:.1f} requests/s, {s['paragraphs'] / wall:.0f} paragraphs/s")
    if s["server_cpu"]:
        busy = [f"{c / wall:.2f}" for c in s["server_cpu"] if c / wall >= 0.01]
        server = f"{sum(s['server_cpu']) / wall:.2f} cores (by process: {', '.join(busy)})"
    else:
        server = "? (needs psutil)"
    print(f"  CPU during the load: server {server}, this client {s['client_cpu'] / wall:.2f} cores", end="")
    if s["other_cpu"] == s["other_cpu"]:
        print(f", other processes {max(0.0, s['other_cpu'] / wall):.2f} cores (of {os.cpu_count()})")
    else:
        print()
    print(
        f"  latency p50 {s['p50'] * 1e3:.0f} ms, p90 {s['p90'] * 1e3:.0f} ms, p99 {s['p99'] * 1e3:.0f} ms, "
        f"max {s['max'] * 1e3:.0f} ms"
    )
    print(f"  errors {s['errors']}, mismatches {s['mismatches']}")
    for line in s["problems"][:10]:
        print(f"    {line}")
    if len(s["problems"]) > 10:
        print(f"    ... and {len(s['problems']) - 10} more")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "model.joblib"), help="joblib file with its .json")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus" / "general.jsonl.gz"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn workers, one run per value")
    parser.add_argument(
        "--connections",
        nargs="+",
        choices=["keep-alive", "per-request"],
        default=["keep-alive"],
        help="each client keeps one connection, or opens one per request; one run per value",
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--min-paras", type=int, default=1)
    parser.add_argument("--max-paras", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=300, help="seconds of load per configuration")
    parser.add_argument("--request-timeout", type=float, default=60, help="seconds for one request")
    args = parser.parse_args()
    if not 1 <= args.min_paras <= args.max_paras or args.requests < 1 or args.clients < 1 or args.time_limit <= 0:
        parser.error("need 1 <= --min-paras <= --max-paras, --requests >= 1, --clients >= 1, --time-limit > 0")

    # SIGTERM unwinds like Ctrl-C, so the `finally` that stops the server runs.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return bench(args)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (any server started was stopped)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
