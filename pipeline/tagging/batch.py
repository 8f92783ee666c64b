"""`tag`: inputs through an engine into the outputs, summary and report; a message per failed input and the exit code.

Exit code 0 when every input was tagged, 1 when some failed (the others are still tagged and
written), 2 (raised to the CLI) when nothing can run: no model, no inputs, an unwritable output.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import MODEL, load_params, section
from pipeline.model import ModelError
from pipeline.tagging.inputs import expand, units
from pipeline.tagging.outputs import (
    OutputError,
    RecordWriter,
    encode,
    output_format,
    paragraph_columns,
    summary_columns,
)
from pipeline.tagging.scoring import TagOptions

MAX_MESSAGES = 200  # a file of bad lines would otherwise flood the terminal; the count is always given


@dataclass
class TagRequest:
    """The `tag` command's arguments."""

    paths: list[str]
    output: str | None = None
    fmt: str | None = None
    summary: str | None = None
    report: str | None = None
    model: str = str(MODEL)
    engine: str = "local"
    jobs: int | None = None
    spark_master: str = "local[*]"
    min_confidence: float = 0.0
    explain: int = 0
    no_text: bool = False
    paragraphs: bool = False
    quiet: bool = False
    params: Path = Path("configs/params.yaml")


class Tally:
    """Counts for the progress bar and the last line; prints failure messages, the first MAX_MESSAGES of them."""

    def __init__(self):
        self.inputs = self.failed = self.articles = self.paragraphs = self.on_topic = self.shown = 0

    def add(self, result) -> None:
        self.inputs += result.n_inputs
        self.failed += len(result.errors)
        self.articles += len(result.summaries)
        self.paragraphs += result.n_paragraphs
        self.on_topic += sum(bool(s["on_topic"]) for s in result.summaries)
        for message in result.errors:
            if self.shown < MAX_MESSAGES:
                print(f"error: {message}", file=sys.stderr)
            self.shown += 1


def _options(req: TagRequest, fmt: str, params: dict) -> TagOptions:
    rule = section(params, "tag")
    return TagOptions(
        model=req.model,
        fmt=fmt,
        columns=tuple(paragraph_columns(not req.no_text, req.explain > 0)),
        rule=(
            ("on_topic_min_share", rule["on_topic_min_share"]),
            ("on_topic_min_paragraphs", rule["on_topic_min_paragraphs"]),
        ),
        max_chars=section(params, "text")["max_paragraph_chars"],
        min_confidence=req.min_confidence,
        with_text=not req.no_text,
        explain=req.explain,
        paragraphs_mode=req.paragraphs,
        report=bool(req.report),
    )


def _progress(quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=None,
        unit=" para",
        unit_scale=True,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        desc="tag",
    )


def _results(req: TagRequest, sources: list, options: TagOptions, jobs: int | None):
    if req.engine == "spark":
        from pipeline.tagging.spark import run_spark

        return run_spark(sources, options, req.spark_master, sys.stdin.buffer)
    from pipeline.tagging.engines import default_jobs, run_local

    return run_local(units(sources, req.paragraphs, sys.stdin.buffer), options, jobs or default_jobs())


def run(req: TagRequest) -> int:
    """Tag every input; returns the exit code (0 all tagged, 1 some inputs failed)."""
    start = time.perf_counter()
    params = load_params(req.params)
    sources, missing, skipped = expand(req.paths)
    if not sources and not missing:
        raise OutputError("nothing to tag: no inputs given")
    fmt = output_format(req.output, req.fmt)
    options = _options(req, fmt, params)
    tally = Tally()
    for path in missing:
        print(f"error: {path}: no such file or folder", file=sys.stderr)
    tally.inputs = tally.failed = len(missing)
    if skipped:
        print(
            f"note: {len(skipped)} files with other extensions skipped in the folders given, e.g. {skipped[0]}",
            file=sys.stderr,
        )
    with ExitStack() as stack:
        out = stack.enter_context(RecordWriter(req.output, fmt, list(options.columns)))
        summary, summary_fmt = None, output_format(req.summary, None)
        if req.summary:
            summary = stack.enter_context(RecordWriter(req.summary, summary_fmt, summary_columns()))
        report = None
        if req.report:
            from pipeline.tagging.report import ReportWriter

            report = stack.enter_context(ReportWriter(req.report, f"Topic tags: {', '.join(req.paths)[:200]}"))
        bar = stack.enter_context(_progress(req.quiet))
        for result in _results(req, sources, options, req.jobs):
            if result.fatal:
                raise ModelError(result.fatal)
            tally.add(result)
            out.write(result.payload)
            if summary is not None:
                summary.write(encode(result.summaries, summary_fmt, summary_columns()))
            if report is not None:
                report.add(result.summaries, result.report)
            bar.update(result.n_paragraphs)
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"{tally.articles} articles, {tally.articles / elapsed:,.0f} articles/s", refresh=False)
        if report is not None:
            report.finish()
    return _finish(req, tally, time.perf_counter() - start)


def _finish(req: TagRequest, tally: Tally, seconds: float) -> int:
    """Print the closing lines; the very last one counts the failed inputs when there are any."""
    if tally.shown > MAX_MESSAGES:
        print(f"error: ... {tally.shown - MAX_MESSAGES} more messages not shown", file=sys.stderr)
    where = req.output or "standard output"
    rate = tally.paragraphs / seconds if seconds > 0 else 0.0
    if not req.quiet:
        print(
            f"tag: {tally.paragraphs} paragraphs of {tally.articles} articles ({tally.on_topic} on-topic) -> {where} "
            f"in {seconds:.1f} s ({rate:,.0f} paragraphs/s)",
            file=sys.stderr,
        )
    if tally.failed:
        print(
            f"tag: {tally.failed} of {tally.inputs} inputs failed (messages above); all others were tagged",
            file=sys.stderr,
        )
        return 1
    return 0
