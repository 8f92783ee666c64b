"""Stage `tag_seeds`: tag the five seed articles with the trained model and print a per-article summary."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import MODEL, PARAMS, SEEDS_OUT, SEEDS_SUMMARY, load_params, section
from pipeline.model import write_json
from pipeline.tagging.outputs import write_jsonl
from pipeline.tagging.records import article_summary, summary_table
from pipeline.tagging.scoring import Scorer, TagOptions, article_rule, load_scorer, tag_articles
from pipeline.text import Article, read_corpus


def tag_seeds(scorer: Scorer, articles: list[Article], options: TagOptions) -> tuple[list[dict], list[dict]]:
    """Paragraph records and per-article summaries of `articles`, through the same calls as `tag`."""
    per_article = tag_articles(scorer, articles, options)
    rule = dict(options.rule)
    records = [rec for recs in per_article for rec in recs]
    summaries = [article_summary(a, recs, rule) for a, recs in zip(articles, per_article, strict=True)]
    return records, summaries


def main(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    rule = article_rule(section(params, "tag"))
    options = TagOptions(model=str(MODEL), rule=rule, max_chars=section(params, "text")["max_paragraph_chars"])
    scorer = load_scorer(str(MODEL))
    records, summaries = tag_seeds(scorer, list(read_corpus(section(params, "corpus")["dir"], ("seeds",))), options)
    write_jsonl(SEEDS_OUT, records)
    write_json(SEEDS_SUMMARY, summaries)
    print("\n".join(summary_table(summaries)))
    print(f"tag_seeds: {len(records)} paragraphs of {len(summaries)} articles -> {SEEDS_OUT.resolve()}")
