"""The Spark engine: executors read, decode, cut, score and write; the driver only lists, plans and commits.

Executors read the inputs themselves, in the task that tags them: text, web pages and JSONL[.gz]
files as whole files (`binaryFile`, so that each is decoded and numbered by line exactly as the
local engine does, with the local engine's own functions; a large JSONL file in slices, each
read by its own task), Parquet records with `spark.read.parquet` (split by row group). Articles
are tagged by `tag_articles`, the local workers' function, with the model that the driver shipped
(`SparkContext.addFile`) and each Python worker loaded after checking its sha256. Paragraph rows,
article summaries and messages (failed inputs, warnings) come out of that one pass, with no
shuffle, and Spark writes them with its own output commit into a staging folder beside the
output, which the driver then renames into place; the counts come back with the tasks. No
article text passes through the driver. See docs/spark.md.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipeline.tagging.inputs import (
    STDIN,
    InputError,
    Parsed,
    Unit,
    expand,
    jsonl_records,
    jsonl_units,
    kind_of,
    parse_unit,
    record_article,
    too_large,
)
from pipeline.tagging.outputs import OutputError, arrow_schema, flat_row, json_line, summary_columns
from pipeline.tagging.scoring import TagOptions

# pyspark 4.3 warns on every pandas call that it does not fully support pandas 3; no pandas is used here.
PANDAS3_WARNING = "PySpark does not yet fully support pandas"
MAX_MESSAGES = 200  # messages printed at the end (all of them are in the errors output)
JOB_FILE = "_job.json"  # written last into a finished output: what made it, and its counts
SUMMARY_DIR, ERRORS_DIR = "_summary", "_errors"  # beside the part files; '_' keeps them out of readers of the folder
ERROR_COLUMNS = ("file", "line", "severity", "reason")
# A JSONL file larger than SLICE_BYTES (as stored; the Spark conf SLICE_CONF changes it) is tagged by
# min(cores, MAX_SLICES) tasks, each reading it whole and tagging every n-th run of STRIPE_LINES
# lines: more would each decompress all of it for a smaller share.
SLICE_BYTES = 8 << 20
SLICE_CONF = "spark.pipeline.tag.sliceBytes"
MAX_SLICES = 8
STRIPE_LINES = 100
_WORKER: dict = {}  # per Python worker: the loaded model, keyed by the shipped file names


# Spark's own log at ERROR only: its default profile prints WARN lines (native Hadoop library,
# loopback address) and notices about itself on every start, none of which a tag user can act on.
LOG4J2 = """status = error
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
rootLogger.level = error
rootLogger.appenderRef.stdout.ref = console
"""


class JobError(OutputError):
    """A Spark job that failed as a whole (not a bad input); the message says why in one line."""


def spark_session(master: str, conf: dict | None = None):
    """A Spark session for tagging (loopback only for local masters, this Python for the workers)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{PANDAS3_WARNING}:FutureWarning")
    warnings.filterwarnings("ignore", message=PANDAS3_WARNING, category=FutureWarning)
    from pyspark.sql import SparkSession

    log_dir = Path(tempfile.mkdtemp(prefix="tag-spark-log-"))
    config = log_dir / "log4j2.properties"
    config.write_text(LOG4J2, encoding="utf-8")
    log = log_dir / "spark.log"
    java_options = f"-Dlog4j2.configurationFile={config.resolve().as_uri()}"
    builder = SparkSession.builder.appName("pipeline-tag").config("spark.ui.showConsoleProgress", "false")
    if master:  # spark-submit sets the master itself
        builder = builder.master(master)
    # The JVMs' options for a tagging job, as Spark's *default*JavaOptions, so that a user's
    # extraJavaOptions still apply (after these: for a repeated flag the last one counts). The JVMs
    # plan, list, commit and move bytes between Python and the files, none of which repays C2, the
    # optimising JIT compiler: it spent 4-8 s of CPU on a 10-20 s job here, competing with the Python
    # workers; with C1 alone the cluster job took 12.4-13.0 s instead of 16.2-16.5 s. (Under
    # spark-submit the driver's JVM is running already; its executors still start with these.)
    java_options += " -XX:TieredStopAtLevel=1"
    quiet = {"spark.driver.defaultJavaOptions": java_options, "spark.executor.defaultJavaOptions": java_options}
    # Full tracebacks in SQL functions give their Python workers the environment of RDD ones, so the
    # warm-up's workers serve the job (`_warm_up`); a failed task is reported in one line either way.
    same_workers = {"spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "false"}
    for key, value in {"spark.ui.enabled": "false", **quiet, **same_workers, **(conf or {})}.items():
        builder = builder.config(key, value)
    # The JVM started now inherits this as its standard error: Java prints a WARNING for the
    # incubator module Spark's launcher always adds, which no log level silences.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "wb") as f:
            os.dup2(f.fileno(), 2)
        spark = builder.getOrCreate()
    except BaseException:
        os.dup2(saved, 2)
        sys.stderr.write(log.read_text(encoding="utf-8", errors="replace"))
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- Driver: what to read -------------------------------------------------------------------------------------


def is_uri(path: str) -> bool:
    """Whether a path names a file system by its scheme (file://, hdfs://, s3a://, ...) rather than a local path."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path) is not None


def local_uri(path: str) -> str:
    """A local path as the file:// URI the executors read and write."""
    return Path(os.path.abspath(path)).as_uri()


def path_key(uri: str) -> str:
    """The key of an input in the plan: its absolute local path for file: URIs (as Spark spells them), else the URI."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.normpath(unquote(parsed.path))
    return uri


@dataclass
class Plan:
    """What the executors read: local files by kind (with the path shown for each), remote URIs, and driver-side messages."""

    files: dict = field(default_factory=dict)  # path key -> path as the local engine shows it
    whole: list = field(default_factory=list)  # URIs read as whole files (text, html, jsonl)
    parquet: list = field(default_factory=list)  # groups of Parquet URIs with the same columns
    remote: list = field(default_factory=list)  # URIs listed by Spark itself (folders, globs on a cluster file system)
    missing: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # folders, FIFOs and devices left out (inputs.expand)
    errors: list = field(default_factory=list)  # (file, message) found while planning: Parquet without id/text


def plan_inputs(paths: list[str]) -> Plan:
    """List the inputs on the driver (names and sizes only): local paths and globs walked like the local engine does."""
    plan = Plan()
    local = []
    for p in paths:
        if p == STDIN:
            raise OutputError(
                "--engine spark reads files, folders, globs or URIs: standard input is read by the local engine only "
                "(drop --engine spark, or save the input to a file)"
            )
        if is_uri(p):  # listed by Spark itself, on the executors' file system
            plan.remote.append(p)
        elif glob.has_magic(p) and not os.path.exists(p):
            found = sorted(glob.glob(p, recursive=True))
            local.extend(found) if found else plan.missing.append(p)
        else:
            local.append(p)
    sources, missing, skipped, notes = expand(local)
    plan.missing += missing
    plan.skipped += skipped
    plan.notes += notes
    sources = [(path, kind) for path, kind in sources if kind != "badname"]  # not valid UTF-8: a local-only case
    by_columns: dict = {}
    for path, kind in sources:
        plan.files[path_key(local_uri(path))] = path
        # Spark's file sources never hand empty files to a task
        if os.path.getsize(path) == 0 and kind in ("text", "html"):
            plan.errors += [(path, m) for m in parse_unit(Unit(kind, path, b""), False).errors]
        elif kind != "parquet":
            plan.whole.append(local_uri(path))  # an empty JSONL file has no records, as locally
        else:
            columns = _parquet_columns(path)
            if isinstance(columns, str):
                plan.errors.append((path, columns))
            elif "id" not in columns or "text" not in columns:
                plan.errors.append((path, f"{path}: a Parquet input needs the columns 'id' and 'text'"))
            else:
                by_columns.setdefault(tuple(columns), []).append(local_uri(path))
    plan.parquet = list(by_columns.values())
    return plan


def _parquet_columns(path: str) -> list[str] | str:
    """A Parquet file's column names from its footer, or the message for a file that is not Parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path).names
    except (OSError, ValueError) as e:
        return f"{path}: cannot be read as Parquet ({e})"


# --- Executors: read, tag, encode -----------------------------------------------------------------------------


def _display(uri: str, files: dict) -> str:
    """The path the local engine would show for an input the executors read."""
    return files.get(path_key(uri)) or uri


def _where_line(message: str, path: str) -> int | None:
    """The line number after a file's path in a message or an article's place ('path:12: ...', 'path:12'), else None."""
    m = re.match(r"(?::| row )(\d+)(?::|$)", message[len(path) :]) if message.startswith(path) else None
    return int(m.group(1)) if m else None


def _error(kind: str, path: str, message: str) -> dict:
    """A row of the errors output ('e' for an input not tagged, 'w' for a warning), as columns."""
    return {"file": path, "line": _where_line(message, path), "severity": SEVERITY[kind], "reason": message}


def _count_message(counts: dict, error: dict) -> None:
    """Count one message in a task's `Totals`, keeping its place among the first MAX_MESSAGES (by file, then line)."""
    counts["failed" if error["severity"] == "error" else "warned"] += 1
    line = -1 if error["line"] is None else error["line"]  # whole-file messages first
    counts["first"].append((error["file"], line, error["severity"], error["reason"]))
    if len(counts["first"]) > 2 * MAX_MESSAGES:
        counts["first"] = sorted(counts["first"])[:MAX_MESSAGES]


def _whole_file_units(path: str, content: bytes, options: TagOptions) -> Iterator[Unit]:
    """The local engine's units of one file read whole by Spark (gunzipped with the same size limit)."""
    import gzip

    kind = kind_of(path)
    if kind == "jsonl":
        raw = io.BufferedReader(io.BytesIO(content))
        stream = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        yield from jsonl_units(path, stream, options.max_bytes)
        return
    if options.paragraphs_mode:
        yield Unit("error", path, f"{path}: --paragraphs takes JSONL or Parquet records, not a {kind or 'text'} file")
        return
    try:
        if path.lower().endswith(".gz"):
            data = gzip.GzipFile(fileobj=io.BytesIO(content)).read(options.max_bytes + 1)
            if len(data) > options.max_bytes:
                raise InputError(too_large(options.max_bytes, "once decompressed, is"))
        elif len(content) > options.max_bytes:
            raise InputError(too_large(options.max_bytes, size=len(content)))
        else:
            data = content
    except (OSError, EOFError) as e:
        yield Unit("error", path, f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})")
        return
    except InputError as e:
        yield Unit("error", path, f"{path}: {e}")
        return
    yield Unit(kind or "text", path, data)


def load_shipped(names: tuple[str, str], explain: bool = False):
    """The shipped model of this job, loaded once per Python worker after `modelfile.load` checked its sha256."""
    if _WORKER.get("names") != (names, explain):
        from pyspark import SparkFiles

        from pipeline.tagging.scoring import load_scorer

        scorer = load_scorer(SparkFiles.get(names[0]), Path(SparkFiles.get(names[1])), estimator=explain)
        _WORKER.clear()
        _WORKER.update(names=(names, explain), scorer=scorer)
    return _WORKER["scorer"]


def out_schema(options: TagOptions):
    """The Arrow schema of the rows the executors hand to the writer: `kind`, then the JSON line or every Parquet column.

    Kinds: `p` paragraph rows, `s` article summaries, `e` messages (errors and warnings).
    """
    import pyarrow as pa

    kind = pa.field("kind", pa.string())
    if options.fmt == "jsonl":
        return pa.schema([kind, pa.field("value", pa.string())])
    fields = list(arrow_schema(list(options.columns)))
    names = {f.name for f in fields}
    fields += [f for f in arrow_schema(summary_columns()) if f.name not in names]
    fields += [pa.field("line", pa.int64())] + [pa.field(c, pa.string()) for c in ("file", "severity", "reason")]
    return pa.schema([kind, *fields])


SEVERITY = {"e": "error", "w": "warning"}


def _tagged(scorer, articles: list, options: TagOptions) -> tuple[list, list[dict]]:
    """Every paragraph row of tagged articles (JSON lines ending in a newline, or Parquet's flat columns), and every summary."""
    from pipeline.tagging.records import article_summary
    from pipeline.tagging.scoring import fast_lines, score_articles, tag_articles

    scored = score_articles(scorer, articles, options)
    fast = fast_lines(scorer, articles, scored, options)
    if fast is not None:  # JSON lines as the local engine writes them, no record dicts
        return fast
    encode = (lambda rec: json_line(rec) + "\n") if options.fmt == "jsonl" else flat_row
    rule = dict(options.rule)
    per_article = tag_articles(scorer, articles, options, scored)
    paragraphs = [encode(rec) for records in per_article for rec in records]
    return paragraphs, [article_summary(a, recs, rule) for a, recs in zip(articles, per_article, strict=True)]


COUNTED = ("articles", "paragraphs", "on_topic", "failed", "warned")


class Totals:
    """An accumulator's arithmetic: counts added up over the tasks, and the job's first MAX_MESSAGES messages.

    The counts come back with the tasks' results, so no job reads the output again for them.
    Spark adds a task's values once, however often the task ran.
    """

    def zero(self, value=None) -> dict:
        return dict.fromkeys(COUNTED, 0) | {"first": []}

    def addInPlace(self, a: dict, b: dict) -> dict:  # noqa: N802 - Spark's name
        for key in COUNTED:
            a[key] += b[key]
        a["first"] = sorted(a["first"] + b["first"])[:MAX_MESSAGES]
        return a


class _Task:
    """One task's rows: parsed articles tagged a batch at a time, and their messages; its counts go to `totals`."""

    BATCH = 1000  # articles per call of the model (a JSONL unit is up to 2,000 records; small files add up)

    def __init__(self, names: tuple[str, str], options: TagOptions, totals):
        from pipeline.tagging.batch import Tally

        self.names, self.options, self.schema, self.totals = names, options, out_schema(options), totals
        self.articles, self.kinds, self.columns = [], [], []
        self.counts = Totals().zero()
        self.ids = Tally()  # the local engine's check of ids repeated in a JSONL file (only its `remember`)

    def add(self, path: str, parsed: Parsed, jsonl: bool = False) -> None:
        """One parsed unit; ids repeated in a JSONL file are warned of as the local engine does."""
        self.articles += parsed.articles
        warnings = list(parsed.warnings)
        if jsonl:
            warnings += self.ids.remember(path, list(zip((a.id for a in parsed.articles), parsed.wheres, strict=True)))
        for kind, messages in (("e", parsed.errors), ("w", warnings)):
            for m in messages:
                error = _error(kind, path, m)
                self.kinds.append("e")
                self.columns.append(json.dumps(error, ensure_ascii=False) if self.options.fmt == "jsonl" else error)
                _count_message(self.counts, error)

    def seen_elsewhere(self, path: str, unit: Unit) -> None:
        """The ids of another slice's records (a stripe this task does not tag): what a later repeated id refers to.

        Their own repeats are that slice's to warn of, so the messages are dropped here.
        """
        records = jsonl_records(unit, self.options.paragraphs_mode, self.options.max_bytes)
        self.ids.remember(path, [(found.id, where) for where, found in records if not isinstance(found, InputError)])

    def batches(self, last: bool = False) -> Iterator:
        """Arrow batches of the rows so far, once BATCH articles are waiting (all of them when `last`)."""
        import pyarrow as pa

        if len(self.articles) >= self.BATCH or (last and (self.articles or self.kinds)):
            paragraphs, summaries = [], []
            if self.articles:
                scorer = load_shipped(self.names, self.options.explain > 0)
                paragraphs, summaries = _tagged(scorer, self.articles, self.options)
                self.counts["articles"] += len(summaries)
                self.counts["paragraphs"] += len(paragraphs)
                self.counts["on_topic"] += sum(bool(s["on_topic"]) for s in summaries)
            if self.options.fmt == "jsonl":
                # One row per kind holding all its lines: the text writer's file is the same, and the
                # JVM handles a few long strings instead of one row per paragraph.
                blocks = {"p": "".join(paragraphs)[:-1], "s": "\n".join(map(json_line, summaries))}
                for kind, value in zip(self.kinds, self.columns, strict=True):
                    blocks[kind] = f"{blocks[kind]}\n{value}" if blocks.get(kind) else value
                kinds = [k for k, v in blocks.items() if v]
                arrays = [pa.array(kinds, pa.string()), pa.array([blocks[k] for k in kinds], pa.string())]
                yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)
            else:
                kinds = ["p"] * len(paragraphs) + ["s"] * len(summaries) + self.kinds
                columns = paragraphs + [flat_row(s) for s in summaries] + self.columns
                rows = [{"kind": k, **c} for k, c in zip(kinds, columns, strict=True)]
                yield pa.RecordBatch.from_pylist(rows, self.schema)
            self.articles, self.kinds, self.columns = [], [], []
        if last:
            self.counts["first"] = sorted(self.counts["first"])[:MAX_MESSAGES]
            self.totals.add(self.counts)


def tag_files(batches, files: dict, names: tuple[str, str], options: TagOptions, totals) -> Iterator:
    """mapInArrow over (path, content, slice, slices) rows: each file's units of this slice parsed, tagged, encoded."""
    task = _Task(names, options, totals)
    for batch in batches:
        columns = [batch.column(c).to_pylist() for c in ("path", "content", "slice", "slices")]
        for uri, content, part, parts in zip(*columns, strict=True):
            path = _display(uri, files)
            for unit, mine in _stripes(_whole_file_units(path, content, options), part, parts):
                if mine:
                    task.add(path, parse_unit(unit, options.paragraphs_mode, options.max_bytes), unit.kind == "jsonl")
                    yield from task.batches()
                else:
                    task.seen_elsewhere(path, unit)
    yield from task.batches(last=True)


def _stripes(units: Iterator[Unit], part: int, parts: int) -> Iterator[tuple[Unit, bool]]:
    """A file's units cut in runs of STRIPE_LINES lines, each with whether slice `part` of `parts` tags it.

    Every slice reads the same lines, so stripe k, tagged by slice k % parts, is tagged once; the
    others' stripes still give their ids, for the warning of a repeated id. A unit that is not
    lines (a text file, a read error) is slice 0's.
    """
    for unit in units:
        if parts == 1 or unit.kind != "jsonl":
            yield unit, part == 0
            continue
        start, stop = unit.first, unit.first + len(unit.data)
        while start < stop:
            stripe = (start - 1) // STRIPE_LINES
            end = min((stripe + 1) * STRIPE_LINES + 1, stop)
            yield (
                Unit("jsonl", unit.path, unit.data[start - unit.first : end - unit.first], start),
                stripe % parts == part,
            )
            start = end


def tag_records(batches, files: dict, names: tuple[str, str], options: TagOptions, totals) -> Iterator:
    """mapInArrow over Parquet rows (with their file and row number): each record checked by `record_article`, tagged."""
    task = _Task(names, options, totals)
    for batch in batches:
        for rec in batch.to_pylist():
            path, row = _display(rec.pop("_uri"), files), rec.pop("_row") + 1
            where = f"{path}: row {row}"
            parsed = Parsed()
            try:
                parsed.add(record_article(rec, path, where, options.paragraphs_mode, options.max_bytes), where)
            except InputError as e:
                parsed.errors.append(str(e))
            task.add(path, parsed)
        yield from task.batches()
    yield from task.batches(last=True)


# --- Driver: the job ------------------------------------------------------------------------------------------


def code_zip(folder: Path) -> str:
    """The pipeline package as a zip for the executors' Python workers."""
    package = Path(__file__).resolve().parents[1]
    target = folder / "pipeline.zip"
    with zipfile.ZipFile(target, "w") as z:
        for f in sorted(package.rglob("*.py")):
            z.write(f, f.relative_to(package.parent))
    return str(target)


def model_files(model: str, folder: Path) -> tuple[str, str]:
    """The model file and its metadata to ship: a local path or MLflow URI (downloaded here, once) is sha256-checked now.

    A URI the executors read themselves (hdfs://, s3a://, file://) is not read on the driver: each
    Python worker checks what it fetched, like every other model, before unpickling it.
    """
    from pipeline.errors import ModelError
    from pipeline.modelfile import read_meta, sha256_file

    if model.startswith(("runs:/", "models:/")):
        from pipeline.tracking import download_model

        path, meta_file, _ = download_model(model, folder / "mlflow")
        model, meta = str(path), str(meta_file)
    elif is_uri(model):
        return model, re.sub(r"\.[^./]*$", "", model) + ".json"
    else:
        meta = str(Path(model).with_suffix(".json"))
    if not Path(model).is_file():
        raise ModelError(f"{model}: model file not found (run `dvc repro` to train one)")
    expected = read_meta(Path(model), Path(meta))["sha256"]
    actual = sha256_file(Path(model))
    if actual != expected:
        raise ModelError(
            f"{model}: sha256 {actual[:12]}... does not match {expected[:12]}... recorded in "
            f"its metadata; refusing to unpickle a file that may have been altered or truncated"
        )
    return model, meta


def ship_model(sc, model: str, meta: str) -> tuple[str, str]:
    """Ship the model file and its metadata to every executor (SparkContext.addFile); their names for SparkFiles."""
    from pipeline.errors import ModelError

    names = (os.path.basename(urlparse(model).path), os.path.basename(urlparse(meta).path))
    if names[0] == names[1]:
        raise ModelError(f"{model}: the model and its metadata need different file names")
    sc.addFile(model)
    sc.addFile(meta)
    return names


class Store:
    """The output's file system through Hadoop's FileSystem API on the driver (local, hdfs://, s3a://, ...)."""

    def __init__(self, spark, uri: str):
        jvm = spark._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(uri).getFileSystem(spark._jsc.hadoopConfiguration())

    def exists(self, uri: str) -> bool:
        return self.fs.exists(self._path(uri))

    def is_dir(self, uri: str) -> bool:
        return self.exists(uri) and self.fs.getFileStatus(self._path(uri)).isDirectory()

    def names(self, uri: str) -> list[str]:
        return sorted(s.getPath().getName() for s in self.fs.listStatus(self._path(uri)))

    def rename(self, src: str, dest: str) -> None:
        if not self.fs.rename(self._path(src), self._path(dest)):
            raise OutputError(f"{dest}: cannot be renamed into place from {src}")

    def move(self, src: str, dest: str) -> None:
        """Rename `src` to `dest`, or make `dest` an empty folder when there is no `src`."""
        if self.exists(src):
            self.rename(src, dest)
        elif not self.fs.mkdirs(self._path(dest)):
            raise OutputError(f"{dest}: cannot be created")

    def delete(self, uri: str) -> None:
        self.fs.delete(self._path(uri), True)

    def write(self, uri: str, data: bytes) -> None:
        stream = self.fs.create(self._path(uri), True)
        try:
            stream.write(data)
        finally:
            stream.close()


def _sibling(uri: str, prefix: str) -> str:
    """A hidden folder beside `uri`: `.NAME.PREFIX-RANDOM`, on the same file system so that a rename moves it."""
    head, name = uri.rstrip("/").rsplit("/", 1)
    return f"{head}/.{name}.{prefix}-{uuid.uuid4().hex[:12]}"


def check_output(out: str, plan: Plan, store: Store | None = None) -> None:
    """Refuse an output that is an input, holds one, is a file, a link, or a folder this engine did not write.

    A local output is checked before Spark starts; one on a cluster file system through `store`.
    """
    target = path_key(out)
    if urlparse(out).scheme == "file":
        if os.path.islink(target):
            raise OutputError(f"{target}: is a symbolic link; give the output folder itself")
        real = os.path.realpath(target)
        for p in plan.files.values():
            rp = os.path.realpath(p)
            if rp == real or rp.startswith(real + os.sep):
                raise OutputError(f"{target}: the output folder would hold or replace an input ({p})")
        exists, is_dir = os.path.exists(target), os.path.isdir(target)
        names = sorted(os.listdir(target)) if is_dir else []
    elif store is not None:
        exists, is_dir = store.exists(out), store.is_dir(out)
        names = store.names(out) if is_dir else []
    else:
        return
    if exists and not is_dir:
        raise OutputError(f"{target}: is a file; --engine spark writes a folder of part files: give a folder")
    if names and JOB_FILE not in names:
        raise OutputError(f"{target}: is a folder that `tag --engine spark` did not write; refusing to replace it")


def _commit(store: Store, staging: str, out: str) -> None:
    """Put a finished staging folder in place of the output; a previous output is kept until the new one is there."""
    old = None
    if store.exists(out):
        old = _sibling(out, "old")
        store.rename(out, old)
    store.rename(staging, out)
    if old is not None:
        store.delete(old)


def _jsonl_names(store: Store, folder: str) -> None:
    """Spark's text writer names its parts .txt: rename them .jsonl (the folder is not in place yet)."""
    for name in store.names(folder):
        if name.startswith("part-") and name.endswith(".txt"):
            store.rename(f"{folder}/{name}", f"{folder}/{name[: -len('.txt')]}.jsonl")


@dataclass
class Counts:
    """What a job did, from its own scored rows (never from article text on the driver)."""

    inputs: int = 0
    failed: int = 0
    warned: int = 0
    articles: int = 0
    paragraphs: int = 0
    on_topic: int = 0
    printed: list = field(default_factory=list)  # (severity, message) of the first messages, in input order


@dataclass
class _Job:
    """What every task of a job needs: the options, the shipped model's names, the slices of a large file, the totals."""

    options: TagOptions
    names: tuple[str, str]
    slices: int
    slice_bytes: int
    totals: object  # a Spark accumulator of `Totals`


def _tagged_rows(spark, plan: Plan, job: _Job):
    """Every input's output rows, made by the executors in one pass: reading, decoding, parsing, tagging, encoding."""
    frames = []
    files = dict(plan.files)
    if plan.whole:
        frames += _tag_whole(spark.read.format("binaryFile").load(plan.whole), files, job)
    for uris in plan.parquet:
        frames.append(_tag_parquet(spark.read.parquet(*uris), files, job))
    for uri in plan.remote:
        frames += _read_remote(spark, uri, job)
    if plan.errors:  # found on the driver: counted there, written like the tasks' messages
        counts, errors = Totals().zero(), [_error("e", path, message) for path, message in plan.errors]
        for error in errors:
            _count_message(counts, error)
        job.totals.add(counts)
        frames.append(spark.createDataFrame([_message_row(e, job.options) for e in errors], _ddl(job.options)))
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows


def _message_row(error: dict, options: TagOptions) -> tuple:
    """A message made on the driver as a row of the output schema."""
    if options.fmt == "jsonl":
        return ("e", json.dumps(error, ensure_ascii=False))
    return ("e", *(error.get(name) for name in out_schema(options).names[1:]))


def _tag_whole(binary, files: dict, job: _Job) -> list:
    """Whole files (`binaryFile`); a JSONL file larger than `job.slice_bytes` is tagged by `job.slices` tasks, each reading it."""
    from pyspark.sql import functions as F

    # (?i), not lower(): Spark 4 lower-cases with ICU, whose first use costs seconds of class loading
    large = F.col("path").rlike(r"(?i)\.(jsonl|ndjson)(\.gz)?$") & (F.col("length") > job.slice_bytes)
    frames = []
    if job.slices > 1:  # a cartesian product: task (slice, partition) reads the partition's files itself, no shuffle
        numbers = binary.sparkSession.range(0, job.slices, 1, job.slices).select(F.col("id").cast("int").alias("slice"))
        parts = numbers.hint("shuffle_replicate_nl").crossJoin(binary.where(large).select("path", "content"))
        frames.append(parts.select("path", "content", "slice", F.lit(job.slices).alias("slices")))
        binary = binary.where(~large)
    frames.append(binary.select("path", "content", F.lit(0).alias("slice"), F.lit(1).alias("slices")))
    tag = partial(tag_files, files=files, names=job.names, options=job.options, totals=job.totals)
    return [f.sortWithinPartitions("path").mapInArrow(tag, _ddl(job.options)) for f in frames]


def _tag_parquet(records, files: dict, job: _Job):
    """Parquet records, tagged in the tasks that read them (split by row group), in file and row order."""
    from pyspark.sql import functions as F

    meta = [F.col("_metadata.file_path").alias("_uri"), F.col("_metadata.row_index").alias("_row")]
    rows = records.select(*meta, *records.columns).sortWithinPartitions("_uri", "_row")
    tag = partial(tag_records, files=files, names=job.names, options=job.options, totals=job.totals)
    return rows.mapInArrow(tag, _ddl(job.options))


WHOLE_GLOB = "*.{txt,text,html,htm,xhtml,jsonl,ndjson,txt.gz,text.gz,html.gz,htm.gz,xhtml.gz,jsonl.gz,ndjson.gz}"


def _read_remote(spark, uri: str, job: _Job) -> list:
    """Frames for a URI Spark lists itself: a file, a folder (walked, known extensions only) or a glob."""
    from pyspark.errors import AnalysisException

    frames = []
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    is_file = bool(kind_of(name)) and not glob.has_magic(name)
    reader = spark.read if is_file else spark.read.option("recursiveFileLookup", "true")
    try:
        if not is_file or kind_of(name) != "parquet":
            binary = (reader if is_file else reader.option("pathGlobFilter", WHOLE_GLOB)).format("binaryFile").load(uri)
            frames += _tag_whole(binary, {}, job)
        if not is_file or kind_of(name) == "parquet":
            pq = reader if is_file else reader.option("pathGlobFilter", "*.{parquet,pq}").option("mergeSchema", "true")
            with _no_files_ok():
                frames.append(_tag_parquet(pq.parquet(uri), {}, job))
    except AnalysisException as e:
        raise OutputError(f"{uri}: cannot be read ({str(e).splitlines()[0]})") from None
    return frames


class _no_files_ok:
    """A folder with no Parquet file in it is not an error (Spark cannot infer the schema of nothing)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc is not None and "UNABLE_TO_INFER_SCHEMA" in str(exc)


def run_job(spark, plan: Plan, out: str, job: _Job) -> Counts:
    """Read, tag and write every input into a staging folder beside `out`, then rename it into place.

    One pass over the input writes every row (`kind` p, s, e) into a second staging folder; its
    folders are then moved into the output's layout. The counts and the first messages come back
    with the tasks (`Totals`): nothing is read again.
    """
    store = Store(spark, out)
    staging, rows = _sibling(out, "spark"), _sibling(out, "rows")
    errors = f"{staging}/{ERRORS_DIR}"
    try:
        _write_rows(_tagged_rows(spark, plan, job), rows, job.options)
        for kind, folder in (("p", staging), ("s", f"{staging}/{SUMMARY_DIR}"), ("e", errors)):
            store.move(f"{rows}/kind={kind}", folder)  # an empty folder where no row had this kind
            store.write(f"{folder}/_SUCCESS", b"")
    except BaseException:
        for folder in (staging, rows):
            store.delete(folder)
        raise
    store.delete(rows)
    totals = job.totals.value
    counts = Counts(**{k: totals[k] for k in COUNTED})
    counts.printed = [(severity, message) for _, _, severity, message in totals["first"]]
    counts.inputs = counts.articles + counts.failed + len(plan.missing)
    counts.failed += len(plan.missing)
    if job.options.fmt == "jsonl":
        for folder in (staging, f"{staging}/{SUMMARY_DIR}", errors):
            _jsonl_names(store, folder)
    made = {"counts": {k: v for k, v in counts.__dict__.items() if k != "printed"}, "format": job.options.fmt}
    store.write(f"{staging}/{JOB_FILE}", (json.dumps(made, indent=2) + "\n").encode("utf-8"))
    _commit(store, staging, out)
    return counts


def _write_rows(rows, folder: str, options: TagOptions) -> None:
    """Every row into `folder/kind=K/` through Spark's output commit (a task's files are moved into place when the job commits).

    JSON lines are one column whatever the kind, so one write sorts them into folders by kind;
    Parquet kinds have different columns, so the rows are kept on the executors' disks and
    written once per kind.
    """
    if options.fmt == "jsonl":
        rows.write.partitionBy("kind").text(folder)
        return
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    rows = rows.persist(StorageLevel.DISK_ONLY)
    try:
        for kind, columns in (("p", list(options.columns)), ("s", summary_columns()), ("e", list(ERROR_COLUMNS))):
            rows.where(F.col("kind") == kind).select(*columns).write.parquet(f"{folder}/kind={kind}")
    finally:
        rows.unpersist()


def _ddl(options: TagOptions):
    """The Spark schema of the output rows."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(out_schema(options))


def job_error(error: Exception) -> Exception:
    """One line for a failed Spark job: the model's or an output's own message when a task raised one."""
    from pipeline.errors import ModelError

    text = str(error)
    for kind, cls in (("ModelError", ModelError), ("OutputError", OutputError)):
        m = re.search(rf"{kind}: (.+)", text)
        if m:
            return cls(m.group(1).strip())
    first = next((line for line in text.splitlines() if line.strip()), type(error).__name__)
    return JobError(f"the Spark job failed: {first.strip()[:500]}")


def output_uri(output: str | None) -> str:
    """The output folder as a URI; refused when missing (part files need a folder) or when it names a single file."""
    if not output:
        raise OutputError("--engine spark writes a folder of part files: give -o FOLDER")
    return output if is_uri(output) else local_uri(output)


def prepare(paths: list[str], output: str | None, options: TagOptions) -> tuple[Plan, str]:
    """Everything checked before Spark starts: the format, the inputs listed, a local output; (plan, output URI)."""
    if options.fmt not in ("jsonl", "parquet"):
        raise OutputError(f"--engine spark writes JSONL or Parquet part files, not {options.fmt}")
    out = output_uri(output)
    plan = plan_inputs(paths)
    if not plan.files and not plan.remote and not plan.missing and not plan.errors:
        raise OutputError("nothing to tag: no inputs given")
    check_output(out, plan)
    return plan, out


def tag_on_spark(spark, plan: Plan, out: str, options: TagOptions, model: tuple[str, str]) -> Counts:
    """Tag every input of `plan` on `spark` into the folder `out` with the model (file, metadata); the counts."""
    check_output(out, plan, Store(spark, out))
    sc = spark.sparkContext
    with tempfile.TemporaryDirectory(prefix="tag-spark-") as tmp:
        names = ship_model(sc, *model)
        sc.addPyFile(code_zip(Path(tmp)))
        if not plan.whole and not plan.parquet and not plan.remote and not plan.errors:
            return Counts(inputs=len(plan.missing), failed=len(plan.missing))
        totals = sc.accumulator(Totals().zero(), Totals())
        slicing = min(MAX_SLICES, sc.defaultParallelism), int(spark.conf.get(SLICE_CONF, str(SLICE_BYTES)))
        job = _Job(options, names, *slicing, totals)
        warm = _warm_up(spark, names, options.explain > 0)  # the job's tasks start once its tasks leave the cores
        try:
            return run_job(spark, plan, out, job)
        except OutputError:
            raise
        except Exception as e:  # py4j and pyspark errors carry the executor's traceback: one line instead
            raise job_error(e) from None
        finally:
            sc.cancelJobGroup(WARM_UP)
            warm.join()


WARM_UP = "pipeline-tag-warm-up"


def _warm_up(spark, names: tuple[str, str], explain: bool) -> threading.Thread:
    """Start a Python worker on every core and load the model in it while the driver plans the job (best effort).

    Spark reuses Python workers, so the job's tasks find the model loaded. An RDD job starts at
    once, where a first SQL query takes seconds to plan; SQL functions share the RDD workers
    because the session turns off their simplified tracebacks (a different worker environment).
    A worker that cannot load the model says nothing here: the job's own task reports why.
    """

    def run() -> None:
        sc = spark.sparkContext
        sc.setJobGroup(WARM_UP, "load the model in the Python workers", interruptOnCancel=False)
        n = sc.defaultParallelism
        with contextlib.suppress(Exception):
            sc.parallelize(range(n), n).mapPartitions(partial(_load_quietly, names=names, explain=explain)).collect()

    thread = threading.Thread(target=run, name=WARM_UP, daemon=True)
    thread.start()
    return thread


def _load_quietly(rows, names: tuple[str, str], explain: bool) -> Iterator:
    with contextlib.suppress(Exception):
        load_shipped(names, explain)
    yield from rows  # a task that leaves its input unread loses its Python worker: it would not be reused


def report(counts: Counts, plan: Plan, output: str, seconds: float, quiet: bool) -> int:
    """Print the messages and closing lines like the local engine does; the exit code."""
    for path in plan.missing:
        print(f"error: {path}: no such file or folder", file=sys.stderr)
    for severity, message in counts.printed:
        print(f"{severity}: {message}", file=sys.stderr)
    shown = counts.failed - len(plan.missing) + counts.warned
    if shown > MAX_MESSAGES:
        print(f"error: ... {shown - MAX_MESSAGES} more messages in {output}/{ERRORS_DIR}", file=sys.stderr)
    for note in plan.notes[:MAX_MESSAGES]:
        print(f"note: {note}", file=sys.stderr)
    if plan.skipped:
        print(
            f"note: {len(plan.skipped)} files with other extensions skipped in the folders given, e.g. {plan.skipped[0]}",
            file=sys.stderr,
        )
    from pipeline.tagging.batch import closing_lines

    return closing_lines(counts, output, seconds, counts.paragraphs / seconds if seconds > 0 else 0.0, quiet)


def run_request(req) -> int:
    """`tag --engine spark`: checks, a session on `req.spark_master`, the job, the session stopped; the exit code."""
    from pipeline.config import load_params
    from pipeline.tagging.batch import _options, check_options
    from pipeline.tagging.outputs import output_format

    start = time.perf_counter()
    check_options(req)  # the numbers' ranges and option pairs, as for the local engine
    if req.report or req.summary or req.resume:
        what = "--report" if req.report else "--summary" if req.summary else "--resume"
        raise OutputError(
            f"{what} is not available with --engine spark: the summary and errors are written beside the part files "
            f"(OUT/{SUMMARY_DIR}, OUT/{ERRORS_DIR})"
        )
    fmt = output_format(req.output, req.fmt)  # a folder named out.parquet holds Parquet parts
    options = _options(req, fmt, load_params(req.params))
    plan, out = prepare(req.paths, req.output, options)
    with tempfile.TemporaryDirectory(prefix="tag-model-") as tmp:
        model = model_files(req.model, Path(tmp))
        spark = spark_session(req.spark_master)
        try:
            counts = tag_on_spark(spark, plan, out, options, model)
        finally:
            spark.stop()
    return report(counts, plan, req.output, time.perf_counter() - start, req.quiet)
