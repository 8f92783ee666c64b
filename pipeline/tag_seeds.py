"""Stage `tag_seeds`: tag the five seed articles with the trained model and print a per-article summary."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import MODEL, PARAMS, SEEDS_OUT, SEEDS_SUMMARY, load_params, section
from pipeline.model import load_model, write_json
from pipeline.tagging.outputs import write_jsonl
from pipeline.tagging.records import summarize, summary_table, tag_article
from pipeline.text import read_corpus


def main(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    tag, max_chars = section(params, "tag"), section(params, "text")["max_paragraph_chars"]
    model, _ = load_model(MODEL)
    records, summaries = [], []
    for art in read_corpus(section(params, "corpus")["dir"], ("seeds",)):
        recs = tag_article(model, art, max_chars)
        records += recs
        summaries.append(summarize(art.id, recs, tag["on_topic_min_share"], tag["on_topic_min_paragraphs"]))
    write_jsonl(SEEDS_OUT, records)
    write_json(SEEDS_SUMMARY, summaries)
    print("\n".join(summary_table(summaries)))
    print(f"tag_seeds: {len(records)} paragraphs of {len(summaries)} articles -> {SEEDS_OUT.resolve()}")
