"""`spark-submit pipeline/tagging/spark_job.py INPUT... -o OUT`: the Spark engine as a job for a cluster (docs/spark.md).

The master, resources and configuration come from spark-submit (`--master`, `--conf`, ...);
inputs and output may be local paths or URIs the cluster reads (file://, hdfs://, s3a://). The
same as `python -m pipeline tag --engine spark`, without the local-only options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: the project root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


# The options that mean something on a cluster; the others (--summary, --resume, ...) need the local engine.
OPTIONS = ("paths", "output", "fmt", "model", "min_confidence", "explain", "no_text", "paragraphs", "max_article_mb")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.tagging.request import add_arguments

    parser = argparse.ArgumentParser(prog="spark_job", description=__doc__.splitlines()[0])
    add_arguments(
        parser,
        (*OPTIONS, "spark_master", "params", "quiet"),
        paths={"metavar": "INPUT", "help": "files, folders, globs or URIs (file://, hdfs://, s3a://)"},
        output={"required": True, "help": "the output folder (a path or URI)"},
        fmt={"choices": ("jsonl", "parquet"), "help": "part files (default: by the folder's name, else JSONL)"},
        model={"help": "model file, a URI executors read, runs:/... or models:/NAME@ALIAS"},
        spark_master={
            "flags": ("--master",),
            "default": "",
            "help": "Spark master when not run by spark-submit (e.g. local[*])",
        },
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.errors import PipelineError
    from pipeline.tagging.request import from_args
    from pipeline.tagging.spark import run_request

    args = build_parser().parse_args(argv)
    req = from_args(args, (*OPTIONS, "spark_master", "params", "quiet"), engine="spark")
    try:
        return run_request(req)
    except PipelineError as e:  # bad params, model, inputs or output: one line
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
