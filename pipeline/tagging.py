"""Tagging: every paragraph of an article gets a label, its probability, and the article a summary."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.config import LABELS, ON_TOPIC
from pipeline.model import predict
from pipeline.text import Article, paragraphs


def tag_article(model, article: Article, max_chars: int = 1000) -> list[dict]:
    """One record per paragraph: reference, text, label, its probability and all four probabilities."""
    paras = paragraphs(article.text, max_chars)
    labels, proba = predict(model, paras)
    classes = [str(c) for c in model.classes_]
    records = []
    for i, (text, label) in enumerate(zip(paras, labels, strict=True)):
        probs = {c: round(float(proba[i, j]), 4) for j, c in enumerate(classes)}
        records.append(
            {
                "article_id": article.id,
                "source_path": article.path,
                "paragraph": i,
                "text": text,
                "label": label,
                "probability": probs[label],
                "probabilities": {lab: probs.get(lab, 0.0) for lab in LABELS},
                "on_topic": label in ON_TOPIC,
            }
        )
    return records


def summarize(article_id: str, records: list[dict], min_share: float, min_paragraphs: int) -> dict:
    """Paragraph counts per label, the on-topic share, and whether the article counts as on-topic."""
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


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Write records as JSON lines atomically: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def summary_table(summaries: list[dict]) -> Iterator[str]:
    """Lines of a short per-article table for the terminal."""
    short = {"cooperation": "coop", "victim_support": "victim", "statistics": "stats", "off_topic": "off"}
    yield f"{'article':40s} {'paras':>5s} " + " ".join(f"{short[lab]:>6s}" for lab in LABELS) + "  on-topic share"
    for s in summaries:
        cells = " ".join(f"{s['counts'][lab]:6d}" for lab in LABELS)
        flag = "on-topic" if s["on_topic"] else ""
        yield f"{s['article_id'][:40]:40s} {s['paragraphs']:5d} {cells}  {s['on_topic_share']:6.1%} {flag}"
