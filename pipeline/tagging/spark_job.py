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


def build_parser() -> argparse.ArgumentParser:
    from pipeline.tagging.inputs import MAX_ARTICLE_MB

    parser = argparse.ArgumentParser(prog="spark_job", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("paths", nargs="+", metavar="INPUT", help="files, folders, globs or URIs (file://, hdfs://, s3a://)")
    add("-o", "--output", required=True, help="the output folder (a path or URI)")
    add(
        "--format",
        dest="fmt",
        choices=("jsonl", "parquet"),
        help="part files (default: by the folder's name, else JSONL)",
    )
    add(
        "--model",
        default="models/model.joblib",
        help="model file, a URI executors read, runs:/... or models:/NAME@ALIAS",
    )
    add("--min-confidence", type=float, default=0.0, metavar="P")
    add("--explain", type=int, default=0, metavar="K")
    add("--no-text", action="store_true")
    add("--paragraphs", action="store_true")
    add("--max-article-mb", type=float, default=MAX_ARTICLE_MB, metavar="MB")
    add("--master", default="", help="Spark master when not run by spark-submit (e.g. local[*])")
    add("--params", type=Path, default=Path("configs/params.yaml"))
    add("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.config import ParamsError
    from pipeline.model import ModelError
    from pipeline.tagging.batch import TagRequest
    from pipeline.tagging.outputs import OutputError
    from pipeline.tagging.spark import run_request

    args = build_parser().parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if k in TagRequest.__dataclass_fields__}
    req = TagRequest(**fields, engine="spark", spark_master=args.master)
    try:
        return run_request(req)
    except (OutputError, ModelError, ParamsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
