"""Command line: `python -m pipeline STAGE` for the DVC stages, `label ...` for the label set, `tag` for new articles.

Known errors (bad labels, params, corpus, model files) end with one clear message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

STAGES = ("prepare", "split", "tokenize", "train", "evaluate", "tag_seeds", "learning_curve")


def _stage(name: str):
    import importlib

    return importlib.import_module(f"pipeline.{name}").main


def _label_import(args) -> int:
    from pipeline.annotate import import_batches

    return import_batches([Path(f) for f in args.files], args.annotator, Path(args.into), args.params)


def _label_mine(args) -> int:
    from pipeline.annotate import mine_negatives

    return mine_negatives(args.n, args.per_article, args.seed, Path(args.into), args.params)


def _label_stats(args) -> int:
    from pipeline.annotate import stats

    return stats(args.params)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("configs/params.yaml"), help="params file")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        sub.add_parser(name, help=f"run the DVC stage `{name}`").set_defaults(func=lambda a, n=name: _stage(n)(a.params))

    label = sub.add_parser("label", help="manage the label set").add_subparsers(dest="label_command", required=True)
    imp = label.add_parser("import-batch", help="merge annotators' answer files (NAME.labels.txt beside NAME.manifest.json)")
    imp.add_argument("files", nargs="+")
    imp.add_argument("--annotator", required=True)
    imp.add_argument("--into", default="data/labels/manual.csv")
    imp.set_defaults(func=_label_import)
    mine = label.add_parser("mine", help="mine off_topic candidates from `general` articles with no topic terms")
    mine.add_argument("-n", type=int, default=4000)
    mine.add_argument("--per-article", type=int, default=2)
    mine.add_argument("--seed", type=int, default=7)
    mine.add_argument("--into", default="data/labels/mined.csv")
    mine.set_defaults(func=_label_mine)
    label.add_parser("stats", help="label counts and agreement").set_defaults(func=_label_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here; MLflow would try to report
    from pipeline.config import ParamsError
    from pipeline.labels import LabelError
    from pipeline.model import ModelError
    from pipeline.text import CorpusError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (LabelError, ModelError, CorpusError, ParamsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
