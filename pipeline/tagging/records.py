"""Output records: one per paragraph (label, probabilities) and one per article (counts, on-topic share, verdict)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pipeline.config import LABELS, ON_TOPIC
from pipeline.text import Article

UNCERTAIN = "uncertain"


def paragraph_records(
    article: Article,
    paras: list[str],
    proba: np.ndarray,
    classes: list[str],
    min_confidence: float = 0.0,
    with_text: bool = True,
    with_fields: bool = False,
) -> list[dict]:
    """One record per paragraph: reference, text, label (or `uncertain`), its probability and all four.

    `proba` has one row per paragraph and its columns in `classes` order (the model's `classes_`).
    `with_fields` adds the input record's other fields (for paragraph records; an article's go in its summary).
    """
    if not paras:
        return []
    proba = np.asarray(proba, dtype=np.float64)
    best = proba.argmax(axis=1)
    top = proba[np.arange(len(paras)), best]
    rounded = np.round(proba, 4).tolist()
    column = {c: j for j, c in enumerate(classes)}
    records = []
    for i, text in enumerate(paras):
        predicted = classes[best[i]]
        label = UNCERTAIN if top[i] < min_confidence else predicted
        row = rounded[i]
        rec = {"article_id": article.id, "source_path": article.path, "paragraph": i}
        if with_text:
            rec["text"] = text
        rec.update(
            label=label,
            predicted=predicted,
            probability=row[best[i]],
            probabilities={lab: row[column[lab]] if lab in column else 0.0 for lab in LABELS},
            on_topic=label in ON_TOPIC,
        )
        if with_fields and article.extra:
            rec["fields"] = article.extra
        records.append(rec)
    return records


def summarize(article_id: str, records: list[dict], min_share: float, min_paragraphs: int) -> dict:
    """Paragraph counts per label (and `uncertain`, if any), the on-topic share, and whether the article counts as on-topic."""
    counts = {lab: 0 for lab in LABELS}
    for r in records:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    n = len(records)
    n_on = sum(counts[lab] for lab in ON_TOPIC)
    share = n_on / n if n else 0.0
    return {
        "article_id": article_id,
        "paragraphs": n,
        "counts": counts,
        "on_topic_paragraphs": n_on,
        "on_topic_share": round(share, 4),
        "on_topic": n_on >= min_paragraphs and share >= min_share,
    }


def article_summary(article: Article, records: list[dict], rule: dict) -> dict:
    """`summarize` for one tagged article, with its source path, language flag and carried-through fields; `rule` is params' `tag`."""
    from pipeline.tagging.inputs import not_vietnamese

    summary = summarize(article.id, records, rule["on_topic_min_share"], rule["on_topic_min_paragraphs"])
    summary["counts"].setdefault(UNCERTAIN, 0)
    summary = {"article_id": summary.pop("article_id"), "source_path": article.path, **summary}
    summary["not_vietnamese"] = bool(not_vietnamese(article.text))  # its tags mean little: the model reads Vietnamese
    if article.extra:
        summary["fields"] = article.extra
    return summary


def summary_table(summaries: list[dict]) -> Iterator[str]:
    """Lines of a short per-article table for the terminal."""
    short = {"cooperation": "coop", "victim_support": "victim", "statistics": "stats", "off_topic": "off"}
    yield f"{'article':40s} {'paras':>5s} " + " ".join(f"{short[lab]:>6s}" for lab in LABELS) + "  on-topic share"
    for s in summaries:
        cells = " ".join(f"{s['counts'][lab]:6d}" for lab in LABELS)
        flag = "on-topic" if s["on_topic"] else ""
        yield f"{s['article_id'][:40]:40s} {s['paragraphs']:5d} {cells}  {s['on_topic_share']:6.1%} {flag}"
