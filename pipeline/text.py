"""Text: reading articles, decoding bytes, paragraphs and Vietnamese normalisation.

Training and tagging both go through these functions, so a paragraph is cut, cleaned and
hashed the same way everywhere. Labels refer to paragraphs by `paragraph_hash`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import CorpusError  # noqa: F401 - its home is pipeline.errors; imported from here too

CORPUS_FILES = ("trafficking", "related", "general")

# Zero-width and bidi marks carry no meaning in news text but split tokens apart.
_INVISIBLE_CHARS = "\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")
# C0/C1 control characters other than tab and newline.
_CONTROL_CHARS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_SPACES = re.compile(r"\s+")
_LINES = re.compile(r"\r\n|\r|\n")

# Two accepted spellings put the tone on a different vowel of "oa", "oe", "uy" in an open
# syllable (hoà / hòa, thuý / thúy). We keep the traditional one that most Vietnamese news uses.
_TONES = "\u0300\u0301\u0309\u0303\u0323"  # huyền, sắc, hỏi, ngã, nặng
# The syllable must end right after the tone: no letter and no further combining mark, so the
# tone of "hoặc" (a, dot below, breve) stays where it is.
_END = r"(?![\w\u0300-\u036f])"
_TONE_MOVE = re.compile(
    r"(?<![qQ])([oO])([aAeE])([" + _TONES + r"])" + _END + r"|(?<![qQ])([uU])([yY])([" + _TONES + r"])" + _END
)


# The same condition seen on NFC text, where a vowel and its marks are one character: "o" then a
# precomposed a/e carrying only a tone, or "u" then a toned y, at the end of a word. It matches
# whenever _TONE_MOVE would (and sometimes more); text with no match needs no NFD round trip.
_TONED_AE = "".join(unicodedata.normalize("NFC", b + t) for b in "aAeE" for t in _TONES)
_TONED_Y = "".join(unicodedata.normalize("NFC", b + t) for b in "yY" for t in _TONES)
# The look-behinds come after the first character so that the regex engine can skip ahead to an o or u.
_TONE_CANDIDATE = re.compile(
    r"[oOuU](?<![qQ][oOuU])(?:(?<=[oO])[" + _TONED_AE + r"](?!\w)"
    r"|(?<=[uU])[" + _TONED_Y + r"](?!\w))"
)
# Characters that the first or last step would change: invisible and control characters, and
# white space other than the plain space (every character for which str.isspace() is true).
_OTHER_SPACE_CHARS = "\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_ODD_CHAR = re.compile(f"[{_INVISIBLE_CHARS}{_CONTROL_CHARS}{_OTHER_SPACE_CHARS}]")


def _move_tone(m: re.Match) -> str:
    first, second, tone = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(4, 5, 6)
    return first + tone + second


def normalize(text: str) -> str:
    """Return `text` in NFC with one tone-mark spelling, no invisible or control characters and single spaces.

    Accents are never stripped. Idempotent: normalize(normalize(x)) == normalize(x).
    """
    # Each step runs only when a cheap test finds something it would change: most text is
    # already NFC with settled tones and single spaces, and the model normalises paragraphs that
    # paragraphs() has normalised already. The result is that of running every step.
    odd = _ODD_CHAR.search(text) is not None
    if odd:
        text = _CONTROL.sub(" ", _INVISIBLE.sub("", text))
    if not unicodedata.is_normalized("NFC", text) or _TONE_CANDIDATE.search(text):
        # Tone placement is fixed on the decomposed form, where the tone is a separate mark.
        text = unicodedata.normalize("NFD", text)
        text = _TONE_MOVE.sub(_move_tone, text)
        text = unicodedata.normalize("NFC", text)
    if odd or "  " in text or text[:1] == " " or text[-1:] == " ":
        text = _SPACES.sub(" ", text).strip()
    return text


def paragraph_hash(paragraph: str) -> str:
    """Short, stable hash of a normalised paragraph: the key that ties a label to its text."""
    return hashlib.sha256(normalize(paragraph).encode("utf-8")).hexdigest()[:16]


_SENTENCE_END = re.compile(r"[.!?…]+[\"”’'»)\]]*\s+")


def split_sentences(line: str, min_chars: int = 40) -> list[str]:
    """Split a long line at sentence ends; pieces shorter than `min_chars` join the next one.

    A sentence end is terminal punctuation, optional closing quotes, white space, then an
    upper-case letter, a digit or an opening quote. Short pieces ("I. Quan hệ.", "St.") are
    merged so that abbreviations do not leave fragments behind.
    """
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(line):
        nxt = line[m.end() : m.end() + 1]
        if nxt and (nxt.isupper() or nxt.isdigit() or nxt in "\"“‘'«(["):
            pieces.append(line[start : m.end()].strip())
            start = m.end()
    pieces.append(line[start:].strip())
    out: list[str] = []
    carry = ""
    for piece in pieces:
        carry = f"{carry} {piece}".strip() if carry else piece
        if len(carry) >= min_chars:
            out.append(carry)
            carry = ""
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return [p for p in out if p]


def _hard_wrap(piece: str, hard_max: int) -> list[str]:
    """Cut a piece with no sentence end into chunks of at most `hard_max` characters at spaces."""
    # Indexes, not re-slicing the rest of the line each time: a 50 MB line stays linear.
    out, start, n = [], 0, len(piece)
    while n - start > hard_max:
        cut = piece.rfind(" ", start, start + hard_max)
        cut = cut if cut > start else start + hard_max
        out.append(piece[start:cut].strip())
        start = cut
        while start < n and piece[start].isspace():
            start += 1
    if start < n:
        out.append(piece[start:].strip())
    return out


def paragraphs(text: str, max_chars: int = 1000, hard_max: int = 5000) -> list[str]:
    """Cut an article into normalised paragraphs: its non-empty lines, long lines split into sentences.

    Lines longer than `max_chars` (the one-line bodies of the `baomoi` source, or a scraped page
    with no line breaks) are split at sentence ends; anything still longer than `hard_max` is cut at
    spaces, so one paragraph never grows without bound.
    """
    out: list[str] = []
    for raw in _LINES.split(text):
        line = normalize(raw)
        if not line:
            continue
        pieces = split_sentences(line) if len(line) > max_chars else [line]
        for piece in pieces:
            out.extend(_hard_wrap(piece, hard_max) if len(piece) > hard_max else [piece])
    return out


@dataclass
class Article:
    """One article: its id, where it came from, and its raw text."""

    id: str
    text: str
    source: str = ""
    title: str = ""
    path: str = ""
    extra: dict = field(default_factory=dict)


def json_line(line: str | bytes):
    """The JSON value of one line; ValueError whose text is the reason, for a message that names the file and line."""
    try:
        # Without its line break, a line cut short reads as an unterminated string, not a control character.
        return json.loads(line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 (JSON lines must be UTF-8)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
    except ValueError as e:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise ValueError(f"malformed JSON ({e})") from None
    except RecursionError:  # [[[[...]]]] nested deeper than Python's stack
        raise ValueError("malformed JSON (nested too deeply)") from None


def read_jsonl(path: Path, need_text: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) from a .jsonl or .jsonl.gz file; a bad line raises CorpusError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json_line(line)
                except ValueError as e:
                    raise CorpusError(f"{path}:{lineno}: {e}") from None
                if not isinstance(rec, dict) or "id" not in rec or (need_text and not isinstance(rec.get("text"), str)):
                    raise CorpusError(f"{path}:{lineno}: a record needs a string 'text' and an 'id'")
                yield lineno, rec
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: cannot be read ({e})") from None


def corpus_path(corpus_dir: str | Path) -> Path:
    """Return the corpus folder, or raise CorpusError naming the path if it is missing."""
    path = Path(corpus_dir).expanduser()
    if not (path / f"{CORPUS_FILES[0]}.jsonl.gz").is_file():
        raise CorpusError(
            f"corpus not found at {path.resolve()}: expected {CORPUS_FILES[0]}.jsonl.gz there "
            "(set corpus.dir in configs/params.yaml)"
        )
    return path


def read_corpus(corpus_dir: str | Path, files: tuple[str, ...] = (*CORPUS_FILES, "seeds")) -> Iterator[Article]:
    """Yield the articles of the named corpus files (`seeds` is the folder of raw .txt articles)."""
    root = corpus_path(corpus_dir)
    for name in files:
        if name == "seeds":
            for p in sorted((root / "seeds").glob("*.txt")):
                text = p.read_text(encoding="utf-8")
                title = next((normalize(line) for line in _LINES.split(text) if line.strip()), "")
                yield Article(id=f"seeds/{p.stem}", text=text, source="seeds", title=title, path=str(p))
            continue
        path = root / f"{name}.jsonl.gz"
        if not path.is_file():
            raise CorpusError(f"corpus file missing: {path.resolve()}")
        for _, rec in read_jsonl(path):
            yield Article(
                id=str(rec["id"]),
                text=rec["text"],
                source=rec.get("source") or name,
                title=rec.get("title") or "",
                path=name,
            )


_TOKEN = re.compile(r"\w+")


def syllables(text: str) -> list[str]:
    """Lower-cased syllables (words of letters and digits), one-letter words such as "ở" kept."""
    return _TOKEN.findall(text.lower())
