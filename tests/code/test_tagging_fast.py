"""The fast paths give exactly what the plain ones give: normalize's skipped steps, the n-gram counting, the JSON lines."""

import gzip
import itertools
import json
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from pipeline import text as text_module
from pipeline.tagging.fastvec import FastCountTfidf, accelerate
from pipeline.tagging.outputs import json_line
from pipeline.text import normalize, paragraphs


def reference_normalize(text: str) -> str:
    """normalize() as first written: every step, always."""
    t = text_module
    text = t._CONTROL.sub(" ", t._INVISIBLE.sub("", text))
    text = unicodedata.normalize("NFD", text)
    text = t._TONE_MOVE.sub(t._move_tone, text)
    text = unicodedata.normalize("NFC", text)
    return t._SPACES.sub(" ", text).strip()


# Letters, tones and marks where the shortcuts could go wrong, plus white space and invisible characters.
VIETNAMESE = "aăâeêioôơuưyAĂÂEÊIOÔƠUƯYqQđĐhnt oa oe uy qu" + "àáảãạÀÁẢÃẠèéẻẽẹÈÉẺẼẸỳýỷỹỵỲÝỶỸỴặậệ"
MARKS = "\u0300\u0301\u0309\u0303\u0323\u0302\u0306\u031b"
ODD = "\t\n\r\xa0\u2000\u200b\u200f\ufeff\x00\x07\x85\u3000  "
ALPHABET = st.sampled_from(VIETNAMESE + MARKS + ODD + ".,!?-_0123456789")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_normalize_equals_the_reference_on_generated_text(text):
    assert normalize(text) == reference_normalize(text)
    assert normalize(unicodedata.normalize("NFD", text)) == reference_normalize(unicodedata.normalize("NFD", text))


def test_normalize_equals_the_reference_on_corpus_lines(corpus_dir):
    with gzip.open(corpus_dir / "trafficking.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [line for rec in itertools.islice(f, 300) for line in json.loads(rec)["text"].splitlines()]
    for line in lines:
        assert normalize(line) == reference_normalize(line)
        assert normalize(unicodedata.normalize("NFD", line)) == reference_normalize(line)


def test_tone_candidate_classes_match_the_unicode_database():
    """The NFC characters whose decomposition is a/e (or y) followed by a tone mark and nothing else, from the whole table."""
    tones = text_module._TONES
    alone, toned_y = set(), set()
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.normalize("NFC", c) != c:
            continue
        d = unicodedata.normalize("NFD", c)
        # a tone followed by another mark (ặ, ậ, ệ) does not end the syllable: never moved
        if len(d) == 2 and d[1] in tones:
            if d[0] in "aAeE":
                alone.add(c)
            elif d[0] in "yY":
                toned_y.add(c)
    assert set(text_module._TONED_AE) == alone
    assert set(text_module._TONED_Y) == toned_y


@pytest.fixture(scope="module")
def corpus_paragraphs(corpus_dir):
    with gzip.open(corpus_dir / "related.jsonl.gz", "rt", encoding="utf-8") as f:
        return [p for rec in itertools.islice(f, 400) for p in paragraphs(json.loads(rec)["text"])]


def _same_matrix(a, b):
    a, b = a.tocsr(), b.tocsr()
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


@pytest.mark.parametrize(
    ("ngram_range", "pattern", "dtype"),
    [
        ((1, 2), r"(?u)\b\w+\b", np.float32),
        ((1, 3), r"(?u)\b\w+\b", np.float64),
        ((2, 2), r"(?u)\b\w\w+\b", np.float64),
        ((1, 1), r"(?u)\b\w+\b", np.float32),
    ],
)
def test_fast_counting_gives_the_same_tfidf_matrix(corpus_paragraphs, ngram_range, pattern, dtype):
    half = len(corpus_paragraphs) // 2
    vec = TfidfVectorizer(ngram_range=ngram_range, token_pattern=pattern, min_df=2, sublinear_tf=True, dtype=dtype)
    vec.fit(corpus_paragraphs[:half])
    fast = accelerate(Pipeline([("features", vec)])).named_steps["features"]
    assert isinstance(fast, FastCountTfidf)
    docs = corpus_paragraphs[half:] + ["", "   ", "!!!", "từ lạ chưa gặp bao giờ", "Hòa HÒA hòa"]
    assert _same_matrix(vec.transform(docs), fast.transform(docs))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab cdđ ưở Ở_1 \n"), max_size=30), min_size=1, max_size=8))
def test_fast_counting_on_generated_documents(docs):
    vec = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", sublinear_tf=True)
    vec.fit(["a b cd", "đ ưở ở", "_1 a", "cd cd b"])
    fast = accelerate(Pipeline([("v", vec)])).named_steps["v"]
    assert _same_matrix(vec.transform(docs), fast.transform(docs))


def test_accelerate_reaches_unions_and_leaves_other_vectorizers(corpus_paragraphs):
    word = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b").fit(corpus_paragraphs[:50])
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(corpus_paragraphs[:50])
    model = accelerate(Pipeline([("features", FeatureUnion([("word", word), ("char", char)]))]))
    blocks = dict(model.named_steps["features"].transformer_list)
    assert isinstance(blocks["word"], FastCountTfidf)
    assert type(blocks["char"]) is TfidfVectorizer


def test_accelerated_model_predicts_the_same(trained_model, corpus_paragraphs):
    import copy

    fast = accelerate(copy.deepcopy(trained_model))
    assert np.array_equal(trained_model.predict_proba(corpus_paragraphs), fast.predict_proba(corpus_paragraphs))


@pytest.mark.parametrize(
    "rec",
    [
        {
            "article_id": 'a"\\\n',
            "source_path": "x.txt",
            "paragraph": 3,
            "text": 'Hòa \x00 \u2028 "q" 🙂',
            "label": "cooperation",
            "predicted": "cooperation",
            "probability": 0.1,
            "probabilities": {"cooperation": 0.1, "victim_support": 1.0, "statistics": 0.0, "off_topic": 1e-05},
            "on_topic": True,
        },
        {
            "article_id": "b",
            "source_path": "",
            "paragraph": 0,
            "label": "uncertain",
            "predicted": "off_topic",
            "probability": 0.3333,
            "probabilities": {
                "cooperation": 0.3333,
                "victim_support": 0.3333,
                "statistics": 0.0001,
                "off_topic": 0.3333,
            },
            "on_topic": False,
        },
        {
            "article_id": "c",
            "source_path": "y",
            "paragraph": 1,
            "text": "t",
            "label": "off_topic",
            "predicted": "off_topic",
            "probability": 0.9,
            "probabilities": {"cooperation": 0.0, "victim_support": 0.0, "statistics": 0.1, "off_topic": 0.9},
            "on_topic": False,
            "terms": [["mua bán", 0.5]],
            "fields": {"title": "Tựa"},
        },
    ],
)
def test_json_line_is_json_dumps(rec):
    assert json_line(rec) == json.dumps(rec, ensure_ascii=False)
