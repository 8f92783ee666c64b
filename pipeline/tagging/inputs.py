"""Inputs of `tag`: files, folders, JSONL and Parquet records and standard input, cut into units of work.

A unit is small and picklable: a file to read, or a chunk of JSONL lines or Parquet rows. The
main process only lists files and reads record files in chunks; workers decode, extract and
parse, so a bad file or line becomes a message naming it, never a crash.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import gzip
import io
import json
import os
import re
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.text import Article, normalize

ARTICLE_KINDS = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".xhtml": "html"}
RECORD_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
STDIN = "-"
# Chunks of records sent to a worker at once: big enough to batch the model, small enough to spread the work.
CHUNK_BYTES = 1 << 20
CHUNK_RECORDS = 2000
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class InputError(Exception):
    """An input that cannot be read, decoded or parsed; the message names the path (and line)."""


@dataclass
class Unit:
    """One piece of work: `kind` is text | html (a file, or `data` read from standard input), jsonl, rows or error."""

    kind: str
    path: str
    data: object = None
    first: int = 1  # line (jsonl) or row (parquet) number of the first record


@dataclass
class Parsed:
    """What a unit holds: articles ready to cut into paragraphs, and messages for inputs that failed."""

    articles: list[Article] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    n_inputs: int = 0  # files and records tried, failed or not


def kind_of(path: str) -> str:
    """The input kind of a path by its extension (a trailing .gz is looked through): text, html, jsonl or parquet."""
    name = path.lower().removesuffix(".gz")
    suffix = os.path.splitext(name)[1]
    return ARTICLE_KINDS.get(suffix) or RECORD_KINDS.get(suffix) or ""


def expand(paths: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(path, kind) for every input, folders walked recursively in name order; also missing paths and skipped files.

    A file named on the command line with an unknown extension is read as text; inside a
    folder, only files with a known extension are taken (the others are listed as skipped).
    """
    found, missing, skipped = [], [], []
    for p in paths:
        if p == STDIN:
            found.append((STDIN, "stdin"))
        elif os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if name.startswith("."):
                        continue
                    kind = kind_of(name)
                    (found.append((full, kind)) if kind else skipped.append(full))
        elif os.path.exists(p):
            found.append((p, kind_of(p) or "text"))
        else:
            missing.append(p)
    return found, missing, skipped


@functools.cache
def _vietnamese_letters() -> frozenset[str]:
    """Every letter of the Vietnamese alphabet in NFC, lower and upper case, with and without a tone."""
    vowels = "aăâeêioôơuưy"
    tones = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
    letters = {unicodedata.normalize("NFC", v + t) for v in vowels for t in tones}
    letters |= set("bcdđfghjklmnpqrstvwxz")
    return frozenset(letters | {c.upper() for c in letters})


def vietnamese_score(text: str) -> float:
    """Share of the letters of `text` that belong to the Vietnamese alphabet: low for text decoded with the wrong code page."""
    letters = [c for c in unicodedata.normalize("NFC", text[:20000]) if c.isalpha()]
    if not letters:
        return 0.0
    known = _vietnamese_letters()
    return sum(c in known for c in letters) / len(letters)


def _looks_binary(text: str) -> bool:
    """Control characters other than white space in more than 1% of the text, or any NUL: not a text file."""
    sample = text[:20000]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\f\v")
    return "\x00" in sample or controls > len(sample) / 100


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text with no BOM: its ASCII characters put a NUL byte in every other position."""
    sample = data[:4000]
    if len(sample) < 4 or len(sample) % 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    encoding = (
        "utf-16-le" if odd > half * 0.3 and even == 0 else "utf-16-be" if even > half * 0.3 and odd == 0 else None
    )
    if encoding is None:
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _decode(data: bytes, declared: str | None) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as e:
                raise InputError(
                    f"starts with a {encoding} byte-order mark but is not {encoding} ({e.reason})"
                ) from None
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8"), "utf-8"
    text = _utf16_without_bom(data)
    if text is not None and not _looks_binary(text):
        return text, "utf-16"
    candidates = []
    if declared:
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            candidates.append((data.decode(declared), declared))
    if not candidates:
        from charset_normalizer import from_bytes  # slow import, only for files that are not UTF-8

        best = from_bytes(data).best()
        if best is not None:
            candidates.append((str(best), best.encoding))
        with contextlib.suppress(UnicodeDecodeError):
            candidates.append((data.decode("cp1258"), "cp1258"))
    candidates = [(t, e) for t, e in candidates if not _looks_binary(t)]
    if not candidates:
        raise InputError("cannot be decoded: not UTF-8, UTF-16 or Windows-1258 text (a binary file?)")
    # max() keeps the first of equals: charset-normalizer's guess unless Windows-1258 reads better.
    return max(candidates, key=lambda c: vietnamese_score(c[0]))


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode a file's bytes: (text, encoding). Raises InputError when no encoding gives text.

    Order: a BOM (UTF-8, UTF-16, UTF-32); strict UTF-8; UTF-16 without BOM; the charset an HTML
    page declares; then charset-normalizer's guess against Windows-1258, whichever reads as more
    Vietnamese (charset-normalizer often takes short Windows-1258 text for another code page).
    """
    text, encoding = _decode(data, declared)
    if _looks_binary(text):
        raise InputError(f"cannot be decoded: control characters throughout the {encoding} text (a binary file?)")
    return text, encoding


def declared_charset(html: bytes) -> str | None:
    """The charset a page declares in a <meta> tag near its start, if any."""
    m = _META_CHARSET.search(html[:4096])
    return m.group(1).decode("ascii").lower() if m else None


def html_article(html: str) -> tuple[str, str]:
    """(main text, title) of a web page: navigation, scripts and boilerplate dropped by trafilatura."""
    import trafilatura  # slow import, only when there are pages

    doc = trafilatura.bare_extraction(html, include_comments=False, with_metadata=True)
    if doc is None or not (doc.text or "").strip():
        doc = trafilatura.bare_extraction(html, include_comments=False, with_metadata=True, favor_recall=True)
    if doc is None or not (doc.text or "").strip():
        raise InputError("no article text found in the page")
    return doc.text, doc.title or ""


def read_bytes(path: str) -> bytes:
    """A file's bytes, gunzipped if its name ends in .gz; InputError naming the problem otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        return gzip.decompress(data) if path.lower().endswith(".gz") else data
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot be read ({getattr(e, 'strerror', None) or e})") from None


def article_from_bytes(data: bytes, path: str, kind: str) -> Article:
    """One article from a text file or web page's bytes; its id and path are the file's path."""
    text, encoding = decode_bytes(data, declared_charset(data) if kind == "html" else None)
    extra = {}
    if kind == "html":
        text, title = html_article(text)
        if title:
            extra["title"] = normalize(title)
    return Article(id=path, text=text, path=path, extra=extra)


def record_article(rec, path: str, where: str, paragraphs_mode: bool) -> Article:
    """An article (or, with --paragraphs, one paragraph) from a corpus-format record; other fields are carried through."""
    if not isinstance(rec, dict):
        raise InputError(f"{where}: a record must be a JSON object with 'id' and 'text'")
    if "id" not in rec or rec["id"] is None:
        raise InputError(f"{where}: record has no 'id'")
    text = rec.get("text")
    if not isinstance(text, str):
        raise InputError(f"{where}: record {rec['id']!r} has no string 'text'")
    if paragraphs_mode and not normalize(text):
        raise InputError(f"{where}: paragraph {rec['id']!r} has empty 'text'")
    extra = {k: v for k, v in rec.items() if k not in ("id", "text")}
    return Article(id=str(rec["id"]), text=text, path=path, extra=extra)


def parse_unit(unit: Unit, paragraphs_mode: bool) -> Parsed:
    """Read and parse one unit (in a worker): its articles, and one message per input that failed."""
    out = Parsed()
    if unit.kind == "error":
        out.n_inputs = 1
        out.errors.append(str(unit.data))
    elif unit.kind in ("text", "html"):
        out.n_inputs = 1
        try:
            data = unit.data if unit.data is not None else read_bytes(unit.path)
            out.articles.append(article_from_bytes(data, unit.path, unit.kind))
        except InputError as e:
            out.errors.append(f"{unit.path}: {e}")
    elif unit.kind == "jsonl":
        for i, line in enumerate(unit.data):
            where = f"{unit.path}:{unit.first + i}"
            if not line.strip():
                continue
            out.n_inputs += 1
            try:
                rec = json.loads(line)
            except UnicodeDecodeError:
                out.errors.append(f"{where}: not UTF-8 (JSON lines must be UTF-8)")
                continue
            except json.JSONDecodeError as e:
                out.errors.append(f"{where}: malformed JSON ({e.msg} at column {e.colno})")
                continue
            try:
                out.articles.append(record_article(rec, unit.path, where, paragraphs_mode))
            except InputError as e:
                out.errors.append(str(e))
    elif unit.kind == "rows":
        out.n_inputs = len(unit.data)
        for i, rec in enumerate(unit.data):
            try:
                out.articles.append(
                    record_article(rec, unit.path, f"{unit.path}: row {unit.first + i}", paragraphs_mode)
                )
            except InputError as e:
                out.errors.append(str(e))
    return out


def _line_chunks(lines, path: str) -> Iterator[Unit]:
    """Group an iterable of lines into jsonl units of about CHUNK_BYTES."""
    chunk, size, first = [], 0, 1
    for lineno, line in enumerate(lines, 1):
        if not chunk:
            first = lineno
        chunk.append(line)
        size += len(line)
        if size >= CHUNK_BYTES or len(chunk) >= CHUNK_RECORDS:
            yield Unit("jsonl", path, chunk, first)
            chunk, size = [], 0
    if chunk:
        yield Unit("jsonl", path, chunk, first)


def _open_lines(stream):
    """Lines of a JSONL stream: bytes (UTF-8, a leading UTF-8 BOM dropped), or text when a UTF-16/32 BOM says so."""
    head = stream.peek(4)[:4]
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            if encoding == "utf-8-sig":
                stream.read(len(bom))
                return stream
            return io.TextIOWrapper(stream, encoding=encoding)
    return stream


def jsonl_units(path: str, stream=None) -> Iterator[Unit]:
    """Units of a .jsonl(.gz) file (or an open binary stream): chunks of lines; a read error ends the file with an error unit."""
    last, opened = 0, None
    try:
        if stream is None:
            opened = open(path, "rb")  # noqa: SIM115 - closed in finally, once the generator is done
            stream = gzip.GzipFile(fileobj=opened) if path.lower().endswith(".gz") else opened
        for unit in _line_chunks(_open_lines(stream), path):
            last = unit.first + len(unit.data) - 1
            yield unit
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        after = f" after line {last}" if last else ""
        reason = getattr(e, "strerror", None) or e
        yield Unit("error", path, f"{path}: cannot be read{after} ({reason}); the rest of it is not tagged")
    finally:
        if opened is not None:
            opened.close()


def parquet_units(path: str) -> Iterator[Unit]:
    """Units of a Parquet file of records (`id`, `text`, other columns carried through), in row-group sized batches."""
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        if "text" not in f.schema_arrow.names or "id" not in f.schema_arrow.names:
            yield Unit("error", path, f"{path}: a Parquet input needs the columns 'id' and 'text'")
            return
        first = 1
        for batch in f.iter_batches(batch_size=CHUNK_RECORDS):
            rows = batch.to_pylist()
            yield Unit("rows", path, rows, first)
            first += len(rows)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) for a file that is not Parquet
        yield Unit("error", path, f"{path}: cannot be read as Parquet ({e})")


def stdin_units(stream, paragraphs_mode: bool) -> Iterator[Unit]:
    """Standard input: JSONL records when it starts with '{' (or with --paragraphs), else one article (a page if it starts with '<')."""
    head = stream.peek(64)[:64].lstrip(codecs.BOM_UTF8 + b" \t\r\n") if hasattr(stream, "peek") else b""
    if paragraphs_mode or head.startswith(b"{"):
        yield from jsonl_units(STDIN, stream)
        return
    data = stream.read()
    yield Unit("html" if head.startswith(b"<") else "text", STDIN, data)


def units(sources: list[tuple[str, str]], paragraphs_mode: bool, stdin=None) -> Iterator[Unit]:
    """Every unit of work for the inputs, in input order."""
    for path, kind in sources:
        if kind == "stdin":
            yield from stdin_units(stdin, paragraphs_mode)
        elif kind == "jsonl":
            yield from jsonl_units(path)
        elif kind == "parquet":
            yield from parquet_units(path)
        elif paragraphs_mode:
            yield Unit("error", path, f"{path}: --paragraphs takes JSONL or Parquet records, not a {kind} file")
        else:
            yield Unit(kind, path)
