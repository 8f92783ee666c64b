"""Command line: `python -m pipeline STAGE` for the DVC stages, `label ...` for the label set, `tag` for new articles.

`runs` lists and compares MLflow runs, `promote` moves a registry alias, `serve` serves the version it names. Known errors (bad labels,
params, corpus, model files, unknown runs, unreadable tracking store) end with one clear message and
exit code 2; a promotion refused by its rule exits with 1.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from pipeline.config import MODEL, PARAMS

STAGES = ("prepare", "split", "tokenize", "train", "evaluate", "tag_seeds", "learning_curve")


def _stage(name: str):
    import importlib

    return importlib.import_module(f"pipeline.{name}").main


def _crossval(args) -> int:
    from pipeline import crossval

    try:
        crossval.main(args.params, args.set, args.name, args.against)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _label_import(args) -> int:
    from pipeline.annotate import import_batches

    return import_batches([Path(f) for f in args.files], args.annotator, Path(args.into), args.params)


def _label_batches(args) -> int:
    from pipeline.annotate import make_batches

    return make_batches(
        tuple(args.files), args.max_paragraphs, args.seed, args.count, args.prefix, Path(args.out), args.params
    )


def _label_mine(args) -> int:
    from pipeline.annotate import mine_negatives

    return mine_negatives(args.n, args.per_article, args.seed, Path(args.into), args.params)


def _label_queue(args) -> int:
    from pipeline.annotate import queue

    return queue(args.n, args.pool, args.per_article, args.seed, Path(args.model), Path(args.out), args.params)


def _label_export(args) -> int:
    from pipeline.annotate import export

    return export(Path(args.queue), Path(args.out), args.params)


def _label_import_file(args) -> int:
    from pipeline.annotate import import_file

    return import_file(Path(args.file), args.annotator, Path(args.into), args.params)


def _label_stats(args) -> int:
    from pipeline.annotate import stats

    return stats(args.params)


def _quick_fail() -> None:
    # An unreachable tracking server should fail in seconds, not after MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def _runs(args) -> int:
    from pipeline import runs, tracking
    from pipeline.config import load_params

    _quick_fail()
    found = tracking.list_runs(load_params(args.params), args.filter, args.sort, args.ascending, args.limit)
    print(runs.format_rows(*runs.run_table(found), args.format))
    return 0


def _runs_compare(args) -> int:
    import json

    from pipeline import runs, tracking
    from pipeline.config import load_params

    _quick_fail()
    diff = tracking.compare_runs(load_params(args.params), args.run_a, args.run_b)
    text = json.dumps(diff, indent=2, ensure_ascii=False) if args.format == "json" else None
    print(text or runs.format_compare(diff, args.all_params))
    return 0


def _promote(args) -> int:
    from pipeline import tracking
    from pipeline.config import load_params

    _quick_fail()
    decision, message = tracking.promote(load_params(args.params), args.ref, args.alias, args.force)
    print(message, file=sys.stderr if decision == "refuse" else sys.stdout)
    return 1 if decision == "refuse" else 0


def _serve(args) -> int:
    from pipeline import tracking
    from pipeline.config import load_params

    _quick_fail()
    params = load_params(args.params)
    uri = tracking.version_uri(params, args.alias)  # a missing alias ends here, in one line
    os.environ["MLFLOW_TRACKING_URI"] = tracking.tracking_uri(params)
    print(f"serve: {uri} (@{args.alias}) on http://{args.host}:{args.port}", flush=True)
    cmd = ["models", "serve", "-m", uri, "--env-manager", "local", "-h", args.host, "-p", str(args.port)]
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", *cmd])


def _tag(args) -> int:
    from pipeline.tagging.batch import run
    from pipeline.tagging.engines import EngineError
    from pipeline.tagging.inputs import printable
    from pipeline.tagging.outputs import OutputError
    from pipeline.tagging.request import TAG_OPTIONS, from_args

    try:
        return run(from_args(args, TAG_OPTIONS, params=args.params))
    except (OutputError, EngineError) as e:
        print(f"error: {printable(str(e))}", file=sys.stderr)
        return 2


def _tag_parser(sub) -> None:
    from pipeline.tagging.request import TAG_OPTIONS, add_arguments

    tag = sub.add_parser(
        "tag",
        help="tag every paragraph of new articles",
        description="Tag every paragraph of new articles: .txt, .html, folders, .jsonl(.gz) or .parquet records, - for stdin.",
    )
    add_arguments(tag, TAG_OPTIONS)
    tag.set_defaults(func=_tag)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=PARAMS, help="params file")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        stage = sub.add_parser(name, help=f"run the DVC stage `{name}`")
        stage.set_defaults(func=lambda a, n=name: _stage(n)(a.params))

    cv = sub.add_parser(
        "crossval", help="grouped k-fold cross-validation over every labeled article (metrics/cv/NAME.json)"
    )
    cv.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a param")
    cv.add_argument("--name", default="default", help="the run's name: metrics/cv/NAME.json")
    cv.add_argument("--against", metavar="NAME", help="compare fold by fold with this run (default: `default`)")
    cv.set_defaults(func=_crossval)

    label = sub.add_parser("label", help="manage the label set").add_subparsers(dest="label_command", required=True)
    imp = label.add_parser(
        "import-batch", help="merge annotators' answer files (NAME.labels.txt beside NAME.manifest.json)"
    )
    imp.add_argument("files", nargs="+")
    imp.add_argument("--annotator", required=True)
    imp.add_argument("--into", default="data/labels/manual.csv")
    imp.set_defaults(func=_label_import)
    bat = label.add_parser("batches", help="whole articles in batches for annotators (NAME.txt, NAME.manifest.json)")
    bat.add_argument("--files", nargs="+", default=["trafficking", "related"], help="corpus files (seeds: the folder)")
    bat.add_argument("--max-paragraphs", type=int, default=200, metavar="N", help="about N paragraphs a batch")
    bat.add_argument("--count", type=int, metavar="K", help="write the first K batches only (default: all)")
    bat.add_argument("--seed", type=int, default=0)
    bat.add_argument("--prefix", default="b")
    bat.add_argument("-o", "--out", default="work/batches", help="folder of the batch files")
    bat.set_defaults(func=_label_batches)
    mine = label.add_parser("mine", help="mine off_topic candidates from `general` articles with no topic terms")
    mine.add_argument("-n", type=int, default=4000)
    mine.add_argument("--per-article", type=int, default=2)
    mine.add_argument("--seed", type=int, default=7)
    mine.add_argument("--into", default="data/labels/mined.csv")
    mine.set_defaults(func=_label_mine)
    q = label.add_parser("queue", help="the next paragraphs worth labeling (least certain, spread, deduplicated)")
    q.add_argument("-n", type=int, default=300)
    q.add_argument("--pool", type=int, default=2000, help="unlabeled articles sampled and scored")
    q.add_argument("--per-article", type=int, default=3)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--model", default=str(MODEL))
    q.add_argument("-o", "--out", default="work/queue.jsonl")
    q.set_defaults(func=_label_queue)
    ex = label.add_parser("export", help="a queued batch with text and neighbours, for annotators (JSONL or CSV)")
    ex.add_argument("--queue", default="work/queue.jsonl")
    ex.add_argument("-o", "--out", default="work/batch.jsonl")
    ex.set_defaults(func=_label_export)
    im = label.add_parser("import", help="merge a labeled batch (JSONL or CSV) into the label set")
    im.add_argument("file")
    im.add_argument("--annotator", default="")
    im.add_argument("--into", default="data/labels/manual.csv")
    im.set_defaults(func=_label_import_file)
    label.add_parser("stats", help="label counts and agreement").set_defaults(func=_label_stats)

    runs = sub.add_parser("runs", help="table of recent MLflow runs; `runs compare A B` for the diff of two")
    runs.add_argument("--sort", metavar="METRIC", help="sort by a metric, best first (macro_f1, on_topic.f1, ...)")
    runs.add_argument("--ascending", action="store_true", help="lowest first")
    runs.add_argument("--filter", default="", metavar="EXPR", help='MLflow search expression: "metrics.macro_f1 > 0.8"')
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--format", choices=("table", "csv", "json"), default="table")
    runs.set_defaults(func=_runs)
    runs_sub = runs.add_subparsers(dest="runs_command")
    cmp = runs_sub.add_parser("compare", help="params, metrics, per-label scores, confusion and paragraphs of two runs")
    cmp.add_argument("run_a", metavar="RUN_A", help="run id, version number, @ALIAS, runs:/ID or models:/NAME@ALIAS")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("--format", choices=("text", "json"), default="text")
    cmp.add_argument("--all-params", action="store_true", help="list the params that are the same too")
    cmp.set_defaults(func=_runs_compare)

    promote = sub.add_parser("promote", help="move a registry alias to a model version (refuses a worse model)")
    promote.add_argument("ref", metavar="RUN_ID_OR_VERSION", help="run id, version number, @ALIAS or models:/ URI")
    promote.add_argument("--alias", default="champion")
    promote.add_argument("--force", action="store_true", help="promote even when macro-F1 is lower or not comparable")
    promote.set_defaults(func=_promote)
    serve = sub.add_parser("serve", help="serve the model version holding an alias over HTTP (MLflow's model server)")
    serve.add_argument("--alias", default="champion")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5001)
    serve.set_defaults(func=_serve)
    _tag_parser(sub)
    return parser


def run() -> None:
    """The `pipeline` command and `python -m pipeline`: `main`, then exit with its code."""
    code = main()
    # The process ends here and the OS frees its memory: collecting a large heap first (a fitted
    # model, a scored test split) would add up to a second to every stage.
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here; MLflow would try to report
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per download clutters logs
    from pipeline.errors import PipelineError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
