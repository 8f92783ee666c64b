"""On real corpus text: normalize()'s fast paths give what every step gives, and paragraphs are its fixed points."""

import gzip
import itertools
import json
import unicodedata

from reference import reference_normalize

from pipeline.text import normalize, paragraphs


def test_normalize_equals_the_reference_on_corpus_lines(corpus_dir):
    with gzip.open(corpus_dir / "trafficking.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [line for rec in itertools.islice(f, 300) for line in json.loads(rec)["text"].splitlines()]
    for line in lines:
        assert normalize(line) == reference_normalize(line)
        assert normalize(unicodedata.normalize("NFD", line)) == reference_normalize(line)


def test_corpus_paragraphs_are_fixed_points_of_normalize(corpus_dir):
    with gzip.open(corpus_dir / "general.jsonl.gz", "rt", encoding="utf-8") as f:
        for rec in itertools.islice(f, 3000):
            for p in paragraphs(json.loads(rec)["text"]):
                assert normalize(p) == p
