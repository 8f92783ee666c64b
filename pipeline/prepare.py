"""Stage `prepare`: join the label references with the corpus text, capping rule-mined negatives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import ARTICLES, LABELS, LABELS_DIR, PARAMS, PREPARED, SYNTHETIC_DIR, load_params, section
from pipeline.labels import Label, LabelError, load_labels, read_label_file
from pipeline.text import normalize, paragraph_hash, paragraphs, read_corpus, read_jsonl


def cap_mined(labels: list[Label], max_ratio: float, seed: int) -> list[Label]:
    """Keep every manual label and at most `max_ratio` x that many rule-mined ones (a seeded sample)."""
    manual = [lab for lab in labels if lab.method == "manual"]
    mined = sorted((lab for lab in labels if lab.method != "manual"), key=lambda lab: lab.key)
    keep = int(max_ratio * len(manual))
    if len(mined) > keep:
        idx = pd.Series(range(len(mined))).sample(n=keep, random_state=seed).sort_values()
        mined = [mined[i] for i in idx]
    return manual + mined


def join(labels: list[Label], paras: dict[str, list[str]], origin: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """One row per labeled paragraph: the reference, the label, and the paragraph text with its neighbours' count."""
    rows = [
        {
            "article_id": lab.article_id,
            "paragraph": lab.paragraph,
            "hash": lab.hash,
            "label": lab.label,
            "method": lab.method,
            "annotator": lab.annotator,
            "file": origin[lab.article_id][0],
            "source": origin[lab.article_id][1],
            "n_paragraphs": len(paras[lab.article_id]),
            "text": paras[lab.article_id][lab.paragraph],
        }
        for lab in labels
    ]
    return pd.DataFrame(rows).sort_values(["article_id", "paragraph"], ignore_index=True)


def read_synthetic(folder: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Synthetic training articles written by annotators (`data/synthetic/*.jsonl`): their label rows and paragraphs.

    Each line is one article: `id`, `style`, `purpose` and `paragraphs` (a list of `text`, `label`).
    Their rows have method `synthetic`, so they only ever train (never in a test split or a score).
    """
    rows, paras = [], {}
    for path in sorted(Path(folder).glob("*.jsonl")):
        for lineno, rec in read_jsonl(path, need_text=False):
            where = f"{path}:{lineno}"
            aid, items = rec.get("id"), rec.get("paragraphs")
            if not isinstance(aid, str) or not aid.startswith("synthetic/") or not isinstance(items, list) or not items:
                raise LabelError(f"{where}: expected an 'id' starting with 'synthetic/' and a list of 'paragraphs'")
            if aid in paras:
                raise LabelError(f"{where}: duplicate id {aid!r}")
            texts = []
            for i, item in enumerate(items):
                text = normalize(item.get("text", "")) if isinstance(item, dict) else ""
                if not text or item.get("label") not in LABELS:
                    raise LabelError(
                        f"{where}: paragraph {i} needs a non-empty 'text' and a label of {', '.join(LABELS)}"
                    )
                texts.append(text)
                rows.append(
                    {
                        "article_id": aid,
                        "paragraph": i,
                        "hash": paragraph_hash(text),
                        "label": item["label"],
                        "method": "synthetic",
                        "annotator": aid.split("/")[1],
                        "file": "synthetic",
                        "source": "synthetic",
                        "n_paragraphs": len(items),
                        "text": text,
                    }
                )
            paras[aid] = texts
    return pd.DataFrame(rows), paras


def articles_table(paras: dict[str, list[str]]) -> pd.DataFrame:
    """Every paragraph of every labeled article, labeled or not: the context the second pass reads."""
    rows = [(aid, i, text) for aid in sorted(paras) for i, text in enumerate(paras[aid])]
    return pd.DataFrame(rows, columns=["article_id", "paragraph", "text"])


def main(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    corpus, prep = section(params, "corpus"), section(params, "prepare")
    max_chars = section(params, "text")["max_paragraph_chars"]
    files = sorted(LABELS_DIR.glob("*.csv"))
    wanted = {lab.article_id for f in files for lab in read_label_file(f)[0]}
    paras, origin = {}, {}
    for art in read_corpus(corpus["dir"]):
        if art.id in wanted:
            paras[art.id] = paragraphs(art.text, max_chars)
            origin[art.id] = (art.path if art.source != "seeds" else "seeds", art.source)
    labels = cap_mined(load_labels(files, paras), prep["mined_max_ratio"], prep["seed"])
    df = join(labels, paras, origin)
    synthetic, synthetic_paras = read_synthetic(SYNTHETIC_DIR)
    if len(synthetic):
        df = pd.concat([df, synthetic], ignore_index=True).sort_values(["article_id", "paragraph"], ignore_index=True)
        paras.update(synthetic_paras)
    PREPARED.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(PREPARED, index=False)
    articles_table(paras).to_parquet(ARTICLES, index=False)
    counts = df.groupby(["method", "label"]).size().to_dict()
    print(f"prepare: {len(df)} labeled paragraphs from {df.article_id.nunique()} articles -> {PREPARED}")
    for (method, label), n in sorted(counts.items()):
        print(f"  {method:32s} {label:15s} {n}")
