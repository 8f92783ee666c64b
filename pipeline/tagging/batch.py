"""`tag`: inputs through an engine into the outputs, summary and report; a message per failed input and the exit code.

Exit code 0 when every input was tagged, 1 when some failed (the others are still tagged and
written), 2 (raised to the CLI) when nothing can run: no model, no inputs, an unwritable output.
SIGINT, SIGTERM or SIGHUP stop a run with 128 + the signal's number and no output written; the
work done is kept for `--resume` when the run can be resumed (checkpoint.py).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from contextlib import ExitStack

from pipeline.config import load_params, section
from pipeline.errors import ModelError
from pipeline.tagging.checkpoint import Checkpoint, job_of
from pipeline.tagging.inputs import MB, expand, printable, units, whole_files
from pipeline.tagging.outputs import (
    OutputError,
    PartFile,
    PartWriter,
    RecordWriter,
    encode,
    ensure_writable,
    identity,
    output_format,
    paragraph_columns,
    refuse_unsafe,
    remove_stale_temps,
    summary_columns,
)
from pipeline.tagging.request import TagRequest
from pipeline.tagging.scoring import TagOptions, article_rule

MAX_MESSAGES = 200  # a file of bad lines would otherwise flood the terminal; the count is always given
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """A signal stopped the run (a KeyboardInterrupt, so every clean-up written for Ctrl-C runs for SIGTERM too)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_interrupt():
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise Interrupted; a second signal, during the clean-up, is ignored."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    caught = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]

    def stop(signum, frame):
        for s in caught:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, stop) for s in caught}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Tally:
    """Counts for the progress bar and the last lines; prints messages (the first MAX_MESSAGES) and warns of repeated ids."""

    COUNTS = ("inputs", "failed", "warned", "articles", "paragraphs", "on_topic", "shown")

    def __init__(self):
        self.inputs = self.failed = self.warned = self.articles = self.paragraphs = self.on_topic = self.shown = 0
        self.ids_path, self.seen = None, {}  # ids of the current file's records: where each was first
        self.before = 0  # paragraphs done before this run resumed, left out of its speed

    def state(self) -> dict:
        """The counts, for the checkpoint."""
        return {name: getattr(self, name) for name in self.COUNTS}

    def restore(self, done: list[dict]) -> None:
        """Counts and the current file's ids as the journal of an interrupted run left them."""
        for name, value in done[-1]["tally"].items():
            setattr(self, name, value)
        for entry in done:
            self.remember(entry["path"], entry["ids"])

    def remember(self, path: str, ids: list) -> list[str]:
        """Note the ids of a unit's records; the messages for ids already used in the same file (both records are kept)."""
        if path != self.ids_path:  # ids are per file: two sources may both number their records from 1
            self.ids_path, self.seen = path, {}
        repeated = []
        for rid, where in ids:
            if rid in self.seen:
                repeated.append(f"{where}: id {rid!r} was already used at {self.seen[rid]}; both records are tagged")
            else:
                self.seen[rid] = where
        return repeated

    def _say(self, kind: str, message: str) -> None:
        """Print one message (escaped: a file name cannot forge a line), unless MAX_MESSAGES have been printed already."""
        if self.shown < MAX_MESSAGES:
            print(f"{kind}: {printable(message)}", file=sys.stderr)
        self.shown += 1

    def add(self, result) -> None:
        """Count one unit's result and print its messages."""
        self.inputs += result.n_inputs
        self.failed += len(result.errors)
        self.articles += len(result.summaries)
        self.paragraphs += result.n_paragraphs
        self.on_topic += sum(bool(s["on_topic"]) for s in result.summaries)
        for message in result.errors:
            self._say("error", message)
        warnings = result.warnings + self.remember(result.path, result.ids)
        self.warned += len(warnings)
        for message in warnings:
            self._say("warning", message)


def _options(req: TagRequest, fmt: str, params: dict) -> TagOptions:
    return TagOptions(
        model=req.model,
        fmt=fmt,
        columns=tuple(paragraph_columns(not req.no_text, req.explain > 0)),
        rule=article_rule(section(params, "tag")),
        max_chars=section(params, "text")["max_paragraph_chars"],
        min_confidence=req.min_confidence,
        with_text=not req.no_text,
        explain=req.explain,
        paragraphs_mode=req.paragraphs,
        group_by=req.group_by,
        report=bool(req.report),
        max_bytes=int(req.max_article_mb * MB),
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


def _results(req: TagRequest, sources: list, options: TagOptions, checkpoint):
    """Results of every local unit of work in input order, the units done before an interruption checked and left out."""
    from pipeline.tagging.engines import default_jobs, run_local

    todo = units(sources, req.paragraphs, sys.stdin.buffer, options.max_bytes)
    if req.group_by:
        todo = whole_files(todo)  # an article's records may be anywhere in its file
    if checkpoint is not None and checkpoint.units:
        todo = checkpoint.skip_done(todo, options.max_bytes)
    return run_local(todo, options, req.jobs or default_jobs())


def check_options(req: TagRequest) -> None:
    """Refuse out-of-range numbers before any work (a usage error, one line)."""
    if not (math.isfinite(req.max_article_mb) and req.max_article_mb > 0):
        raise OutputError(f"--max-article-mb must be a number more than 0, not {req.max_article_mb:g}")
    if not (0.0 <= req.min_confidence <= 1.0):  # NaN fails this too
        raise OutputError(f"--min-confidence must be a probability from 0 to 1, not {req.min_confidence:g}")
    if req.explain < 0:
        raise OutputError(f"--explain must be 0 (off) or a number of n-grams, not {req.explain}")
    if req.jobs is not None and req.jobs < 1:
        raise OutputError(f"--jobs must be 1 or more, not {req.jobs}")
    if req.group_by is not None and not req.paragraphs:
        raise OutputError("--group-by FIELD goes with --paragraphs (records that are paragraphs of articles)")
    if req.group_by is not None and req.engine != "local":
        raise OutputError("--group-by works with the local engine only")


def _check(req: TagRequest, sources: list) -> None:
    """Refuse, before any work, options that cannot work together and outputs that would clobber something."""
    from pipeline.runs import check_model_source

    check_options(req)
    check_model_source(req.model)
    inputs = [path for path, kind in sources if kind not in ("stdin", "badname")]
    refuse_unsafe([("-o", req.output), ("--summary", req.summary), ("--report", req.report)], inputs)
    if not req.resume:
        return
    if not req.output:
        raise OutputError("--resume needs -o FILE: records written to standard output cannot be resumed")
    if req.engine != "local":
        raise OutputError("--resume works with the local engine only")
    if any(kind == "stdin" for _, kind in sources):
        raise OutputError("--resume cannot read standard input again: give the input as a file")


def _checkpoint(req: TagRequest, sources: list, missing: list, options: TagOptions) -> Checkpoint | None:
    """The run's work folder beside its first file output (None when everything goes to standard output)."""
    files = [p for p in (req.output, req.summary, req.report) if p]
    if not files:
        return None
    resumable = bool(req.output) and req.engine == "local" and all(kind != "stdin" for _, kind in sources)
    job = None
    if resumable:
        from pipeline.tagging.scoring import model_sha256

        job = job_of(
            req.paths, sources, missing, options, [req.output, req.summary, req.report], model_sha256(req.model)
        )
    return Checkpoint.beside(files[0], job)


def _signal_name(signum: int) -> str:
    """SIGTERM for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def run(req: TagRequest) -> int:
    """Tag every input; returns the exit code (0 all tagged, 1 some inputs failed, 128 + N stopped by signal N)."""
    if req.engine == "spark":  # executors read and write a folder of part files themselves (spark.py)
        from pipeline.tagging.spark import run_request

        return run_request(req)
    start = time.perf_counter()
    params = load_params(req.params)
    sources, missing, skipped, notes = expand(req.paths)
    if not sources and not missing:
        raise OutputError("nothing to tag: no inputs given")
    _check(req, sources)
    fmt = output_format(req.output, req.fmt)
    options = _options(req, fmt, params)
    for path in (req.output, req.summary, req.report):
        if path:
            ensure_writable(path)
    tally, state = Tally(), {}
    with signals_interrupt():
        checkpoint = None
        try:
            checkpoint = _checkpoint(req, sources, missing, options)
            done = checkpoint.start(req.resume) if checkpoint else []
            state["started"] = True
            if checkpoint is not None and checkpoint.resumable:  # the lock is held: no other run writes these
                for path in (req.output, req.summary, req.report):
                    if path:
                        remove_stale_temps(path)
            _begin(req, tally, checkpoint, done, missing, skipped, notes)
            _tag(req, sources, options, tally, checkpoint, state)
        except BaseException as e:
            if not (isinstance(e, Interrupted) and _outputs_in_place(req, state)):
                return _failed(e, req, checkpoint, state)
            print(f"note: {_signal_name(e.signum)} came once every output was in place", file=sys.stderr)
        if checkpoint is not None:
            checkpoint.close(keep=False)
    return _finish(req, tally, time.perf_counter() - start)


def _outputs_in_place(req: TagRequest, state: dict) -> bool:
    """Whether a signal came after the last output was renamed into place: the run is complete, nothing to undo."""
    return "before" in state and bool(req.output) and identity(req.output) != state["before"]


def _failed(error: BaseException, req: TagRequest, checkpoint, state: dict) -> int:
    """Clean up after an error or a signal: keep the checkpoint when work was done, then report or re-raise."""
    if checkpoint is not None and "started" not in state:
        # The checkpoint was not opened: a resumable one may be an earlier run's, only a private folder is ours.
        kept = False if checkpoint.resumable else checkpoint.close(keep=False)
    else:
        kept = checkpoint is not None and checkpoint.close(keep=True)
    if isinstance(error, Interrupted):
        _stopped(error.signum, not req.output, checkpoint if kept else None)
        return 128 + error.signum
    if kept:
        print(f"note: the work done so far is kept in {checkpoint.folder}: --resume carries on", file=sys.stderr)
    raise error


def _begin(req: TagRequest, tally: Tally, checkpoint, done: list, missing: list, skipped: list, notes: list) -> None:
    """Counts carried over from an interrupted run, or the messages for missing inputs; notes on skipped files."""
    if done:
        tally.restore(done)
        tally.before = tally.paragraphs
        if not req.quiet:
            print(
                f"tag: resuming from {checkpoint.folder}: {tally.inputs} inputs were done "
                f"({tally.failed} failed, {tally.paragraphs} paragraphs); carrying on",
                file=sys.stderr,
            )
    else:
        for path in missing:
            print(f"error: {printable(path)}: no such file or folder", file=sys.stderr)
        tally.inputs = tally.failed = len(missing)
        if req.resume and checkpoint is not None and not checkpoint.found:
            print(f"note: nothing to resume at {checkpoint.folder}: starting from the beginning", file=sys.stderr)
    if checkpoint is not None and checkpoint.dropped:
        print(
            f"note: the checkpoint of an interrupted run ({checkpoint.dropped} units done) is dropped: "
            "this run starts over (--resume would have carried on)",
            file=sys.stderr,
        )
    if skipped:
        print(
            f"note: {len(skipped)} files with other extensions skipped in the folders given, "
            f"e.g. {printable(skipped[0])}",
            file=sys.stderr,
        )
    for note in notes[:MAX_MESSAGES]:
        print(f"note: {note}", file=sys.stderr)
    if len(notes) > MAX_MESSAGES:
        print(f"note: ... {len(notes) - MAX_MESSAGES} more notes on skipped folders and files", file=sys.stderr)


class Outputs:
    """The run's writers (records, summary, report) as one layer: part files the checkpoint records, put in place together.

    `write` appends one unit's result to every output and, when the run can be resumed, records the
    part sizes and counts with the unit; `commit` builds every file beside its place, then renames
    them in one after the other, the records last (their presence means a finished run).
    """

    def __init__(self, req: TagRequest, options: TagOptions, checkpoint, tally: Tally):
        self.req, self.options, self.checkpoint, self.tally = req, options, checkpoint, tally
        self._stack = ExitStack()

    def __enter__(self) -> Outputs:
        try:
            self._open()
        except BaseException:
            self._stack.close()  # the writers opened so far
            raise
        return self

    def _open(self) -> None:
        req, sizes = self.req, self.checkpoint.sizes if self.checkpoint is not None else {}
        self.out = self._writer(req.output, self.options.fmt, list(self.options.columns), "out", sizes)
        self.summary = self.summary_fmt = None
        if req.summary:
            self.summary_fmt = output_format(req.summary, None)
            self.summary = self._writer(req.summary, self.summary_fmt, summary_columns(), "summary", sizes)
        self.report = None
        if req.report:
            from pipeline.tagging.report import ReportWriter

            rows, sections = self._part("rows", sizes), self._part("sections", sizes)
            title = f"Topic tags: {', '.join(req.paths)[:200]}"
            self.report = ReportWriter(req.report, title, rows, sections, self.tally.articles, self.tally.on_topic)

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _writer(self, path, fmt: str, columns: list, name: str, sizes: dict):
        """A part writer for a file output (cut back to its checkpoint size when resuming), else standard output."""
        if not path:
            return self._stack.enter_context(RecordWriter(None, fmt, columns))
        writer = PartWriter(self.checkpoint.part(name), fmt, columns, sizes.get(name))
        self._stack.callback(writer.close)
        return writer

    def _part(self, name: str, sizes: dict) -> PartFile:
        """A part file of the report, closed with the run."""
        part = PartFile(self.checkpoint.part(name), sizes.get(name))
        self._stack.callback(part.close)
        return part

    def write(self, result) -> None:
        """One unit's records, summaries and report sections; its place in the checkpoint when resumable."""
        self.out.write(result.payload)
        if self.summary is not None:
            self.summary.write(encode(result.summaries, self.summary_fmt, summary_columns()))
        if self.report is not None:
            self.report.add(result.summaries, result.report)
        if self.checkpoint is not None and self.checkpoint.resumable:
            parts = {"out": self.out.size()}
            if self.summary is not None:
                parts["summary"] = self.summary.size()
            if self.report is not None:
                parts["rows"], parts["sections"] = self.report.sizes()
            self.checkpoint.record(parts, self.tally.state(), result.path, result.ids, result.digest)

    def commit(self, state: dict) -> None:
        """Every file built beside its place (the parts stay, for --resume after a kill -9 here), then all put in place."""
        staged = []
        try:
            if self.report is not None:
                staged.append(self.report.finish())
            if self.summary is not None:
                staged.append(self.summary.stage(self.req.summary))
            if self.req.output:
                staged.append(self.out.stage(self.req.output))
            state["before"] = identity(self.req.output)
            for file in staged:
                file.commit()
        except BaseException:
            for file in staged:
                file.discard()
            raise


def _tag(req: TagRequest, sources: list, options: TagOptions, tally: Tally, checkpoint, state: dict) -> None:
    """The pipeline: inputs -> articles -> scored records (the engine's workers) -> the outputs, put in place at the end."""
    start = time.perf_counter()
    with Outputs(req, options, checkpoint, tally) as outputs, _progress(req.quiet) as bar:
        for result in _results(req, sources, options, checkpoint):  # read, cut and scored in the workers
            if result.fatal:
                raise ModelError(result.fatal)
            tally.add(result)
            outputs.write(result)
            bar.update(result.n_paragraphs)
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"{tally.articles} articles, {tally.articles / elapsed:,.0f} articles/s", refresh=False)
        outputs.commit(state)


def _stopped(signum: int, to_stdout: bool, kept) -> None:
    """The message of a run stopped by a signal: what was (not) written, and where the work done waits for --resume."""
    written = "the records on standard output are incomplete; no file written" if to_stdout else "no output written"
    message = f"tag: interrupted by {_signal_name(signum)}; {written}"
    if kept is not None:
        message += (
            f". The {kept.last.get('inputs', 0)} inputs done so far are kept in {kept.folder}: "
            "run the same command with --resume to carry on"
        )
    print(message, file=sys.stderr)


def _finish(req: TagRequest, tally: Tally, seconds: float) -> int:
    """Print the closing lines; the very last one counts the failed inputs when there are any."""
    if tally.shown > MAX_MESSAGES:
        print(f"error: ... {tally.shown - MAX_MESSAGES} more messages not shown", file=sys.stderr)
    rate = (tally.paragraphs - tally.before) / seconds if seconds > 0 else 0.0
    return closing_lines(tally, req.output or "standard output", seconds, rate, req.quiet)


def closing_lines(counts, where: str, seconds: float, rate: float, quiet: bool) -> int:
    """The summary line (unless quiet) and the failed inputs' line of either engine; the exit code (1: some failed)."""
    warned = f"; {counts.warned} warning{'s' if counts.warned > 1 else ''} above" if counts.warned else ""
    if not quiet:
        print(
            f"tag: {counts.paragraphs} paragraphs of {counts.articles} articles ({counts.on_topic} on-topic) -> {where} "
            f"in {seconds:.1f} s ({rate:,.0f} paragraphs/s){warned}",
            file=sys.stderr,
        )
    if counts.failed:
        print(
            f"tag: {counts.failed} of {counts.inputs} inputs failed (messages above); all others were tagged",
            file=sys.stderr,
        )
        return 1
    return 0
