"""What each model change gives on the grouped test split: paragraph vs context model, labels, title, weights, window.

Run after `dvc repro` (it reads data/split and data/prepared):  python bench/ablate_context.py [NAME_SUBSTRING ...]
"""

from __future__ import annotations

import sys

import pandas as pd
import yaml

from pipeline.config import ARTICLES, PARAMS, TEST, TRAIN
from pipeline.evaluate import predict_in_context, score
from pipeline.train import fit

# The annotators of the uncertainty-sampling round (`label queue`): 321 related/general articles.
UNCERTAINTY_ROUND = {f"llm-h{i}" for i in range(18, 24)}


def variants(base: dict, train: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Named (training rows, train params) pairs, each one change away from its neighbour."""
    round_articles = set(train[train.annotator.isin(UNCERTAINTY_ROUND)].article_id)
    before = train[~train.article_id.isin(round_articles)]
    no_title = {**base, "context_title": False}
    return {
        "paragraph model, labels before the uncertainty round": (before, {**base, "context": False}),
        "paragraph model, all labels": (train, {**base, "context": False}),
        "context model, before the uncertainty round": (before, no_title),
        "context model, all labels": (train, no_title),
        "+ title block": (train, {**base, "context_title": True}),
        "+ title, no class weights": (train, {**base, "context_title": True, "class_weight": None}),
        "+ title, top 5": (train, {**base, "context_title": True, "top_k": 5}),
        "+ title, window 2": (train, {**base, "context_title": True, "context_window": 2}),
        "params.yaml as it is": (train, base),
    }


def self_training(train, articles, params, corpus_dir: str, n_articles: int, threshold: float, seed: int = 0):
    """Training rows plus confident pseudo-labels on unlabeled related/general articles, and their paragraphs."""
    import random

    from pipeline.model import predict_articles
    from pipeline.text import paragraphs, read_corpus

    labeled = set(articles.article_id)
    pool = [a for a in read_corpus(corpus_dir, ("related", "general")) if a.id not in labeled]
    pool = random.Random(seed).sample(pool, n_articles)
    paras = [paragraphs(a.text) for a in pool]
    model, _ = fit(train, articles, params)
    rows, extra = [], []
    for art, ps, proba in zip(pool, paras, predict_articles(model, paras), strict=True):
        for i, (text, p) in enumerate(zip(ps, proba, strict=True)):
            extra.append({"article_id": art.id, "paragraph": i, "text": text})
            if p.max() >= threshold:
                label = str(model.classes_[p.argmax()])
                rows.append(
                    {"article_id": art.id, "paragraph": i, "text": text, "label": label, "method": "rule:self_training"}
                )
    return pd.concat([train, pd.DataFrame(rows)], ignore_index=True), pd.concat(
        [articles, pd.DataFrame(extra)], ignore_index=True
    )


def main() -> None:
    base = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))["train"]
    train, test, articles = pd.read_parquet(TRAIN), pd.read_parquet(TEST), pd.read_parquet(ARTICLES)
    print(
        "| model | training paragraphs | macro-F1 | on-topic F1 | coop F1 | victim F1 | stats F1 | off F1 | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    runs = variants(base, train)
    if "self" in sys.argv[1:]:
        corpus = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))["corpus"]["dir"]
        rows, more = self_training(train, articles, base, corpus, n_articles=2000, threshold=0.95)
        runs["+ self-training: 2,000 unlabeled related/general articles, pseudo-labels at p >= 0.95"] = (
            rows,
            base,
            more,
        )
    for name, (rows, params, *more) in runs.items():
        if sys.argv[1:] and not any(s in name for s in sys.argv[1:]):
            continue
        model, seconds = fit(rows, more[0] if more else articles, params)
        pred, _ = predict_in_context(model, test, articles)
        s = score(test.label.tolist(), pred)
        f1 = {k: v["f1"] for k, v in s["per_label"].items()}
        print(
            f"| {name} | {len(rows):,} | {s['macro_f1']:.3f} | {s['on_topic']['f1']:.3f} | {f1['cooperation']:.3f} "
            f"| {f1['victim_support']:.3f} | {f1['statistics']:.3f} | {f1['off_topic']:.3f} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
