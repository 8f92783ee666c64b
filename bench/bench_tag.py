"""Benchmark of `tag` on the general corpus file, side by side in one run.

Prints paragraphs per second and peak memory (RSS of the whole process tree, sampled) for:
  - `tag` end to end (read the gzip file, cut, score, write JSON lines) with each model given;
  - the floor any design pays: reading + JSON + paragraphs() (NFC, tones) + syllable split, same cores;
  - underthesea word segmentation alone, on a sample, per core, extrapolated to the same cores;
  - the Spark engine in local mode (local[N]) on the same file.

    python bench/bench_tag.py [--model models/model.joblib] [--paragraph-model] [--skip-spark]

`--paragraph-model` also trains the paragraph-only model (syllable TF-IDF + logistic regression,
configs/params.yaml's train section without context) on data/labels and benchmarks it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker may end between listing and reading
            total += p.memory_info().rss
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run a command; (wall seconds, peak RSS of its process tree, stderr)."""
    peak = [0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return seconds, peak[0], err


def tag_command(source: Path, model: Path, out: Path, engine: str, jobs: int) -> list[str]:
    cmd = [sys.executable, "-m", "pipeline", "tag", str(source), "--model", str(model), "-o", str(out), "--quiet"]
    if engine == "spark":
        return [*cmd, "--engine", "spark", "--spark-master", f"local[{jobs}]"]
    return [*cmd, "--jobs", str(jobs)]


def _floor_unit(unit) -> int:
    from pipeline.tagging.inputs import parse_unit
    from pipeline.text import paragraphs, syllables

    n = 0
    for article in parse_unit(unit, False).articles:
        for p in paragraphs(article.text):
            syllables(p)
            n += 1
    return n


def floor(source: Path, jobs: int) -> tuple[float, int]:
    """(seconds, paragraphs): read + JSON + paragraphs() + syllable split over the whole file on `jobs` processes."""
    import multiprocessing

    from pipeline.tagging.inputs import jsonl_units

    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        n = sum(pool.imap(_floor_unit, jsonl_units(str(source))))
    return time.perf_counter() - start, n


def word_segmentation(source: Path, sample: int) -> float:
    """Paragraphs per second of underthesea word segmentation on one core (first `sample` paragraphs)."""
    import gzip
    import json

    from pipeline.model import segment_words
    from pipeline.text import paragraphs

    paras = []
    with gzip.open(source, "rt", encoding="utf-8") as f:
        for line in f:
            paras += paragraphs(json.loads(line)["text"])
            if len(paras) >= sample:
                break
    paras = paras[:sample]
    segment_words(paras[0])  # load the CRF model outside the timing
    start = time.perf_counter()
    for p in paras:
        segment_words(p)
    return len(paras) / (time.perf_counter() - start)


def train_paragraph_model(dest: Path) -> Path:
    """The paragraph-only default model (syllable TF-IDF + logistic regression) fitted on every label."""
    import pandas as pd
    import yaml

    from pipeline.model import build_model, meta_path, save_model, write_json
    from pipeline.text import paragraphs, read_corpus

    params = yaml.safe_load((ROOT / "configs" / "params.yaml").read_text(encoding="utf-8"))
    labels = pd.concat([pd.read_csv(p) for p in sorted((ROOT / "data" / "labels").glob("*.csv"))], ignore_index=True)
    wanted = set(labels.article_id)
    paras = {a.id: paragraphs(a.text) for a in read_corpus(ROOT / params["corpus"]["dir"]) if a.id in wanted}
    texts = [paras[a][i] for a, i in zip(labels.article_id, labels.paragraph, strict=True)]
    model = build_model(params["train"]).fit(texts, labels.label.tolist())
    path = dest / "paragraph_model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path), "labels": [str(c) for c in model.classes_]})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / ".." / "shared" / "corpus" / "general.jsonl.gz")
    parser.add_argument(
        "--model", type=Path, action="append", help="model file(s) to benchmark (default models/model.joblib)"
    )
    parser.add_argument(
        "--paragraph-model", action="store_true", help="also train and benchmark the paragraph-only model"
    )
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--sample", type=int, default=1000, help="paragraphs for the word segmentation sample")
    parser.add_argument("--skip-spark", action="store_true")
    args = parser.parse_args()
    source = args.source.resolve()
    models = [(m.name, m) for m in (args.model or [ROOT / "models" / "model.joblib"]) if m.is_file()]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; input {source}")
    with tempfile.TemporaryDirectory(prefix="bench-tag-") as tmp:
        tmp = Path(tmp)
        if args.paragraph_model:
            models.append(("paragraph model (syllable TF-IDF + LR)", train_paragraph_model(tmp)))
        if not models:
            raise SystemExit("no model: give --model PATH or --paragraph-model")
        rows = []
        seconds, n = floor(source, args.jobs)
        rows.append((f"floor: read + JSON + paragraphs() + syllables ({args.jobs} processes)", n, seconds, None))
        for name, model in models:
            out = tmp / "tags.jsonl"
            seconds, peak, _ = run_measured(tag_command(source, model, out, "local", args.jobs))
            lines = sum(1 for _ in out.open("rb"))
            rows.append((f"tag --engine local --jobs {args.jobs}, {name} -> JSONL", lines, seconds, peak))
        per_core = word_segmentation(source, args.sample)
        rows.append(
            (
                f"underthesea word segmentation, {args.sample}-paragraph sample, 1 core x {args.jobs} (extrapolated)",
                None,
                None,
                per_core * args.jobs,
            )
        )
        if not args.skip_spark:
            name, model = models[-1]
            out = tmp / "spark.jsonl"
            seconds, peak, _ = run_measured(tag_command(source, model, out, "spark", args.jobs))
            lines = sum(1 for _ in out.open("rb"))
            rows.append((f"tag --engine spark local[{args.jobs}], {name} -> JSONL", lines, seconds, peak))
    print(f"{'what':100s} {'paragraphs':>10s} {'seconds':>8s} {'para/s':>9s} {'peak RSS':>9s}")
    for what, n, seconds, extra in rows:
        if n is None:
            print(f"{what:100s} {'':>10s} {'':>8s} {extra:9,.0f} {'':>9s}")
            continue
        rss = f"{extra / 2**20:,.0f} MiB" if extra else ""
        print(f"{what:100s} {n:10,d} {seconds:8.1f} {n / seconds:9,.0f} {rss:>9s}")
    print(f"load average {os.getloadavg()[0]:.2f} at end (other work on the machine slows every figure)")


if __name__ == "__main__":
    main()
