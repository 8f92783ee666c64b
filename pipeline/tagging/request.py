"""The `tag` command's options, defined once: each field carries its flags and help, and the parsers are built from them.

`python -m pipeline tag` (cli.py) and `spark_job.py` both call `add_arguments` and `from_args`, so an
option renamed here is renamed everywhere, and a parser that lacks a field fails at `from_args`
instead of dropping the value. Light on purpose: the CLI imports it to print `--help`.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from pipeline.config import MODEL, PARAMS
from pipeline.tagging.inputs import MAX_ARTICLE_MB


def _option(*flags: str, default=None, help: str, **argparse_kwargs):
    """A field with its command-line flags (the first long flag names nothing: `dest` is the field's name)."""
    return field(default=default, metadata={"flags": flags, "help": help, **argparse_kwargs})


def _switch(flag: str, help: str):
    return _option(flag, default=False, help=help, action="store_true")


@dataclass
class TagRequest:
    """The `tag` command's arguments."""

    paths: list[str] = field(
        metadata={
            "flags": (),
            "nargs": "+",
            "metavar": "PATH",
            "help": "files, folders (recursively) or - for standard input",
        }
    )
    output: str | None = _option(
        "-o", "--output", help="paragraph records: .jsonl, .csv or .parquet (.gz too); default standard output"
    )
    fmt: str | None = _option(
        "--format", choices=("jsonl", "csv", "parquet"), help="output format (default: by extension)"
    )
    summary: str | None = _option("--summary", metavar="FILE", help="one record per article (.jsonl, .csv or .parquet)")
    report: str | None = _option("--report", metavar="FILE.html", help="a self-contained HTML page to read the tags")
    model: str = _option(
        "--model", default=str(MODEL), help="model file, or MLflow URI (runs:/..., models:/NAME@ALIAS)"
    )
    min_confidence: float = _option(
        "--min-confidence", default=0.0, type=float, metavar="P", help="label paragraphs below P `uncertain`"
    )
    explain: int = _option(
        "--explain", default=0, type=int, metavar="K", help="the K n-grams that pushed each paragraph to its label"
    )
    no_text: bool = _switch("--no-text", "leave the paragraph text out of the records")
    paragraphs: bool = _switch("--paragraphs", "records are paragraphs already: never re-split, id kept")
    group_by: str | None = _option(
        "--group-by",
        metavar="FIELD",
        help="with --paragraphs: records sharing FIELD (e.g. article_id) are one article, in `paragraph` order",
    )
    engine: str = _option(
        "--engine", default="local", choices=("local", "spark"), help="local processes (default) or Apache Spark"
    )
    jobs: int | None = _option("--jobs", type=int, metavar="N", help="worker processes (default: all cores)")
    spark_master: str = _option("--spark-master", default="local[*]", help="Spark master URL for --engine spark")
    quiet: bool = _switch("--quiet", "no progress bar and no closing summary line")
    resume: bool = _switch("--resume", "carry on an interrupted run from its checkpoint beside -o FILE")
    max_article_mb: float = _option(
        "--max-article-mb",
        default=MAX_ARTICLE_MB,
        type=float,
        metavar="MB",
        help=f"larger files, records and JSON lines are reported, not tagged (default {MAX_ARTICLE_MB:g})",
    )
    params: Path = _option("--params", default=PARAMS, type=Path, help="params file")


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...], **changes: dict) -> None:
    """Add the options `names` to `parser`, in that order; `changes[name]` overrides what the field says (flags too)."""
    by_name = {f.name: f for f in fields(TagRequest)}
    for name in names:
        f = by_name[name]  # a KeyError here is a parser asking for an option that does not exist
        spec = {**f.metadata, **changes.pop(name, {})}
        flags = spec.pop("flags")
        if f.default is not MISSING and "action" not in spec:
            spec.setdefault("default", f.default)
        if flags:
            parser.add_argument(*flags, dest=name, **spec)
        else:
            parser.add_argument(name, **spec)
    if changes:
        raise ValueError(f"changes for options not added: {', '.join(changes)}")


def from_args(args: argparse.Namespace, names: tuple[str, ...], **fixed) -> TagRequest:
    """The request from parsed arguments: every name must be there (a missing one raises, it is never dropped)."""
    return TagRequest(**{name: getattr(args, name) for name in names}, **fixed)


# The `tag` command's options, in the order of its --help (--params is the top-level parser's).
TAG_OPTIONS = tuple(f.name for f in fields(TagRequest) if f.name != "params")
