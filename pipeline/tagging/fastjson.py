"""The JSON lines of a unit's paragraph records written straight from the probability matrices, byte for byte `encode(paragraph_records(...))`.

Building one dict per paragraph and formatting each of its floats costs more than scoring it.
Here the rounded probabilities come from a table of their 10,001 possible texts (np.round to 4
decimals, then repr), the label parts are formatted once per (label, predicted) pair, and each
line is one string concatenation. Records of another shape (carried-through fields, a label set
other than LABELS, a value outside [0, 1]) return None: the caller encodes the records.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _quote

import numpy as np

from pipeline.config import LABELS, ON_TOPIC
from pipeline.tagging.records import UNCERTAIN

STEPS = 10_000  # np.round(p, 4) is rint(p * 10_000) / 10_000
_TEXTS: list = []


def _rounded_texts() -> np.ndarray:
    """repr(k / 10_000) for k = 0 .. 10_000: what json.dumps writes for a probability np.round gave 4 decimals."""
    if not _TEXTS:
        _TEXTS.append(np.array([repr(k / STEPS) for k in range(STEPS + 1)], dtype=object))
    return _TEXTS[0]


def paragraph_lines(articles, paras, probas, classes, min_confidence: float, with_text: bool):
    """(the UTF-8 JSON lines of every paragraph, each article's labels), or None when the records need the general path."""
    found = line_list(articles, paras, probas, classes, min_confidence, with_text)
    if found is None:
        return None
    lines, labels = found
    return "".join(lines).encode("utf-8"), labels


def line_list(articles, paras, probas, classes, min_confidence: float, with_text: bool):
    """(every paragraph's JSON line as a str ending in a newline, each article's labels), or None (see paragraph_lines)."""
    classes = [str(c) for c in classes]
    if set(classes) - set(LABELS):
        return None
    counts = [len(p) for p in paras]
    labels_out = [[] for _ in articles]
    if not sum(counts):
        return [], labels_out
    P = np.vstack([np.asarray(p, dtype=np.float64) for p in probas if len(p)])
    steps = np.rint(P * float(STEPS))
    if not np.isfinite(steps).all() or steps.min() < 0 or steps.max() > STEPS:
        return None
    texts = _rounded_texts()[steps.astype(np.int64)]
    n = len(P)
    best = P.argmax(axis=1)
    top = P[np.arange(n), best]
    names = [*classes, UNCERTAIN]
    label = np.where(top < min_confidence, len(classes), best)
    # "label" ... "probability": for each (label, predicted) pair, and the end of the line for each label.
    middle = {
        (lab, pred): f'"label": {_quote(names[lab])}, "predicted": {_quote(names[pred])}, "probability": '
        for lab in range(len(names))
        for pred in range(len(classes))
    }
    ending = [f'}}, "on_topic": {"true" if name in ON_TOPIC else "false"}}}\n' for name in names]
    # '"cooperation": 0.1, "victim_support": 0.0, ...' for every row, concatenated column by column (object arrays).
    probs = np.full(n, "", dtype=object)
    for j, lab in enumerate(LABELS):
        column = texts[:, classes.index(lab)] if lab in classes else np.full(n, repr(0.0), dtype=object)
        probs = probs + (f'"{lab}": ' if j == 0 else f', "{lab}": ') + column
    starts = []
    for a, c in zip(articles, counts, strict=True):  # quoted once per article, not once per paragraph
        starts += [f'{{"article_id": {_quote(a.id)}, "source_path": {_quote(a.path)}, "paragraph": '] * c
    index = [i for c in counts for i in range(c)]
    flat = [t for p in paras for t in p]
    quoted = [f'"text": {_quote(t)}, ' for t in flat] if with_text else [""] * n
    best_text = texts[np.arange(n), best]
    label_list, best_list = label.tolist(), best.tolist()
    lines = [
        f'{s}{i}, {q}{middle[lab, b]}{bt}, "probabilities": {{{pr}{ending[lab]}'
        for s, i, q, lab, b, bt, pr in zip(
            starts, index, quoted, label_list, best_list, best_text, probs.tolist(), strict=True
        )
    ]
    at = 0
    for k, c in enumerate(counts):
        labels_out[k] = [names[lab] for lab in label_list[at : at + c]]
        at += c
    return lines, labels_out
