"""The fast paths give exactly what the plain ones give, on text written here: n-gram counting, tokens, JSON lines."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import same_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from pipeline.fastvec import accelerate
from pipeline.tagging.outputs import json_line


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab cdđ ưở Ở_1 \n"), max_size=30), min_size=1, max_size=8))
def test_fast_counting_on_generated_documents(docs):
    vec = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", sublinear_tf=True)
    vec.fit(["a b cd", "đ ưở ở", "_1 a", "cd cd b"])
    fast = accelerate(Pipeline([("v", vec)])).named_steps["v"]
    assert same_matrix(vec.transform(docs), fast.transform(docs))


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


def test_word_characters_are_those_of_python_re():
    import re

    from pipeline.tagging.compiled import word_chars

    table = word_chars()
    rng = np.random.default_rng(0)
    for cp in [*range(0x3000), *rng.integers(0, 0x110000, 20_000).tolist()]:
        assert table[cp] == bool(re.fullmatch(r"\w", chr(cp))), hex(cp)


@pytest.mark.parametrize(
    ("classes", "min_confidence", "with_text"),
    [
        (["cooperation", "off_topic", "statistics", "victim_support"], 0.0, True),
        (["cooperation", "off_topic", "statistics", "victim_support"], 0.6, False),
        (["off_topic", "cooperation"], 0.5, True),  # a model that lacks two labels
    ],
)
def test_fast_json_lines_are_the_records_bytes(classes, min_confidence, with_text):
    from pipeline.tagging.fastjson import paragraph_lines
    from pipeline.tagging.outputs import encode, paragraph_columns
    from pipeline.tagging.records import paragraph_records
    from pipeline.text import Article

    rng = np.random.default_rng(3)
    articles = [Article(id=f'a"{i}\\ é', text="", path=f"p/{i}.txt" if i % 2 else "") for i in range(40)]
    paras = [[f'đoạn {i}.{j} "trích" \x7f 🙂' for j in range(rng.integers(0, 6))] for i in range(40)]
    probas = []
    for ps in paras:
        p = rng.dirichlet(np.ones(len(classes)) * 0.3, size=len(ps))
        if len(ps) > 1:  # values at the edges of the rounding
            p[0] = np.eye(len(classes))[0]
            p[1, :2] = [0.00005, 0.99995]
            p[1, 2:] = 0.0
        probas.append(p)
    got, labels = paragraph_lines(articles, paras, probas, classes, min_confidence, with_text)
    records = [
        paragraph_records(a, p, pr, classes, min_confidence, with_text)
        for a, p, pr in zip(articles, paras, probas, strict=True)
    ]
    assert got == encode([r for recs in records for r in recs], "jsonl", paragraph_columns(with_text, False))
    assert labels == [[r["label"] for r in recs] for recs in records]


_BOUNDS_SCRIPT = r"""
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from pipeline.tagging.compiled import Vocabulary

vec = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", sublinear_tf=True, dtype=np.float32)
vec.fit(["a b c d", "b c d a", "c d a b"])
vocab = Vocabulary(Vocabulary.state_of(vec))
W = np.ones((vocab.n_features, 3))
# One short document holds more distinct terms (unigrams and bigrams) than it has tokens.
for docs in (["a b c d"], ["a"], ["a b", "c d a b c"], [""], ["a b c d a b c d"]):
    expected = vec.transform(docs).toarray().astype(np.float64) @ W
    assert np.allclose(vocab.project(docs, W), expected), docs
print("ok")
"""


def test_compiled_kernels_stay_inside_their_arrays(tmp_path):
    """The n-gram kernel under numba's bounds checking: a short document once wrote past its buffers (heap corruption)."""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
