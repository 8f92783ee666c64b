"""Compare feature sets and classifiers on the grouped test split: macro-F1, on-topic F1, train time, tagging speed.

Run after `dvc repro` (it reads data/split and data/tokens):  python bench/compare_models.py
Paragraph models only (train.context false): the context model is built on the winner.
Tagging speed is one process scoring 5,000 `general` paragraphs with the fitted model, word
segmentation included for word-level variants (no training cache).
"""

from __future__ import annotations

import itertools
import sys
import time

import pandas as pd
import yaml

from pipeline.config import PARAMS, TEST, TOKENS, TRAIN
from pipeline.evaluate import score
from pipeline.model import drop_caches, predict
from pipeline.text import paragraphs, read_corpus
from pipeline.train import fit

FEATURES = ["syllable", "word", "char", "syllable+char", "syllable+word+char"]
CLASSIFIERS = ["logreg", "linearsvc"]


def sample_paragraphs(corpus_dir: str, n: int) -> list[str]:
    """The first `n` paragraphs of `general` articles: a fixed tagging workload."""
    out = []
    for art in read_corpus(corpus_dir, ("general",)):
        out += paragraphs(art.text)
        if len(out) >= n:
            return out[:n]
    return out


def main() -> None:
    params = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    base = params["train"]
    train, test = pd.read_parquet(TRAIN), pd.read_parquet(TEST)
    tokens = pd.read_parquet(TOKENS)
    cache = dict(zip(tokens.text, tokens.words, strict=True))
    workload = sample_paragraphs(params["corpus"]["dir"], 5000)
    only = sys.argv[1:]
    print("| features | classifier | macro-F1 | on-topic F1 | train s | tagging paragraphs/s |")
    print("|---|---|---|---|---|---|")
    for feats, clf in itertools.product(FEATURES, CLASSIFIERS):
        if only and feats not in only:
            continue
        p = {**base, "features": feats, "classifier": clf, "C": base["C"] if clf == "logreg" else 0.5, "context": False}
        model, seconds = fit(train, None, p, cache if "word" in feats else None)
        pred, _ = predict(model, test.text.tolist())
        s = score(test.label.tolist(), pred)
        drop_caches(model)
        texts = workload[:1000] if "word" in feats else workload
        start = time.perf_counter()
        predict(model, texts)
        speed = len(texts) / (time.perf_counter() - start)
        print(
            f"| {feats} | {clf} | {s['macro_f1']:.3f} | {s['on_topic']['f1']:.3f} | {seconds:.1f} | {speed:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
