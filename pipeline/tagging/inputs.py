"""Inputs of `tag`: files, folders, JSONL and Parquet records and standard input, cut into units of work.

A unit is small and picklable: a file to read, or a chunk of JSONL lines or Parquet rows. The
main process only lists files and reads record files in chunks; workers decode, extract and
parse, so a bad file or line becomes a message naming it, never a crash. One article may be at
most `max_bytes` long (--max-article-mb): a longer file, record or JSON line is reported without
ever being held in memory whole.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import gzip
import hashlib
import io
import os
import re
import stat
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.text import _CONTROL_CHARS, _INVISIBLE_CHARS, Article, json_line, normalize

ARTICLE_KINDS = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".xhtml": "html"}
RECORD_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
STDIN = "-"
# Chunks of records sent to a worker at once: big enough to batch the model, small enough to spread the work.
CHUNK_BYTES = 1 << 20
CHUNK_RECORDS = 2000
MB = 1_000_000
# Default --max-article-mb: a 10 MB article takes a worker about 300 MB more; news articles are a few kB.
MAX_ARTICLE_MB = 10.0
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# A character that normalize() keeps: text without one has no paragraph to tag.
_VISIBLE = re.compile(f"[^\\s{_INVISIBLE_CHARS}{_CONTROL_CHARS}]")
_ASCII_LETTER = re.compile("[A-Za-z]")
# Punctuation of ordinary text, stripped from the ends of a word before it is judged.
_EDGE_PUNCTUATION = "\"'()[]{}<>.,;:!?-–—“”‘’«»…•·*/\\|%°€£$#@&+=_~"
# Legacy-font text read through a code page has a letter or sign foreign to Vietnamese in most words.
POOR_VIETNAMESE_SHARE = 0.4
# Not Vietnamese: under half of the letters Latin (another script), or under 5% of the Latin letters with a
# Vietnamese diacritic (English, French...). Vietnamese news has 28% (median; 19.6% at the 1st percentile of the
# 24,082 corpus articles, 5 of which are flagged: forum posts typed without diacritics). Judged from 40 letters.
MIN_LATIN_SHARE = 0.5
MIN_MARKED_SHARE = 0.05
MIN_LETTERS_TO_JUDGE = 40
# Files up to this size are read and tagged together, SMALL_FILES at a time: one model call per group
# instead of one per file (scikit-learn's input checks cost ~20 ms a call, more than a short article).
SMALL_FILE_BYTES = 256 * 1024
SMALL_FILES = 100
_BINARY_CONTROL = re.compile("[\x00-\x08\x0e-\x1f]")  # control characters other than white space
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class InputError(Exception):
    """An input that cannot be read, decoded or parsed; the message names the path (and line)."""


@dataclass
class Unit:
    """One piece of work: `kind` is text | html (a file, or `data` read from standard input), files, jsonl, rows or error.

    `files` is a group of small text and HTML files, `data` their (path, kind) pairs.
    """

    kind: str
    path: str
    data: object = None
    first: int = 1  # line (jsonl) or row (parquet) number of the first record


@dataclass(frozen=True)
class Oversized:
    """A JSON line longer than the limit, skipped unread: only its length is kept."""

    size: int


@dataclass
class Parsed:
    """What a unit holds: articles ready to cut into paragraphs (and where each is), messages for inputs that failed or look wrong."""

    articles: list[Article] = field(default_factory=list)
    wheres: list[str] = field(default_factory=list)  # "path", "path:line" or "path: row N" of each article
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_inputs: int = 0  # files and records tried, failed or not
    digest: str = ""  # a hash of what was read (unit_digest)

    def add(self, article: Article, where: str, encoding: str = "utf-8") -> None:
        """Keep one article, with a warning when its text reads like a legacy font encoding."""
        self.articles.append(article)
        self.wheres.append(where)
        if reads_poorly(article.text):
            self.warnings.append(
                f"{where}: reads poorly as Vietnamese (read as {encoding}, most words have letters or signs foreign "
                "to it): a legacy font encoding such as TCVN3 or VNI? Tagged as read; convert it to Unicode first"
            )
        elif why := not_vietnamese(article.text):
            self.warnings.append(
                f"{where}: does not read as Vietnamese ({why}: another language, or Vietnamese typed without "
                "diacritics); the model knows Vietnamese only: "
                "tagged, and flagged not_vietnamese in the summary"
            )


def kind_of(path: str) -> str:
    """The input kind of a path by its extension (a trailing .gz is looked through): text, html, jsonl or parquet."""
    name = path.lower().removesuffix(".gz")
    suffix = os.path.splitext(name)[1]
    return ARTICLE_KINDS.get(suffix) or RECORD_KINDS.get(suffix) or ""


def printable(text: str) -> str:
    """`text` safe to print on one line: control characters, line separators and undecodable bytes escaped."""

    def escape(m: re.Match) -> str:
        c = ord(m.group())
        return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return _UNPRINTABLE.sub(escape, str(text))


def _utf8_name(path: str) -> bool:
    """Whether a path (as the OS gave it, undecodable bytes as surrogates) is valid UTF-8 text."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def expand(paths: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str], list[str]]:
    """(path, kind) for every input, folders walked recursively in name order; missing paths, skipped files, notes.

    A file named on the command line with an unknown extension is read as text; inside a
    folder, only regular files with a known extension are taken (the others are listed as
    skipped); links to folders are not followed, and unreadable folders, FIFOs, devices and
    sockets are left out with a note each. A path that is not valid UTF-8 becomes an input that
    fails with a message (its records could not be written).
    """
    found, missing, skipped, notes = [], [], [], []

    def unreadable(e: OSError) -> None:
        notes.append(f"{printable(e.filename)}: folder cannot be read ({e.strerror}); skipped")

    for p in paths:
        if p == STDIN:
            found.append((STDIN, "stdin"))
        elif os.path.isdir(p):
            for root, dirs, files in os.walk(p, onerror=unreadable):
                linked = sorted(d for d in dirs if os.path.islink(os.path.join(root, d)))
                notes += [f"{printable(os.path.join(root, d))}: a link to a folder, not followed" for d in linked]
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in linked)
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if name.startswith("."):
                        continue
                    kind = kind_of(name)
                    if not kind:
                        skipped.append(full)
                    elif not _utf8_name(full):
                        found.append((printable(full), "badname"))
                    elif (why := _not_regular(full)) is not None:
                        notes.append(f"{printable(full)}: {why}; skipped")
                    else:
                        found.append((full, kind))
        elif not _utf8_name(p):
            found.append((printable(p), "badname"))
        elif os.path.exists(p):
            found.append((p, kind_of(p) or "text"))
        else:
            missing.append(p)
    return found, missing, skipped, notes


def _not_regular(path: str) -> str | None:
    """Why a file in a folder is not read (a FIFO would block the run, a device never end), or None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # a broken link: reading it gives the message
    if stat.S_ISREG(mode):
        return None
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file (a device?)"


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


@functools.cache
def _marked_letters() -> frozenset[str]:
    """The Vietnamese letters that carry a diacritic (a tone, a breve, a circumflex, a horn, or đ)."""
    return frozenset(c for c in _vietnamese_letters() if not c.isascii())


_TABLE_SIZE = 0x2000  # Latin, Vietnamese (up to U+1EFF) and the scripts before them: counted by table lookup


@functools.cache
def _letter_patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """Regexes of runs of letters, of Latin letters and of Vietnamese letters with a diacritic (counted by run length)."""
    marked = "".join(sorted(_marked_letters()))
    return re.compile(r"[^\W\d_]+"), re.compile("[A-Za-z\u00c0-\u024f\u1e00-\u1eff]+"), re.compile(f"[{marked}]+")


@functools.cache
def _letter_table():
    """(per code point below _TABLE_SIZE: 1 if a letter, + 2 if Latin, + 4 if a marked Vietnamese letter (the regexes'
    classes); the (8, 3) matrix that turns counts of those values into counts of the three classes)."""
    import numpy as np

    table = np.zeros(_TABLE_SIZE, dtype=np.uint8)
    for bit, pattern in zip((1, 2, 4), _letter_patterns(), strict=True):
        for cp in range(_TABLE_SIZE):
            if pattern.fullmatch(chr(cp)):
                table[cp] |= bit
    return table, np.array([[(v >> k) & 1 for k in range(3)] for v in range(8)], dtype=np.int64)


def letter_counts(sample: str) -> tuple[int, int, int]:
    """(letters, Latin letters, marked Vietnamese letters) of `sample`: the characters each of _letter_patterns matches.

    One numpy lookup per code point instead of three regex scans: this runs on every article tagged.
    """
    import numpy as np

    points = np.frombuffer(sample.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    table, bits = _letter_table()
    beyond = len(points) > 0 and points.max() >= _TABLE_SIZE  # usually not: four numpy calls in all
    inside = points[points < _TABLE_SIZE] if beyond else points
    letters, latin, marked = (int(v) for v in np.bincount(table[inside], minlength=8) @ bits)
    if beyond:  # other scripts: only the letter class reaches past the table
        high = points[points >= _TABLE_SIZE].tobytes().decode("utf-32-le", "surrogatepass")
        letters += sum(map(len, _letter_patterns()[0].findall(high)))
    return letters, latin, marked


@functools.lru_cache(maxsize=1024)  # asked twice per article: for the warning and for the summary's flag
def not_vietnamese(text: str) -> str:
    """Why `text` is not Vietnamese (another script, or Latin letters without Vietnamese diacritics), else ''.

    The rule: of the letters in the first 20,000 characters (NFC), fewer than MIN_LATIN_SHARE are
    Latin, or fewer than MIN_MARKED_SHARE of the Latin ones carry a Vietnamese diacritic. Texts
    with fewer than MIN_LETTERS_TO_JUDGE letters are not judged.
    """
    letters, latin, marked = letter_counts(unicodedata.normalize("NFC", text[:20000]))
    if letters < MIN_LETTERS_TO_JUDGE:
        return ""
    if latin < MIN_LATIN_SHARE * letters:
        return f"{latin / letters:.0%} of its letters are Latin"
    share = marked / latin
    if share < MIN_MARKED_SHARE:
        return f"{share:.1%} of its letters carry Vietnamese diacritics"
    return ""


@functools.cache
def _foreign_char() -> re.Pattern:
    """A character Vietnamese text (NFC or NFD) has no use for: a letter outside its alphabet, or an unusual sign."""
    known = "".join(sorted(_vietnamese_letters() | set(_EDGE_PUNCTUATION)))
    return re.compile(f"[^\\x00-\\x7f\\s\u0300-\u036f{re.escape(known)}]")


def reads_poorly(text: str) -> bool:
    """Whether most words with Latin letters hold a letter or sign foreign to Vietnamese: TCVN3 or VNI text read through a code page."""
    sample = text[:20000]
    foreign = _foreign_char()
    if foreign.search(sample) is None:  # the usual case, one regex scan
        return False
    words = [w.strip(_EDGE_PUNCTUATION) for w in sample.split() if _ASCII_LETTER.search(w)]
    odd = sum(1 for w in words if foreign.search(w))
    return len(words) >= 5 and odd >= POOR_VIETNAMESE_SHARE * len(words)


def has_text(text: str) -> bool:
    """Whether `text` has a paragraph to tag: a character other than white space, control or invisible ones."""
    return _VISIBLE.search(text) is not None


def _looks_binary(text: str) -> bool:
    """Control characters other than white space (NUL included) in more than 1% of the text: not a text file.

    A few stray control characters in real text are dropped by normalize(), so they do not reject the file.
    """
    sample = text[:20000]
    return len(_BINARY_CONTROL.findall(sample)) > len(sample) / 100


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
    utf8 = None
    with contextlib.suppress(UnicodeDecodeError):
        utf8 = data.decode("utf-8")
        # ASCII text in UTF-16 without a BOM is valid UTF-8 too, with a NUL in every other place.
        if not _looks_binary(utf8):
            return utf8, "utf-8"
    text = _utf16_without_bom(data)
    if text is not None and not _looks_binary(text):
        return text, "utf-16"
    candidates = []
    if declared:
        # A page may declare anything: `undefined` is a codec that always raises, `hex` is not a text encoding.
        with contextlib.suppress(LookupError, UnicodeError, ValueError):
            candidates.append((data.decode(declared), declared))
    if not candidates:
        from charset_normalizer import from_bytes  # slow import, only for files that are not UTF-8

        best = from_bytes(data).best()
        if best is not None:
            candidates.append((str(best), best.encoding))
        with contextlib.suppress(UnicodeDecodeError):
            candidates.append((data.decode("cp1258"), "cp1258"))
    candidates = [(t, e) for t, e in candidates if not _looks_binary(t)]
    if not candidates and utf8 is not None:
        raise InputError("cannot be decoded: control characters throughout the utf-8 text (a binary file?)")
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


def too_large(max_bytes: int, what: str = "is", size: int | None = None) -> str:
    """The message for an input over the size limit of one article (with its size when known)."""
    amount = f" {size / MB:,.1f} MB," if size is not None else ""
    return f"{what}{amount} over the {max_bytes / MB:g} MB limit for one article (--max-article-mb); not tagged"


def read_bytes(path: str, max_bytes: int = int(MAX_ARTICLE_MB * MB)) -> bytes:
    """A file's bytes, gunzipped if its name ends in .gz; InputError naming the problem, or the size over `max_bytes`."""
    try:
        with open(path, "rb") as f:
            if path.lower().endswith(".gz"):
                # Read one byte past the limit: enough to know, never the whole of a huge file.
                data = gzip.GzipFile(fileobj=f).read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise InputError(too_large(max_bytes, "once decompressed, is"))
                return data
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise InputError(too_large(max_bytes, size=size))
            return f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot be read ({getattr(e, 'strerror', None) or e})") from None


def decode_article(data: bytes, path: str, kind: str) -> tuple[Article, str]:
    """(article, encoding) from a text file or web page's bytes; its id and path are the file's path."""
    text, encoding = decode_bytes(data, declared_charset(data) if kind == "html" else None)
    extra = {}
    if kind == "html":
        text, title = html_article(text)
        if title:
            extra["title"] = normalize(title)
    if not has_text(text):
        raise InputError(
            "is empty" if not text else "has no text to tag, only white space and control or invisible characters"
        )
    return Article(id=path, text=text, path=path, extra=extra), encoding


def _json_kind(value) -> str:
    """What a JSON value is, in the words of JSON (for messages)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    kinds = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _record_id(rec: dict, where: str) -> str:
    """A record's id as text; InputError when it is missing, empty, or not a string or number."""
    rid = rec.get("id")
    if rid is None:
        raise InputError(f"{where}: record has no 'id'")
    if isinstance(rid, bool) or not isinstance(rid, str | int | float):
        raise InputError(f"{where}: record's 'id' must be a string or a number, not {_json_kind(rid)}")
    if isinstance(rid, str) and not rid.strip():
        raise InputError(f"{where}: record has an empty 'id'")
    return str(rid)


def record_article(
    rec, path: str, where: str, paragraphs_mode: bool, max_bytes: int = int(MAX_ARTICLE_MB * MB)
) -> Article:
    """An article (or, with --paragraphs, one paragraph) from a corpus-format record; other fields are carried through."""
    if not isinstance(rec, dict):
        raise InputError(f"{where}: a record must be a JSON object with 'id' and 'text', not {_json_kind(rec)}")
    rid = _record_id(rec, where)
    text = rec.get("text")
    if not isinstance(text, str):
        found = "no 'text'" if text is None else f"a 'text' that is {_json_kind(text)}, not a string"
        raise InputError(f"{where}: record {rid!r} has {found}")
    if len(text) > max_bytes:  # characters: a Parquet cell is in memory already, its UTF-8 size is not
        what = f"its text of {len(text):,} characters is"
        raise InputError(f"{where}: record {rid!r}: {too_large(max_bytes, what)}")
    if not has_text(text):
        kind = "paragraph" if paragraphs_mode else "record"
        raise InputError(f"{where}: {kind} {rid!r} has empty 'text'")
    extra = {k: v for k, v in rec.items() if k not in ("id", "text")}
    return Article(id=rid, text=text, path=path, extra=extra)


def _parse_line(line, where: str, max_bytes: int):
    """The JSON value of one line; InputError naming the line when it is too long, not UTF-8 or malformed."""
    if isinstance(line, Oversized):
        raise InputError(f"{where}: {too_large(max_bytes, 'a line of', line.size)}")
    try:
        return json_line(line)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def _file_data(path: str, kind: str, data, max_bytes: int) -> bytes | InputError:
    """The bytes of one text or HTML input (read now unless given), or the InputError that reading it gave."""
    if data is not None:
        return data
    try:
        return read_bytes(path, max_bytes)
    except InputError as e:
        return e


def _feed(h, path: str, data: bytes | InputError) -> None:
    """Add one file's path and bytes (or read error) to a content digest."""
    h.update(path.encode("utf-8", "backslashreplace") + b"\0")
    h.update(data if isinstance(data, bytes) else f"error: {data}".encode("utf-8", "backslashreplace"))
    h.update(b"\0")


def _feed_records(h, unit: Unit) -> None:
    """Add the lines or rows of a record unit (or an error unit's message) to a content digest."""
    if unit.kind == "jsonl":
        for line in unit.data:
            h.update(repr(line).encode() if isinstance(line, Oversized | str) else line)
            h.update(b"\n")
    else:
        h.update(repr(unit.data).encode("utf-8", "backslashreplace"))


def _files(unit: Unit) -> list[tuple[str, str]]:
    """The (path, kind) files of a text, html or files unit."""
    return list(unit.data) if unit.kind == "files" else [(unit.path, unit.kind)]


def unit_digest(unit: Unit, max_bytes: int = int(MAX_ARTICLE_MB * MB)) -> str:
    """A hash of everything a unit reads: `--resume` compares it with the interrupted run's (parse_unit computes the same)."""
    h = hashlib.blake2b(digest_size=16)
    if unit.kind in ("text", "html", "files"):
        data = unit.data if unit.kind != "files" else None
        for path, kind in _files(unit):
            _feed(h, path, _file_data(path, kind, data, max_bytes))
    else:
        _feed_records(h, unit)
    return h.hexdigest()


def _parse_file(out: Parsed, path: str, kind: str, data: bytes | InputError) -> None:
    """One text file or web page into `out`: its article, or the message saying why it failed."""
    out.n_inputs += 1
    try:
        if isinstance(data, InputError):
            raise data
        article, encoding = decode_article(data, path, kind)
        out.add(article, path, encoding)
    except InputError as e:
        out.errors.append(f"{path}: {e}")


def jsonl_records(unit: Unit, paragraphs_mode: bool, max_bytes: int) -> Iterator[tuple[str, Article | InputError]]:
    """Each record line of a jsonl unit (blank lines skipped): its place, and its article or the error that rejects it."""
    for i, line in enumerate(unit.data):
        if not isinstance(line, Oversized) and not line.strip():
            continue
        where = f"{unit.path}:{unit.first + i}"
        try:
            rec = _parse_line(line, where, max_bytes)
            yield where, record_article(rec, unit.path, where, paragraphs_mode, max_bytes)
        except InputError as e:
            yield where, e


def parse_unit(unit: Unit, paragraphs_mode: bool, max_bytes: int = int(MAX_ARTICLE_MB * MB)) -> Parsed:
    """Read and parse one unit (in a worker): its articles, one message per input that failed or looks wrong, its digest."""
    out = Parsed()
    h = hashlib.blake2b(digest_size=16)
    if unit.kind == "error":
        out.n_inputs = 1
        out.errors.append(str(unit.data))
    elif unit.kind in ("text", "html", "files"):
        data = unit.data if unit.kind != "files" else None
        for path, kind in _files(unit):
            read = _file_data(path, kind, data, max_bytes)
            _feed(h, path, read)
            _parse_file(out, path, kind, read)
        out.digest = h.hexdigest()
        return out
    elif unit.kind == "jsonl":
        for where, found in jsonl_records(unit, paragraphs_mode, max_bytes):
            out.n_inputs += 1
            if isinstance(found, InputError):
                out.errors.append(str(found))
            else:
                out.add(found, where)
    elif unit.kind == "rows":
        out.n_inputs = len(unit.data)
        for i, rec in enumerate(unit.data):
            where = f"{unit.path}: row {unit.first + i}"
            try:
                out.add(record_article(rec, unit.path, where, paragraphs_mode, max_bytes), where)
            except InputError as e:
                out.errors.append(str(e))
    _feed_records(h, unit)
    out.digest = h.hexdigest()
    return out


def bounded_lines(stream, max_len: int) -> Iterator:
    """The lines of a stream, none longer than `max_len`: a longer one is read through in pieces and becomes `Oversized`."""
    while True:
        line = stream.readline(max_len + 1)
        if not line:
            return
        newline = b"\n" if isinstance(line, bytes) else "\n"
        if len(line) <= max_len or line.endswith(newline):
            yield line
            continue
        size = len(line)
        while line and not line.endswith(newline):
            line = stream.readline(1 << 20)
            size += len(line)
        yield Oversized(size)


def _line_chunks(lines, path: str) -> Iterator[Unit]:
    """Group an iterable of lines into jsonl units of about CHUNK_BYTES."""
    chunk, size, first = [], 0, 1
    for lineno, line in enumerate(lines, 1):
        if not chunk:
            first = lineno
        chunk.append(line)
        size += 1 if isinstance(line, Oversized) else len(line)
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


def jsonl_units(path: str, stream=None, max_bytes: int = int(MAX_ARTICLE_MB * MB)) -> Iterator[Unit]:
    """Units of a .jsonl(.gz) file (or an open binary stream): chunks of lines; a read error ends the file with an error unit."""
    last, opened = 0, None
    try:
        if stream is None:
            opened = open(path, "rb")  # noqa: SIM115 - closed in finally, once the generator is done
            stream = gzip.GzipFile(fileobj=opened) if path.lower().endswith(".gz") else opened
        for unit in _line_chunks(bounded_lines(_open_lines(stream), max_bytes), path):
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


def stdin_units(stream, paragraphs_mode: bool, max_bytes: int = int(MAX_ARTICLE_MB * MB)) -> Iterator[Unit]:
    """Standard input: JSONL records when it starts with '{' (or with --paragraphs), else one article (a page if it starts with '<')."""
    head = stream.peek(64)[:64].lstrip(codecs.BOM_UTF8 + b" \t\r\n") if hasattr(stream, "peek") else b""
    if paragraphs_mode or head.startswith(b"{"):
        yield from jsonl_units(STDIN, stream, max_bytes)
        return
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        yield Unit("error", STDIN, f"{STDIN}: {too_large(max_bytes, 'standard input is')}")
        return
    yield Unit("html" if head.startswith(b"<") else "text", STDIN, data)


def units(
    sources: list[tuple[str, str]], paragraphs_mode: bool, stdin=None, max_bytes: int = int(MAX_ARTICLE_MB * MB)
) -> Iterator[Unit]:
    """Every unit of work for the inputs, in input order; runs of small text and HTML files are grouped (SMALL_FILES)."""
    group: list[tuple[str, str]] = []
    for path, kind in sources:
        if kind in ("text", "html") and not paragraphs_mode and _small(path):
            group.append((path, kind))
            if len(group) < SMALL_FILES:
                continue
        if group:
            yield Unit("files", group[0][0], group)
            group = []
        if kind in ("text", "html") and not paragraphs_mode and _small(path):
            continue  # the file that filled the group is in it
        if kind == "stdin":
            yield from stdin_units(stdin, paragraphs_mode, max_bytes)
        elif kind == "jsonl":
            yield from jsonl_units(path, max_bytes=max_bytes)
        elif kind == "parquet":
            yield from parquet_units(path)
        elif kind == "badname":
            yield Unit("error", path, f"{path}: the file name is not valid UTF-8 (shown escaped); rename it to tag it")
        elif paragraphs_mode:
            yield Unit("error", path, f"{path}: --paragraphs takes JSONL or Parquet records, not a {kind} file")
        else:
            yield Unit(kind, path)
    if group:
        yield Unit("files", group[0][0], group)


def whole_files(todo: Iterator[Unit]) -> Iterator[Unit]:
    """The chunks of each record file joined into one unit, so records of one article meet wherever they are in the file."""
    held = None
    for unit in todo:
        if held is not None and unit.kind == held.kind and unit.path == held.path:
            held = Unit(held.kind, held.path, held.data + unit.data, held.first)
            continue
        if held is not None:
            yield held
            held = None
        if unit.kind in ("jsonl", "rows"):
            held = unit
        else:
            yield unit
    if held is not None:
        yield held


def _small(path: str) -> bool:
    """Whether a file is small enough to be read and tagged with others (an unreadable one is too: it fails alone there)."""
    try:
        return os.stat(path).st_size <= SMALL_FILE_BYTES
    except OSError:
        return True
