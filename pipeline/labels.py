"""Labels: references to corpus paragraphs (article id, index, hash), validated against the corpus.

A label file is a CSV under `data/labels/` with the columns in `COLUMNS`. `method` is `manual` for
a label a person decided by reading the paragraph, or `rule:NAME` for a candidate mined by a rule.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import LABELS
from pipeline.errors import LabelError  # noqa: F401 - its home is pipeline.errors; imported from here too
from pipeline.text import Article, paragraph_hash, paragraphs

COLUMNS = ("article_id", "paragraph", "hash", "label", "method", "annotator")
_HASH = re.compile(r"^[0-9a-f]{16}$")
# A cell starting with one of these is a formula to Excel and LibreOffice (tab and CR start one too).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Label:
    article_id: str
    paragraph: int
    hash: str
    label: str
    method: str = "manual"
    annotator: str = ""
    where: str = ""  # "file:row", for messages

    @property
    def key(self) -> tuple[str, int]:
        return (self.article_id, self.paragraph)


def parse_rows(rows: Iterable[dict], where: str, first_row: int = 2) -> tuple[list[Label], list[str]]:
    """Check the form of raw label rows; return the valid labels and one message per bad row."""
    labels, problems = [], []
    for n, row in enumerate(rows, first_row):
        at = f"{where}:{n}"
        missing = [c for c in ("article_id", "paragraph", "hash", "label") if not (row.get(c) or "").strip()]
        if missing:
            problems.append(f"{at}: missing {', '.join(missing)}")
            continue
        try:
            idx = int(row["paragraph"])
            if idx < 0:
                raise ValueError
        except ValueError:
            problems.append(f"{at}: paragraph must be a whole number >= 0, got {row['paragraph']!r}")
            continue
        label = row["label"].strip()
        if label not in LABELS:
            problems.append(f"{at}: unknown label {label!r} (expected one of {', '.join(LABELS)})")
            continue
        h = row["hash"].strip()
        if not _HASH.match(h):
            problems.append(f"{at}: hash must be 16 hex digits, got {h!r}")
            continue
        method = (row.get("method") or "manual").strip()
        if method != "manual" and not method.startswith("rule:"):
            problems.append(f"{at}: method must be 'manual' or 'rule:NAME', got {method!r}")
            continue
        labels.append(Label(row["article_id"].strip(), idx, h, label, method, (row.get("annotator") or "").strip(), at))
    return labels, problems


def read_label_file(path: Path) -> tuple[list[Label], list[str]]:
    """Read one label CSV; return its labels and the problems found (file and row named)."""
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts the file with a BOM, which would hide the first column's name.
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            absent = [c for c in COLUMNS[:4] if c not in (reader.fieldnames or [])]
            if absent:
                return [], [f"{path}:1: header lacks column(s) {', '.join(absent)}"]
            return parse_rows(reader, str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return [], [f"{path}: cannot be read ({e})"]


def merge(labels: Iterable[Label], into: dict | None = None) -> tuple[dict, int, list[tuple[Label, Label]]]:
    """Labels by paragraph, the first row kept: (labels by key, how many were new, (row, earlier row) pairs that disagree).

    The one merge of the label set: a repeat is a no-op; a row whose label or hash differs is a conflict.
    """
    by_key = dict(into or {})
    added, clashes = 0, []
    for lab in labels:
        seen = by_key.setdefault(lab.key, lab)
        if seen is lab:
            added += 1
        elif seen.label != lab.label or seen.hash != lab.hash:
            clashes.append((lab, seen))
    return by_key, added, clashes


def find_conflicts(labels: Iterable[Label]) -> tuple[list[Label], list[str]]:
    """Merge repeated references; two rows for one paragraph with different labels are a conflict."""
    by_key, _, clashes = merge(labels)
    problems = [
        f"{lab.where}: {lab.article_id} paragraph {lab.paragraph} is labeled {lab.label!r} but {seen.where} says {seen.label!r}"
        for lab, seen in clashes
    ]
    return list(by_key.values()), problems


def stale(lab: Label, articles: dict[str, list[str]]) -> str | None:
    """Why `lab` does not point at an existing paragraph with its recorded hash, or None when it does."""
    paras = articles.get(lab.article_id)
    if paras is None:
        return f"{lab.where}: article {lab.article_id!r} is not in the corpus"
    if lab.paragraph >= len(paras):
        return f"{lab.where}: {lab.article_id} has {len(paras)} paragraphs, no index {lab.paragraph}"
    if paragraph_hash(paras[lab.paragraph]) != lab.hash:
        return (
            f"{lab.where}: hash {lab.hash} no longer matches {lab.article_id} paragraph {lab.paragraph} "
            "(the corpus or the paragraph segmentation changed)"
        )
    return None


def check_against_corpus(labels: Iterable[Label], articles: dict[str, list[str]]) -> list[str]:
    """Each label must point at an existing paragraph whose text still has the recorded hash."""
    return [msg for lab in labels if (msg := stale(lab, articles))]


def raise_if(problems: list[str], what: str, limit: int = 20) -> None:
    """Raise LabelError listing the first `limit` problems, if there are any."""
    if problems:
        shown = "\n  ".join(problems[:limit])
        more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
        raise LabelError(f"{len(problems)} problem(s) in {what}:\n  {shown}{more}")


def load_labels(files: list[Path], articles: dict[str, list[str]]) -> list[Label]:
    """Read, merge and validate label files against the corpus paragraphs; any problem raises LabelError."""
    if not files:
        raise LabelError("no label files found")
    labels, problems = [], []
    for path in files:
        rows, bad = read_label_file(path)
        labels += rows
        problems += bad
    merged, conflicts = find_conflicts(labels)
    problems += conflicts
    problems += check_against_corpus(merged, articles)
    raise_if(problems, ", ".join(str(f) for f in files))
    return merged


def article_paragraphs(articles: Iterable[Article], wanted: set[str] | None, max_chars: int) -> dict[str, list[str]]:
    """Map article id to its paragraphs, for the ids in `wanted` (all when None)."""
    return {a.id: paragraphs(a.text, max_chars) for a in articles if wanted is None or a.id in wanted}


def safe_cell(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting with = + - @ (a formula) gets a leading apostrophe."""
    return f"'{value}" if value[:1] in FORMULA_STARTS else value


def write_label_file(path: Path, labels: Iterable[Label]) -> None:
    """Write labels sorted by reference, atomically; free text (the annotator) is kept from reading as a formula."""
    from pipeline.files import atomic_open

    rows = sorted(labels, key=lambda lab: (lab.article_id, lab.paragraph))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for lab in rows:
        w.writerow([lab.article_id, lab.paragraph, lab.hash, lab.label, lab.method, safe_cell(lab.annotator)])
    with atomic_open(path) as f:
        f.write(buf.getvalue().encode("utf-8"))


def batch_conflicts(new: list[Label]) -> tuple[list[Label], list[str]]:
    """Rows of one batch that give one paragraph different labels (or hashes) are all rejected, each pair named."""
    _, _, clashes = merge(new)
    problems = [
        f"{lab.where}: {lab.article_id} paragraph {lab.paragraph} is {lab.label!r} here but {seen.label!r} "
        f"at {seen.where}: the two rows conflict with each other; neither is imported"
        for lab, seen in clashes
    ]
    clashing = {lab.key for lab, _ in clashes}
    return [lab for lab in new if lab.key not in clashing], problems


def merge_into(existing: list[Label], new: list[Label]) -> tuple[list[Label], int, list[str]]:
    """Add `new` labels to `existing`; return (all labels, how many were added, conflicts).

    A row that repeats an existing label is a no-op, so importing the same batch twice changes nothing.
    A row that contradicts an existing label is reported and not applied.
    """
    by_key, added, clashes = merge(new, {lab.key: lab for lab in existing})
    conflicts = [
        f"{lab.where}: {lab.article_id} paragraph {lab.paragraph} is {lab.label!r} here "
        f"but already {seen.label!r} in the label set"
        for lab, seen in clashes
    ]
    return list(by_key.values()), added, conflicts
