"""The Spark engine: executors read, decode, cut, score and write; the driver only lists, plans and commits.

Executors read the inputs themselves: text, web pages and JSONL[.gz] files as whole files
(`binaryFile`, so that each is decoded and numbered by line exactly as the local engine does,
with the local engine's own functions), Parquet records with `spark.read.parquet` (split by row
group). Parsed articles are spread over the cluster by a hash of (file, position), sorted by it
inside each partition, and scored by `tag_articles`, the local workers' function, with the model
that the driver shipped (`SparkContext.addFile`) and each Python worker loaded after checking its
sha256. Paragraph rows, article summaries and messages (failed inputs, warnings) come out of that
one pass; Spark writes each as a folder of part files with its own output commit into a staging
folder beside the output, which the driver then renames into place. No article text passes
through the driver. See docs/spark.md.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import sys
import tempfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipeline.tagging.inputs import (
    STDIN,
    InputError,
    Parsed,
    Unit,
    expand,
    jsonl_units,
    kind_of,
    parse_unit,
    record_article,
    too_large,
)
from pipeline.tagging.outputs import OutputError, arrow_schema, json_line, summary_columns
from pipeline.tagging.scoring import TagOptions

# pyspark 4.3 warns on every pandas call that it does not fully support pandas 3; no pandas is used here.
PANDAS3_WARNING = "PySpark does not yet fully support pandas"
MAX_MESSAGES = 200  # messages printed at the end (all of them are in the errors output)
BYTES_PER_PARTITION = 4 << 20  # input bytes per scoring partition, so that large inputs spread over the cluster
JOB_FILE = "_job.json"  # written last into a finished output: what made it, and its counts
SUMMARY_DIR, ERRORS_DIR = "_summary", "_errors"  # beside the part files; '_' keeps them out of readers of the folder
ERROR_COLUMNS = ("file", "line", "severity", "reason")
# Rows of the parse step: one per article or message, keyed by (file, position) for the order of the output.
PARSED_SCHEMA = "_kind string, _file string, _pos long, id string, text string, path string, fields string, line long, reason string"
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
    quiet = {"spark.driver.extraJavaOptions": java_options, "spark.executor.extraJavaOptions": java_options}
    for key, value in {"spark.ui.enabled": "false", **quiet, **(conf or {})}.items():
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
    size: int = 0  # input bytes, for the number of scoring partitions


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
        size = os.path.getsize(path)
        plan.size += size
        if size == 0 and kind in ("text", "html"):  # Spark's file sources never hand empty files to a task
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


# --- Executors: parse ---------------------------------------------------------------------------------------


def _display(uri: str, files: dict) -> str:
    """The path the local engine would show for an input the executors read."""
    return files.get(path_key(uri)) or uri


def _where_line(message: str, path: str) -> int | None:
    """The line number after a file's path in a message or an article's place ('path:12: ...', 'path:12'), else None."""
    m = re.match(r"(?::| row )(\d+)(?::|$)", message[len(path) :]) if message.startswith(path) else None
    return int(m.group(1)) if m else None


def _message_row(kind: str, path: str, message: str, pos: int = 0) -> dict:
    line = _where_line(message, path)
    return {"_kind": kind, "_file": path, "_pos": line if line is not None else pos, "line": line, "reason": message}


def _parsed_rows(path: str, parsed: Parsed, positions: list[int], seen: dict | None) -> list[dict]:
    """Rows for the articles and messages of one parsed unit; with `seen`, ids repeated in the file become warnings."""
    from pipeline.tagging.batch import Tally

    rows = []
    for article, pos in zip(parsed.articles, positions, strict=True):
        fields = json.dumps(article.extra, ensure_ascii=False, default=str) if article.extra else None
        rows.append(
            {"_kind": "a", "_file": path, "_pos": pos, "id": article.id, "text": article.text, "path": article.path}
            | {"fields": fields}
        )
    rows += [_message_row("e", path, m) for m in parsed.errors]
    rows += [_message_row("w", path, m) for m in parsed.warnings]
    if seen is not None:
        tally = seen.setdefault(path, Tally())  # the local engine's check of repeated ids in one JSONL file
        ids = [(a.id, w) for a, w in zip(parsed.articles, parsed.wheres, strict=True)]
        rows += [_message_row("w", path, m) for m in tally.remember(path, ids)]
    return rows


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


def parse_files(batches, files: dict, options: TagOptions) -> Iterator:
    """mapInArrow over `binaryFile` rows: each file decoded and parsed by the local engine's functions, unit by unit."""
    import pyarrow as pa

    schema = _arrow(PARSED_SCHEMA)
    for batch in batches:
        for uri, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True):
            path, seen = _display(uri, files), {}
            for unit in _whole_file_units(path, content, options):
                parsed = parse_unit(unit, options.paragraphs_mode, options.max_bytes)
                positions = [_where_line(w, path) or 0 for w in parsed.wheres]
                rows = _parsed_rows(path, parsed, positions, seen if unit.kind == "jsonl" else None)
                if rows:
                    yield pa.RecordBatch.from_pylist(rows, schema)


def parse_records(batches, files: dict, options: TagOptions) -> Iterator:
    """mapInArrow over Parquet rows (with `_metadata`): each record checked by the local engine's `record_article`."""
    import pyarrow as pa

    schema = _arrow(PARSED_SCHEMA)
    for batch in batches:
        records = batch.to_pylist()
        rows = []
        for rec in records:
            path, row = _display(rec.pop("_uri"), files), rec.pop("_row") + 1
            where = f"{path}: row {row}"
            parsed = Parsed()
            try:
                parsed.add(record_article(rec, path, where, options.paragraphs_mode, options.max_bytes), where)
            except InputError as e:
                parsed.errors.append(str(e))
            rows += _parsed_rows(path, parsed, [row] * len(parsed.articles), None)
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema)


# --- Executors: score -----------------------------------------------------------------------------------------


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
    """The Arrow schema of the scored rows: sort keys and counts, then JSON lines or every Parquet column."""
    import pyarrow as pa

    keys = [
        pa.field("_kind", pa.string()),
        pa.field("_file", pa.string()),
        pa.field("_pos", pa.int64()),
        pa.field("_para", pa.int64()),
        pa.field("_n", pa.int64()),
        pa.field("_on", pa.bool_()),
    ]
    if options.fmt == "jsonl":
        return pa.schema([*keys, pa.field("value", pa.string())])
    fields = list(arrow_schema(list(options.columns)))
    names = {f.name for f in fields}
    fields += [f for f in arrow_schema(summary_columns()) if f.name not in names]
    fields += [pa.field("line", pa.int64())] + [pa.field(c, pa.string()) for c in ("file", "severity", "reason")]
    return pa.schema(keys + fields)


SEVERITY = {"e": "error", "w": "warning"}


def _message_out(row: dict, fmt: str) -> dict:
    error = {"file": row["_file"], "line": row["line"], "severity": SEVERITY[row["_kind"]], "reason": row["reason"]}
    keys = {"_kind": row["_kind"], "_file": row["_file"], "_pos": row["_pos"], "_para": -1}
    return keys | ({"value": json.dumps(error, ensure_ascii=False)} if fmt == "jsonl" else error)


def _score_rows(scorer, rows: list[dict], options: TagOptions) -> list[dict]:
    """Output rows (paragraphs, then summaries) of a batch of parsed articles, tagged like the local engine does."""
    from pipeline.tagging.outputs import flat_row
    from pipeline.tagging.records import article_summary
    from pipeline.tagging.scoring import fast_lines, score_articles, tag_articles
    from pipeline.text import Article

    articles = [
        Article(id=r["id"], text=r["text"], path=r["path"], extra=json.loads(r["fields"]) if r["fields"] else {})
        for r in rows
    ]
    scored = score_articles(scorer, articles, options)
    fast = fast_lines(scorer, articles, scored, options)
    if fast is not None:  # JSON lines as the local engine writes them, no record dicts
        return _fast_rows(rows, *fast)
    rule = dict(options.rule)
    per_article = tag_articles(scorer, articles, options, scored)
    out = []
    for row, article, records in zip(rows, articles, per_article, strict=True):
        keys = {"_file": row["_file"], "_pos": row["_pos"]}
        for rec in records:
            value = {"value": json_line(rec)} if options.fmt == "jsonl" else flat_row(rec)
            out.append({"_kind": "p", **keys, "_para": rec["paragraph"], **value})
        summary = article_summary(article, records, rule)
        value = {"value": json_line(summary)} if options.fmt == "jsonl" else flat_row(summary)
        out.append({"_kind": "s", **keys, "_para": -1, "_n": len(records), "_on": summary["on_topic"], **value})
    return out


def _fast_rows(rows: list[dict], lines: list[str], summaries: list[dict]) -> list[dict]:
    """`_score_rows`' output from `scoring.fast_lines`: each article's paragraph lines, then its summary."""
    from pipeline.tagging.outputs import json_line

    out, at = [], 0
    for row, summary in zip(rows, summaries, strict=True):
        keys, n = {"_file": row["_file"], "_pos": row["_pos"]}, summary["paragraphs"]
        out += [{"_kind": "p", **keys, "_para": k, "value": lines[at + k][:-1]} for k in range(n)]
        at += n
        out.append(
            {"_kind": "s", **keys, "_para": -1, "_n": n, "_on": summary["on_topic"], "value": json_line(summary)}
        )
    return out


def score_parsed(batches, names: tuple[str, str], options: TagOptions) -> Iterator:
    """mapInArrow over sorted parsed rows: articles tagged with the shipped model, messages passed on as error rows."""
    import pyarrow as pa

    schema = out_schema(options)
    for batch in batches:
        rows = batch.to_pylist()
        articles = [r for r in rows if r["_kind"] == "a"]
        out = _score_rows(load_shipped(names, options.explain > 0), articles, options) if articles else []
        out += [_message_out(r, options.fmt) for r in rows if r["_kind"] != "a"]
        if out:
            yield pa.RecordBatch.from_pylist(out, schema)


def _arrow(ddl: str):
    """An Arrow schema from the few DDL types used here."""
    import pyarrow as pa

    types = {"string": pa.string(), "long": pa.int64()}
    return pa.schema([pa.field(n, types[t]) for n, t in (c.split() for c in ddl.split(", "))])


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
    from pipeline.model import ModelError

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
    printed: list = field(default_factory=list)  # (kind, message) of the first MAX_MESSAGES messages, in input order


def _read(spark, plan: Plan, options: TagOptions):
    """The parsed rows of every input, as the executors make them (reading, decoding and parsing all happen there)."""
    from pyspark.sql import functions as F

    frames = []
    files = dict(plan.files)
    if plan.whole:
        binary = spark.read.format("binaryFile").load(plan.whole)
        frames.append(binary.mapInArrow(lambda b: parse_files(b, files, options), PARSED_SCHEMA))
    for uris in plan.parquet:
        records = spark.read.parquet(*uris)
        meta = [F.col("_metadata.file_path").alias("_uri"), F.col("_metadata.row_index").alias("_row")]
        frames.append(
            records.select(*meta, *records.columns).mapInArrow(
                lambda b: parse_records(b, files, options), PARSED_SCHEMA
            )
        )
    for uri in plan.remote:
        frames += _read_remote(spark, uri, options)
    if plan.errors:
        rows = [_message_row("e", path, message) for path, message in plan.errors]
        frames.append(spark.createDataFrame([tuple(r.get(c) for c in _columns()) for r in rows], PARSED_SCHEMA))
    parsed = frames[0]
    for frame in frames[1:]:
        parsed = parsed.unionByName(frame)
    return parsed


def _columns() -> list[str]:
    return [c.split()[0] for c in PARSED_SCHEMA.split(", ")]


WHOLE_GLOB = "*.{txt,text,html,htm,xhtml,jsonl,ndjson,txt.gz,text.gz,html.gz,htm.gz,xhtml.gz,jsonl.gz,ndjson.gz}"


def _read_remote(spark, uri: str, options: TagOptions) -> list:
    """Frames for a URI Spark lists itself: a file, a folder (walked, known extensions only) or a glob."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    frames = []
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    is_file = bool(kind_of(name)) and not glob.has_magic(name)
    reader = spark.read if is_file else spark.read.option("recursiveFileLookup", "true")
    try:
        if not is_file or kind_of(name) != "parquet":
            binary = (reader if is_file else reader.option("pathGlobFilter", WHOLE_GLOB)).format("binaryFile").load(uri)
            frames.append(binary.mapInArrow(lambda b: parse_files(b, {}, options), PARSED_SCHEMA))
        if not is_file or kind_of(name) == "parquet":
            pq = reader if is_file else reader.option("pathGlobFilter", "*.{parquet,pq}").option("mergeSchema", "true")
            with _no_files_ok():
                records = pq.parquet(uri)
                meta = [F.col("_metadata.file_path").alias("_uri"), F.col("_metadata.row_index").alias("_row")]
                frames.append(
                    records.select(*meta, *records.columns).mapInArrow(
                        lambda b: parse_records(b, {}, options), PARSED_SCHEMA
                    )
                )
    except AnalysisException as e:
        raise OutputError(f"{uri}: cannot be read ({str(e).splitlines()[0]})") from None
    return frames


class _no_files_ok:
    """A folder with no Parquet file in it is not an error (Spark cannot infer the schema of nothing)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc is not None and "UNABLE_TO_INFER_SCHEMA" in str(exc)


def run_job(spark, plan: Plan, options: TagOptions, out: str, names: tuple[str, str], partitions: int) -> Counts:
    """Read, score and write every input into a staging folder beside `out`, then rename it into place."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    store = Store(spark, out)
    staging = _sibling(out, "spark")
    parsed = _read(spark, plan, options)
    spread = parsed.repartition(partitions, "_file", "_pos").sortWithinPartitions("_file", "_pos")
    scored = spread.mapInArrow(lambda b: score_parsed(b, names, options), _ddl(options))
    # The three outputs are written from one pass: kept on the executors' disks, never on the driver.
    scored = scored.persist(StorageLevel.DISK_ONLY)
    try:
        order = ["_file", "_pos", "_para"]
        columns = ["value"] if options.fmt == "jsonl" else list(options.columns)
        _write(scored.where(F.col("_kind") == "p").select(*columns), staging, options.fmt)
        summary = ["value"] if options.fmt == "jsonl" else summary_columns()
        _write(scored.where(F.col("_kind") == "s").select(*summary), f"{staging}/{SUMMARY_DIR}", options.fmt)
        errors = ["value"] if options.fmt == "jsonl" else list(ERROR_COLUMNS)
        messages = scored.where(F.col("_kind").isin("e", "w"))
        _write(messages.sortWithinPartitions(*order).select(*errors), f"{staging}/{ERRORS_DIR}", options.fmt)
        counts = _counts(scored)
        counts.inputs += len(plan.missing)
        counts.failed += len(plan.missing)
        shown = messages.orderBy(*order).select("_kind", "reason" if options.fmt != "jsonl" else "value")
        printed = shown.limit(MAX_MESSAGES).collect()
    finally:
        scored.unpersist()
    if options.fmt == "jsonl":
        for folder in (staging, f"{staging}/{SUMMARY_DIR}", f"{staging}/{ERRORS_DIR}"):
            _jsonl_names(store, folder)
    job = {"counts": {k: v for k, v in counts.__dict__.items() if k != "printed"}, "format": options.fmt}
    store.write(f"{staging}/{JOB_FILE}", (json.dumps(job, indent=2) + "\n").encode("utf-8"))
    _commit(store, staging, out)
    counts.printed = [(r[0], r[1] if options.fmt != "jsonl" else json.loads(r[1])["reason"]) for r in printed]
    return counts


def _ddl(options: TagOptions):
    """The Spark schema of the scored rows."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(out_schema(options))


def _write(frame, uri: str, fmt: str) -> None:
    """One folder of part files through Spark's output commit (each part is moved into place when the job commits)."""
    writer = frame.write.mode("errorifexists")
    writer.text(uri) if fmt == "jsonl" else writer.parquet(uri)


def _counts(scored) -> Counts:
    from pyspark.sql import functions as F

    counts = Counts()
    for row in scored.groupBy("_kind").agg(F.count("*"), F.sum("_n"), F.sum(F.col("_on").cast("long"))).collect():
        kind, n, paragraphs, on = row
        if kind == "s":
            counts.articles, counts.paragraphs, counts.on_topic = n, paragraphs or 0, on or 0
        elif kind == "e":
            counts.failed = n
        elif kind == "w":
            counts.warned = n
    counts.inputs = counts.articles + counts.failed
    return counts


def job_error(error: Exception) -> Exception:
    """One line for a failed Spark job: the model's or an output's own message when a task raised one."""
    from pipeline.model import ModelError

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
        partitions = max(2 * sc.defaultParallelism, min(10_000, plan.size // BYTES_PER_PARTITION + 1))
        try:
            return run_job(spark, plan, options, out, names, partitions)
        except OutputError:
            raise
        except Exception as e:  # py4j and pyspark errors carry the executor's traceback: one line instead
            raise job_error(e) from None


def report(counts: Counts, plan: Plan, output: str, seconds: float, quiet: bool) -> int:
    """Print the messages and closing lines like the local engine does; the exit code."""
    for path in plan.missing:
        print(f"error: {path}: no such file or folder", file=sys.stderr)
    for kind, message in counts.printed:
        label = {"e": "error", "w": "warning"}[kind]
        print(f"{label}: {message}", file=sys.stderr)
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
