"""Outputs of `tag`: paragraph and article records as JSON lines, CSV or Parquet, always written atomically.

JSON lines keep the nested record (`probabilities` as an object); CSV and Parquet get one flat
row with a `p_LABEL` column per label and the carried-through `fields` (and `terms`) as JSON text.
Workers encode their own rows (`encode`), so the main process only appends bytes or tables.

A file output is built in a part file (`PartWriter`, in the run's work folder, see checkpoint.py)
and put in place by `assemble` once every input is done: renamed when it is plain JSONL or CSV,
else compressed or converted to Parquet into a temporary file that is then renamed. Standard
output is written as the records come (`RecordWriter`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring as _quote
from pathlib import Path

from pipeline.config import LABELS
from pipeline.tagging.records import UNCERTAIN

FORMATS = ("jsonl", "csv", "parquet")


class OutputError(Exception):
    """An output that cannot be written; the message names the path."""


def output_format(path: str | None, fmt: str | None) -> str:
    """The format named by --format, else by the output's extension (.jsonl, .csv, .parquet, optionally .gz); JSONL by default."""
    if fmt:
        return fmt
    name = (path or "").lower().removesuffix(".gz")
    for ext, found in ((".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(ext):
            return found
    return "jsonl"


def paragraph_columns(with_text: bool, explain: bool) -> list[str]:
    """Flat columns of a paragraph row, in order."""
    cols = ["article_id", "source_path", "paragraph"] + (["text"] if with_text else [])
    cols += ["label", "predicted", "probability"] + [f"p_{lab}" for lab in LABELS] + ["on_topic"]
    return cols + (["terms"] if explain else []) + ["fields"]


def summary_columns() -> list[str]:
    """Flat columns of an article summary row, in order."""
    counts = [f"n_{lab}" for lab in (*LABELS, UNCERTAIN)]
    return [
        "article_id",
        "source_path",
        "paragraphs",
        *counts,
        "on_topic_paragraphs",
        "on_topic_share",
        "on_topic",
        "fields",
    ]


def _json_or_none(value) -> str | None:
    return json.dumps(value, ensure_ascii=False, default=str) if value else None


def flat_row(rec: dict) -> dict:
    """A paragraph or summary record as one flat row: nested values spread into columns or JSON text."""
    row = {k: v for k, v in rec.items() if k not in ("probabilities", "counts", "fields", "terms")}
    for lab, p in rec.get("probabilities", {}).items():
        row[f"p_{lab}"] = p
    for lab, n in rec.get("counts", {}).items():
        row[f"n_{lab}"] = n
    if "terms" in rec:
        row["terms"] = json.dumps(rec["terms"], ensure_ascii=False)
    row["fields"] = _json_or_none(rec.get("fields"))
    return row


def arrow_schema(columns: list[str]):
    """The Parquet schema of paragraph or summary rows (the Spark engine writes the same types)."""
    import pyarrow as pa

    types = {
        "paragraph": pa.int64(),
        "paragraphs": pa.int64(),
        "on_topic_paragraphs": pa.int64(),
        "on_topic": pa.bool_(),
        "probability": pa.float64(),
        "on_topic_share": pa.float64(),
    }
    fields = []
    for c in columns:
        t = types.get(c) or (pa.float64() if c.startswith("p_") else pa.int64() if c.startswith("n_") else pa.string())
        fields.append(pa.field(c, t))
    return pa.schema(fields)


_PLAIN_KEYS = (
    (
        "article_id",
        "source_path",
        "paragraph",
        "text",
        "label",
        "predicted",
        "probability",
        "probabilities",
        "on_topic",
    ),
    ("article_id", "source_path", "paragraph", "label", "predicted", "probability", "probabilities", "on_topic"),
)


def json_line(rec: dict) -> str:
    """`json.dumps(rec, ensure_ascii=False)`, written out directly for the usual paragraph record (a third of the time)."""
    if tuple(rec) not in _PLAIN_KEYS or tuple(rec["probabilities"]) != LABELS:
        return json.dumps(rec, ensure_ascii=False, default=str)
    probs = ", ".join(f'"{lab}": {p!r}' for lab, p in rec["probabilities"].items())
    text = f'"text": {_quote(rec["text"])}, ' if "text" in rec else ""
    return (
        f'{{"article_id": {_quote(rec["article_id"])}, "source_path": {_quote(rec["source_path"])}, '
        f'"paragraph": {rec["paragraph"]!r}, {text}"label": {_quote(rec["label"])}, '
        f'"predicted": {_quote(rec["predicted"])}, "probability": {rec["probability"]!r}, '
        f'"probabilities": {{{probs}}}, "on_topic": {"true" if rec["on_topic"] else "false"}}}'
    )


def encode(records: list[dict], fmt: str, columns: list[str]):
    """Records encoded for the output: UTF-8 JSON lines or CSV rows (bytes), or columns (dict of lists) for Parquet."""
    if fmt == "jsonl":
        return "".join(json_line(r) + "\n" for r in records).encode("utf-8")
    rows = [flat_row(r) for r in records]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
        writer.writerows(rows)
        return buf.getvalue().encode("utf-8")
    return {c: [r.get(c) for r in rows] for c in columns}


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator:
    """A binary file that appears at `path` only when the block ends without an exception (temp file + os.replace)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # mkstemp makes the file private (0600); the output gets the permissions a plain open() would give.
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
    except OSError as e:
        raise OutputError(f"{path}: cannot be written ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_writable(path: str | Path) -> None:
    """Raise OutputError now, before any work, when a file cannot be created at `path` (an existing one is left alone)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{path}: cannot be written ({e.strerror or e})") from None


class PartFile:
    """A binary file that chunks are appended to; on resume it is cut back to the size its checkpoint recorded."""

    def __init__(self, path: Path, size: int | None = None):
        self.path = path
        try:
            if size is None:
                self._f = open(path, "wb")  # noqa: SIM115 - closed by close(), at the end of the run
                return
            self._f = open(path, "r+b")  # noqa: SIM115
            found = os.fstat(self._f.fileno()).st_size
        except OSError as e:
            raise OutputError(f"{path}: cannot be written ({e.strerror or e})") from None
        if found < size:
            self._f.close()
            raise OutputError(f"{path}: shorter ({found} bytes) than its checkpoint says ({size}): damaged")
        self._f.truncate(size)  # what was written after the last recorded unit is done again
        self._f.seek(size)

    def write(self, data: bytes) -> None:
        """Append bytes."""
        self._f.write(data)

    def size(self) -> int:
        """Bytes written so far, all of them handed to the system (so a checkpoint never counts bytes still in memory)."""
        self._f.flush()
        return self._f.tell()

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        self._f.close()


def _table_bytes(chunk: dict, schema) -> bytes:
    """One Parquet chunk as an Arrow IPC stream, length-prefixed so that the part file can be read back chunk by chunk."""
    import pyarrow as pa

    table = pa.Table.from_pydict(chunk, schema=schema)
    if not table.num_rows:
        return b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    return struct.pack("<Q", len(data)) + data


def _part_tables(path: Path) -> Iterator:
    """The tables of a Parquet part file, in the order they were appended."""
    import pyarrow as pa

    with open(path, "rb") as f:
        while head := f.read(8):
            (n,) = struct.unpack("<Q", head)
            yield pa.ipc.open_stream(f.read(n)).read_all()


class PartWriter:
    """Appends encoded chunks (see `encode`) to a part file; `assemble` turns it into the output file."""

    def __init__(self, path: Path, fmt: str, columns: list[str], size: int | None = None):
        self.fmt, self.columns = fmt, columns
        self.file = PartFile(path, size)
        self._schema = arrow_schema(columns) if fmt == "parquet" else None
        if size is None and fmt == "csv":
            self.file.write((",".join(columns) + "\n").encode("utf-8"))

    def write(self, chunk) -> None:
        """Append one encoded chunk."""
        self.file.write(_table_bytes(chunk, self._schema) if self.fmt == "parquet" else chunk)

    def size(self) -> int:
        """Bytes in the part file so far."""
        return self.file.size()

    def close(self) -> None:
        """Close the part file (it stays on disk)."""
        self.file.close()

    def assemble(self, dest: str | Path) -> None:
        """Close the part and put the output at `dest` atomically (same bytes whether the run was resumed or not)."""
        self.close()
        assemble(self.file.path, Path(dest), self.fmt, self.columns)


def assemble(part: Path, dest: Path, fmt: str, columns: list[str]) -> None:
    """The output file at `dest` from its part: renamed when plain JSONL or CSV, else gzipped or written as Parquet."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with atomic_open(dest) as f:
            writer = pq.ParquetWriter(f, arrow_schema(columns))
            for table in _part_tables(part):
                writer.write_table(table)
            writer.close()
    elif dest.name.lower().endswith(".gz"):
        with atomic_open(dest) as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, open(part, "rb") as src:
            shutil.copyfileobj(src, gz, 1 << 20)
    else:
        try:
            os.replace(part, dest)  # the part sits beside the output: a rename, no copy
        except OSError:  # another file system (--summary elsewhere): copy, atomically
            with atomic_open(dest) as f, open(part, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
        return
    part.unlink()


class RecordWriter:
    """Streams encoded chunks into one output (a file written atomically, or standard output for JSONL/CSV)."""

    def __init__(self, path: str | None, fmt: str, columns: list[str]):
        if fmt == "parquet" and not path:
            raise OutputError("Parquet output needs a file: give -o FILE.parquet")
        self.path, self.fmt, self.columns = path, fmt, columns
        self._stack = contextlib.ExitStack()
        self._parquet = None

    def __enter__(self):
        if self.path:
            raw = self._stack.enter_context(atomic_open(self.path))
            gz = self.path.lower().endswith(".gz") and self.fmt != "parquet"
            self._file = self._stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)) if gz else raw
        else:
            self._file = sys.stdout.buffer
        if self.fmt == "csv":
            self._file.write((",".join(self.columns) + "\n").encode("utf-8"))
        elif self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetWriter(self._file, arrow_schema(self.columns))
        return self

    def write(self, chunk) -> None:
        """Append one encoded chunk (see `encode`)."""
        if self.fmt == "parquet":
            import pyarrow as pa

            table = pa.Table.from_pydict(chunk, schema=self._parquet.schema)
            if table.num_rows:
                self._parquet.write_table(table)
        else:
            self._file.write(chunk)
            if not self.path:
                self._file.flush()

    def write_records(self, records: Iterable[dict]) -> None:
        """Encode and append records (for callers that hold records, not encoded chunks)."""
        self.write(encode(list(records), self.fmt, self.columns))

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._parquet is not None and exc_type is None:
                self._parquet.close()
        finally:
            self._stack.__exit__(exc_type, exc, tb)
        return False


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Write records as JSON lines atomically: readers never see a half-written file."""
    n = 0
    with atomic_open(path) as f:
        for rec in records:
            f.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
    return n
