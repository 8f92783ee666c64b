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
import math
import os
import shutil
import stat
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring as _quote
from pathlib import Path

from pipeline.config import LABELS
from pipeline.files import OutputError, Staged, atomic_open, discard_on_error  # noqa: F401 - OutputError is this module's error too
from pipeline.tagging.inputs import printable
from pipeline.tagging.records import UNCERTAIN


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
        "not_vietnamese",
        "fields",
    ]


def _finite(value):
    """`value` with NaN and infinities (which JSON has no words for) as None, inside lists and objects too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value) -> str:
    """Valid JSON text for a record: NaN and infinities in carried fields are written as null, not `NaN`."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), ensure_ascii=False, default=str)


def _json_or_none(value) -> str | None:
    return dumps(value) if value else None


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
        "not_vietnamese": pa.bool_(),
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
    """`dumps(rec)`, written out directly for the usual paragraph record (a third of the time)."""
    if tuple(rec) not in _PLAIN_KEYS or tuple(rec["probabilities"]) != LABELS:
        return dumps(rec)
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


def remove_stale_temps(path: str | Path) -> None:
    """Remove the temporary files a killed run left beside an output (only called while the run's lock is held)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """`name` with the glob characters * ? [ taken literally."""
    import glob

    return glob.escape(name)


def identity(path) -> tuple | None:
    """(device, inode) of a file, None when there is none."""
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_unsafe(outputs: list[tuple[str, str | None]], inputs: list[str]) -> None:
    """OutputError before any work when an output is an input, a link, a FIFO or device, or another output's file.

    `outputs` are (option, path) pairs such as ("-o", "tags.jsonl"). An existing output is only
    ever replaced by a new regular file, so a link, FIFO or device would be lost, not written to.
    """
    read = {identity(p) for p in inputs} - {None}
    seen: dict[str, str] = {}
    for option, path in outputs:
        if not path:
            continue
        shown = printable(path)
        if os.path.islink(path):
            raise OutputError(f"{shown} ({option}): is a symbolic link; name the file itself")
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as e:
            raise OutputError(f"{shown} ({option}): cannot be written ({e.strerror or e})") from None
        if mode is not None and stat.S_ISDIR(mode):
            raise OutputError(f"{shown} ({option}): is a folder, not a file")
        if mode is not None and not stat.S_ISREG(mode):
            raise OutputError(f"{shown} ({option}): is not a regular file (a device, FIFO or socket); name a file")
        if mode is not None and identity(path) in read:
            raise OutputError(f"{shown} ({option}): is also an input; the run would overwrite what it reads")
        real = os.path.realpath(path)
        if real in seen:
            raise OutputError(f"{shown}: given to both {seen[real]} and {option}; name a file for each")
        seen[real] = option


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
        try:
            self._f.write(data)
        except OSError as e:  # a full disk
            raise OutputError(f"{self.path}: cannot be written ({e.strerror or e})") from None

    def size(self) -> int:
        """Bytes written so far, all of them handed to the system (so a checkpoint never counts bytes still in memory)."""
        try:
            self._f.flush()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot be written ({e.strerror or e})") from None
        return self._f.tell()

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        try:
            self._f.close()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot be written ({e.strerror or e})") from None


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

    def stage(self, dest: str | Path) -> Staged:
        """Close the part and build the output for `dest`, not yet in place (same bytes whether the run was resumed or not)."""
        self.close()
        return stage(self.file.path, Path(dest), self.fmt, self.columns)


def stage(part: Path, dest: Path, fmt: str, columns: list[str]) -> Staged:
    """The output file for `dest` from its part, built beside `dest`: linked when plain JSONL or CSV, else gzipped or Parquet.

    The part stays, so a run killed before every output is in place is resumed from its parts.
    """
    staged = Staged(dest)
    with discard_on_error(staged) as f:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            writer = pq.ParquetWriter(f, arrow_schema(columns))
            for table in _part_tables(part):
                writer.write_table(table)
            writer.close()
        elif dest.name.lower().endswith(".gz"):
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz, open(part, "rb") as src:
                shutil.copyfileobj(src, gz, 1 << 20)
        elif not staged.link_from(part):  # another file system (--summary elsewhere): a copy, into a new file
            with open(part, "rb") as src:
                shutil.copyfileobj(src, staged.file, 1 << 20)
    return staged


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
            f.write((dumps(rec) + "\n").encode("utf-8"))
            n += 1
    return n
