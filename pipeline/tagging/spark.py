"""The Spark engine: the same records as the local engine, scored by Apache Spark in a pandas UDF.

The driver reads every input with the local engine's readers (same decoding, same messages
naming file and line) and streams the articles into a staging Parquet file. Spark reads it,
cuts and scores each article in a pandas UDF with the very functions the local workers use
(the model is broadcast once and loaded once per Python worker), and the driver takes the
results back in input order into the same writers, so both engines write the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd  # module level: pyspark reads the UDF's type hints in this module's namespace

from pipeline.tagging.inputs import parse_unit, units
from pipeline.tagging.outputs import encode
from pipeline.tagging.scoring import Scorer, TagOptions, UnitResult, tag_articles, unit_result
from pipeline.text import Article

STAGE_ROWS = 5000  # articles per staging row group and per batch handed back to the writers
# pyspark 4.3 warns on every pandas call that it does not fully support pandas 3; our UDF only
# passes strings through Arrow, which the test suite checks against the local engine.
PANDAS3_WARNING = "PySpark does not yet fully support pandas"
_EXECUTOR: dict = {}


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


def spark_session(master: str, log_dir: Path):
    """A Spark session for tagging (loopback only for local masters, this Python for the workers).

    The JVM's console goes to `log_dir`/spark.log (shown if Spark cannot start): Java prints a
    WARNING for the incubator module Spark's launcher always adds, which no log level silences.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{PANDAS3_WARNING}:FutureWarning")
    warnings.filterwarnings("ignore", message=PANDAS3_WARNING, category=FutureWarning)
    from pyspark.sql import SparkSession

    config = log_dir / "log4j2.properties"
    config.write_text(LOG4J2, encoding="utf-8")
    log = log_dir / "spark.log"
    java_options = f"-Dlog4j2.configurationFile={config.resolve().as_uri()}"
    builder = (
        SparkSession.builder.master(master)
        .appName("pipeline-tag")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "500")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", java_options)
    )
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "wb") as f:
            os.dup2(f.fileno(), 2)  # the JVM started now inherits this as its standard error
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


def _stage(sources: list, options: TagOptions, stdin, path: Path) -> Iterator[UnitResult]:
    """Read every input into a staging Parquet file (order, id, text, path, fields); yield the messages per unit."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("order", pa.int64()),
            ("id", pa.string()),
            ("text", pa.string()),
            ("path", pa.string()),
            ("fields", pa.string()),
        ]
    )
    order = 0
    with pq.ParquetWriter(path, schema) as writer:
        for unit in units(sources, options.paragraphs_mode, stdin, options.max_bytes):
            parsed = parse_unit(unit, options.paragraphs_mode, options.max_bytes)
            if parsed.articles:
                rows = {
                    "order": list(range(order, order + len(parsed.articles))),
                    "id": [a.id for a in parsed.articles],
                    "text": [a.text for a in parsed.articles],
                    "path": [a.path for a in parsed.articles],
                    "fields": [
                        json.dumps(a.extra, ensure_ascii=False, default=str) if a.extra else None
                        for a in parsed.articles
                    ],
                }
                writer.write_table(pa.Table.from_pydict(rows, schema=schema))
                order += len(parsed.articles)
            result = unit_result(unit, parsed)
            result.payload = encode([], options.fmt, list(options.columns))
            yield result


def _scorer(broadcast) -> Scorer:
    """The model of a broadcast, loaded (and accelerated) once per Python worker."""
    model = broadcast.value  # unpickled once per Python worker by pyspark
    if _EXECUTOR.get("model") is not model:
        from pipeline.tagging.fastvec import accelerate

        _EXECUTOR.update(model=model, scorer=Scorer(accelerate(model)))
    return _EXECUTOR["scorer"]


def tag_batch(broadcast, options: TagOptions, ids, texts, paths, fields) -> list[str]:
    """The pandas UDF's work for a batch of articles: per article, JSON of its records, summary and report section."""
    from pipeline.tagging.records import article_summary
    from pipeline.tagging.report import article_section

    articles = [
        Article(id=i, text=t, path=p, extra=json.loads(f) if f else {})
        for i, t, p, f in zip(ids, texts, paths, fields, strict=True)
    ]
    per_article = tag_articles(_scorer(broadcast), articles, options)
    rule = dict(options.rule)
    out = []
    for article, records in zip(articles, per_article, strict=True):
        summary = article_summary(article, records, rule)
        section = article_section(summary, records) if options.report else ""
        out.append(json.dumps({"records": records, "summary": summary, "report": section}, ensure_ascii=False))
    return out


def _code_zip(tmp: Path) -> str:
    """The pipeline package as a zip for the executors (needed on a cluster; harmless in local mode)."""
    package = Path(__file__).resolve().parents[1]
    target = tmp / "pipeline.zip"
    with zipfile.ZipFile(target, "w") as z:
        for f in package.rglob("*.py"):
            z.write(f, f.relative_to(package.parent))
    return str(target)


def run_spark(sources: list, options: TagOptions, master: str, stdin) -> Iterator[UnitResult]:
    """Tag every input with Spark; results in input order, in batches, for the same writers as the local engine."""
    from pipeline.tagging.scoring import load_any

    model, _ = load_any(options.model)  # on the driver: a missing or altered model fails before Spark starts
    tmp = Path(tempfile.mkdtemp(prefix="tag-spark-"))
    spark = None
    try:
        staged = tmp / "articles.parquet"
        yield from _stage(sources, options, stdin, staged)
        spark = spark_session(master, tmp)
        spark.sparkContext.addPyFile(_code_zip(tmp))
        yield from _score(spark, spark.sparkContext.broadcast(model), options, staged)
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _score(spark, broadcast, options: TagOptions, staged: Path) -> Iterator[UnitResult]:
    from pyspark.sql import functions as F

    @F.pandas_udf("string")
    def tag_udf(ids: pd.Series, texts: pd.Series, paths: pd.Series, fields: pd.Series) -> pd.Series:
        fields = fields.astype(object).where(fields.notna(), None)
        return pd.Series(tag_batch(broadcast, options, ids.tolist(), texts.tolist(), paths.tolist(), fields.tolist()))

    # The staging file is one split; spread its articles over every core (orderBy restores input order).
    frame = spark.read.parquet(str(staged)).repartition(spark.sparkContext.defaultParallelism * 4)
    scored = frame.select("order", tag_udf("id", "text", "path", "fields").alias("out")).orderBy("order")
    batch: list[dict] = []
    for row in scored.toLocalIterator(prefetchPartitions=True):
        batch.append(json.loads(row["out"]))
        if len(batch) >= STAGE_ROWS:
            yield _result(batch, options)
            batch = []
    if batch:
        yield _result(batch, options)


def _result(batch: list[dict], options: TagOptions) -> UnitResult:
    records = [r for item in batch for r in item["records"]]
    return UnitResult(
        payload=encode(records, options.fmt, list(options.columns)),
        summaries=[item["summary"] for item in batch],
        report=[item["report"] for item in batch] if options.report else [],
        n_paragraphs=len(records),
    )
