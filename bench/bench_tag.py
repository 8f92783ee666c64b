"""Benchmark of `tag` on the general corpus file, side by side in one run (the machine is shared: compare ratios, not figures).

Prints paragraphs per second, the ratio to the floor, and peak memory (RSS of the whole process tree, sampled) for:
  - the floor any design pays: reading gzip + JSON + paragraphs() (NFC, tones) + syllable split, on N processes;
  - `tag` end to end (start-up, read, cut, score, write JSON lines), default model, --jobs N;
  - the scikit-learn reference path (the model's own transform / predict_proba calls) in the same pool of N processes;
  - fastText supervised (bigrams), trained on the same labels, predicting on one thread (x N, extrapolated);
  - each stage's share of the compiled path, on one core, over the first units of the file;
  - the model's load time in one process (sha256, unpickle, compile the tables); forked workers inherit it.

    python bench/bench_tag.py [--model models/model.joblib] [--jobs 2] [--skip-fasttext] [--spark]

fastText is a bench-only dependency: `pip install fasttext-numpy2-wheel==0.9.2` (the other wheels need NumPy 1).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peaks import run_sampled, tree_rss  # noqa: E402 - bench/ is the script's folder


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run a command; (wall seconds, peak RSS of its process tree, stderr)."""
    sample = lambda pid: {"rss": tree_rss(pid)}  # noqa: E731
    seconds, peaks, proc, _, err = run_sampled(cmd, ROOT, sample, 0.05, stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return seconds, peaks.get("rss", 0), err


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
    from pipeline.tagging.inputs import jsonl_units

    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        n = sum(pool.imap(_floor_unit, jsonl_units(str(source))))
    return time.perf_counter() - start, n


_REFERENCE: dict = {}


def _reference_init(model: str) -> None:
    from pipeline.tagging.scoring import TagOptions, load_scorer

    _REFERENCE["options"] = TagOptions(model=model)
    _REFERENCE["scorer"] = load_scorer(model, compiled=False)


def _reference_unit(unit) -> int:
    from pipeline.tagging.scoring import process

    return process(_REFERENCE["scorer"], unit, _REFERENCE["options"]).n_paragraphs


def reference(source: Path, model: Path, jobs: int) -> tuple[float, int, int]:
    """(seconds, paragraphs, peak RSS): the scikit-learn path (records, JSON lines) over the file on `jobs` processes, load included."""
    from pipeline.tagging.inputs import jsonl_units

    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(os.getpid()))
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs, initializer=_reference_init, initargs=(str(model),)) as pool:
        n = sum(pool.imap(_reference_unit, jsonl_units(str(source))))
    done.set()
    return time.perf_counter() - start, n, peak[0]


def stages(source: Path, model: Path, n_units: int) -> tuple[int, dict[str, float]]:
    """(paragraphs, seconds per stage) of the compiled path on one core over the first `n_units` units of the file."""
    import itertools

    import numpy as np

    from pipeline.decision import apply_factors
    from pipeline.tagging.compiled import _project
    from pipeline.tagging.fastjson import paragraph_lines
    from pipeline.tagging.inputs import jsonl_units, parse_unit
    from pipeline.tagging.records import article_summary
    from pipeline.tagging.scoring import TagOptions, cut, load_scorer

    options = TagOptions(model=str(model), with_text=True)
    scorer = load_scorer(str(model))
    cm = scorer.compiled
    if cm is None:
        raise SystemExit(f"{model}: the compiled path does not reproduce this model")
    units = list(itertools.islice(jsonl_units(str(source)), n_units))
    cm.predict_proba_articles([["khởi động"]], True)  # numba's cache read outside the timing
    t = dict.fromkeys(
        ["read + JSON", "paragraphs() + normalise", "features: tokens", "features: n-grams, TF-IDF and X·W"], 0.0
    )
    t.update({"first pass": 0.0, "second pass": 0.0, "write: JSON lines + summaries": 0.0})
    n = 0
    rule = dict(options.rule)
    for unit in units:
        c0 = time.perf_counter()
        articles = parse_unit(unit, False).articles
        c1 = time.perf_counter()
        paras = [cut(a, options) for a in articles]
        c2 = time.perf_counter()
        flat = [p for ps in paras for p in ps]
        bounds = np.cumsum([0] + [len(a) for a in paras])
        v = cm.vocab
        ids = v.token_ids(flat)
        c3 = time.perf_counter()
        out = np.zeros((len(flat), cm.W.shape[1]))
        args = (v.unigram, v.keys, v.cols, v.mask, v.base, v.unknown, v.lo, v.hi, v.tf, v.idf, v.norm)
        XW = _project(ids, len(flat), *args, cm.W, out)
        c4 = time.perf_counter()
        P = cm.first.proba(cm._split(XW[:, : cm.first_width], cm.first.widths, cm.first.intercepts))
        c5 = time.perf_counter()
        proba = apply_factors(cm._second_pass(XW[:, cm.first_width :], P, bounds), cm.factors) if cm.context else P
        probas = [proba[bounds[i] : bounds[i + 1]] for i in range(len(paras))]
        c6 = time.perf_counter()
        _, labels = paragraph_lines(articles, paras, probas, scorer.classes, 0.0, True)
        for a, labs in zip(articles, labels, strict=True):
            article_summary(a, [{"label": lab} for lab in labs], rule)
        c7 = time.perf_counter()
        for name, (a, b) in zip(t, itertools.pairwise([c0, c1, c2, c3, c4, c5, c6, c7]), strict=True):
            t[name] += b - a
        n += len(flat)
    return n, t


def model_load_seconds(model: Path) -> float:
    """Seconds to load the model as a worker does (sha256, unpickle, compiled tables), in this process."""
    from pipeline.tagging.scoring import load_scorer

    start = time.perf_counter()
    load_scorer(str(model))
    return time.perf_counter() - start


def _labeled_texts() -> tuple[list[str], list[str]]:
    """The labeled paragraphs and their labels (every label file), read from the corpus."""
    import pandas as pd
    import yaml

    from pipeline.text import paragraphs, read_corpus

    params = yaml.safe_load((ROOT / "configs" / "params.yaml").read_text(encoding="utf-8"))
    labels = pd.concat([pd.read_csv(p) for p in sorted((ROOT / "data" / "labels").glob("*.csv"))], ignore_index=True)
    wanted = set(labels.article_id)
    paras = {a.id: paragraphs(a.text) for a in read_corpus(ROOT / params["corpus"]["dir"]) if a.id in wanted}
    rows = [
        (a, i, lab) for a, i, lab in zip(labels.article_id, labels.paragraph, labels.label, strict=True) if a in paras
    ]
    return [paras[a][i] for a, i, _ in rows], [lab for _, _, lab in rows]


def fasttext_rate(source: Path, tmp: Path) -> tuple[float, int] | str:
    """(paragraphs/s on one thread, paragraphs) of fastText supervised trained on the labels, or why it could not run."""
    try:
        import fasttext
    except ImportError:
        return "fastText not installed (pip install fasttext-numpy2-wheel==0.9.2)"
    from pipeline.tagging.inputs import jsonl_units, parse_unit
    from pipeline.text import paragraphs, syllables

    texts, labels = _labeled_texts()
    train = tmp / "fasttext.train"
    with open(train, "w", encoding="utf-8") as f:
        for text, lab in zip(texts, labels, strict=True):
            f.write(f"__label__{lab} {' '.join(syllables(text))}\n")
    model = fasttext.train_supervised(str(train), wordNgrams=2, epoch=25, lr=0.5, dim=50, thread=1, verbose=0)
    paras = [
        " ".join(syllables(p))
        for unit in jsonl_units(str(source))
        for a in parse_unit(unit, False).articles
        for p in paragraphs(a.text)
    ]
    start = time.perf_counter()
    model.predict(paras)
    return len(paras) / (time.perf_counter() - start), len(paras)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / ".." / "shared" / "corpus" / "general.jsonl.gz")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "model.joblib")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--stage-units", type=int, default=8, help="units of the file timed stage by stage")
    parser.add_argument("--skip-fasttext", action="store_true")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--spark", action="store_true", help="also the Spark engine (local[N])")
    args = parser.parse_args()
    source, model, jobs = args.source.resolve(), args.model.resolve(), args.jobs
    if not model.is_file():
        raise SystemExit(f"{model}: no model (run `dvc repro` or give --model)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; input {source}")
    rows = []  # (what, paragraphs, seconds, peak RSS or None, paragraphs/s if not paragraphs / seconds)
    with tempfile.TemporaryDirectory(prefix="bench-tag-") as tmp:
        tmp = Path(tmp)
        seconds, n = floor(source, jobs)
        rows.append((f"floor: read + JSON + paragraphs() + syllables ({jobs} processes)", n, seconds, None, None))
        out = tmp / "tags.jsonl"
        seconds, peak, _ = run_measured(tag_command(source, model, out, "local", jobs))
        lines = sum(1 for _ in out.open("rb"))
        rows.append((f"tag --jobs {jobs} -> JSONL (whole process, start-up included)", lines, seconds, peak, None))
        if not args.skip_reference:
            seconds, n, peak = reference(source, model, jobs)
            rows.append((f"scikit-learn reference path ({jobs} processes, load included)", n, seconds, peak, None))
        if args.spark:
            out = tmp / "spark.jsonl"
            seconds, peak, _ = run_measured(tag_command(source, model, out, "spark", jobs))
            rows.append((f"tag --engine spark local[{jobs}] -> JSONL", lines, seconds, peak, None))
        fast = None if args.skip_fasttext else fasttext_rate(source, tmp)
    if isinstance(fast, tuple):
        rows.append(
            (
                f"fastText supervised (bigrams), same labels, 1 thread x {jobs} (extrapolated)",
                None,
                None,
                None,
                fast[0] * jobs,
            )
        )
    floor_rate = rows[0][1] / rows[0][2]
    print(f"{'what':78s} {'paragraphs':>10s} {'seconds':>8s} {'para/s':>9s} {'x floor':>7s} {'peak RSS':>9s}")
    for what, n, seconds, peak, rate in rows:
        rate = rate if rate is not None else n / seconds
        cells = f"{n:10,d} {seconds:8.1f}" if n is not None else f"{'':>10s} {'':>8s}"
        rss = f"{peak / 2**20:,.0f} MiB" if peak else ""
        print(f"{what:78s} {cells} {rate:9,.0f} {rate / floor_rate:7.2f} {rss:>9s}")
    if isinstance(fast, str):
        print(fast)
    n, shares = stages(source, model, args.stage_units)
    total = sum(shares.values())
    print(
        f"\nstages of the compiled path, 1 core, first {args.stage_units} units ({n:,d} paragraphs, {n / total:,.0f}/s):"
    )
    for name, seconds in shares.items():
        print(f"  {name:45s} {seconds / total:6.1%}  {n / seconds:12,.0f} paragraphs/s")
    print(f"model load in one process (sha256, unpickle, compiled tables): {model_load_seconds(model):.2f} s")
    print(f"load average {os.getloadavg()[0]:.2f} at end (other work on the machine slows every figure)")


if __name__ == "__main__":
    main()
