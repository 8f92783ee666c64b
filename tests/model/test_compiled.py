"""The compiled path and the fast counting give the scikit-learn path's probabilities, on corpus text and trained models."""

import gzip
import itertools
import json
import unicodedata

import numpy as np
import pytest
from reference import same_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from pipeline.fastvec import FastCountTfidf, accelerate
from pipeline.text import paragraphs


@pytest.fixture(scope="module")
def corpus_paragraphs(corpus_dir):
    with gzip.open(corpus_dir / "related.jsonl.gz", "rt", encoding="utf-8") as f:
        return [p for rec in itertools.islice(f, 400) for p in paragraphs(json.loads(rec)["text"])]


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
    assert same_matrix(vec.transform(docs), fast.transform(docs))


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


CONTEXT_VARIANTS = {
    # the default model: digits folded, logistic regression, then calibrated LinearSVC reading the neighbours,
    # the title and the article's mean and max probabilities
    "default": {},
    # the other classifiers, two neighbours a side (probabilities of three), no title, digits as written,
    # no article columns
    "svc-then-logreg": {
        "classifier": "linearsvc",
        "context_classifier": "logreg",
        "context_title": False,
        "context_window": 2,
        "context_prob_window": 3,
        "context_article_probs": False,
        "fold_digits": False,
    },
}


def _context_model(corpus_dir, labels, variant: str):
    """A ContextModel of configs/params.yaml's train section (with `variant`'s changes) fitted on ~120 labeled articles."""
    import yaml
    from conftest import ROOT

    from pipeline.model import ContextModel
    from pipeline.text import read_corpus

    params = {**yaml.safe_load((ROOT / "configs" / "params.yaml").read_text(encoding="utf-8"))["train"]}
    params.update(CONTEXT_VARIANTS[variant])
    manual = labels[labels.method == "manual"]
    # whole articles from both ends of the label set, so every label is there
    ids = sorted(set(manual.article_id))
    wanted = set(ids[:60] + ids[-60:])
    paras = {a.id: paragraphs(a.text) for a in read_corpus(corpus_dir) if a.id in wanted}
    gold = {(a, i): lab for a, i, lab in zip(labels.article_id, labels.paragraph, labels.label, strict=True)}
    arts = [paras[a] for a in sorted(paras)]
    labs = [[gold.get((a, i)) for i in range(len(paras[a]))] for a in sorted(paras)]
    model = ContextModel.from_params(params, cv=3, decision_folds=3)
    return model.fit(arts, labs)


@pytest.fixture(scope="module", params=sorted(CONTEXT_VARIANTS))
def context_model(request, corpus_dir, labels):
    return _context_model(corpus_dir, labels, request.param)


@pytest.fixture(scope="module")
def general_articles(corpus_dir):
    """The first articles of general.jsonl.gz, cut as `tag` cuts them: 20,000 paragraphs or more."""
    arts, n = [], 0
    with gzip.open(corpus_dir / "general.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            arts.append(paragraphs(json.loads(line)["text"]))
            n += len(arts[-1])
            if n >= 20_000:
                break
    return arts + [[], ["một đoạn duy nhất"]]


def _through_the_file(model, folder):
    """The CompiledModel of `model` saved, then loaded as tagging loads it (the tables alone)."""
    from pipeline import modelfile
    from pipeline.model import meta_path, write_json
    from pipeline.tagging.compiled import CompiledModel
    from pipeline.train import save_model

    path = folder / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path)})
    estimator, tables, _ = modelfile.load(path, model=False)
    assert estimator is None and tables is not None
    return CompiledModel(tables)


def _assert_same(fast: list, ref: list):
    assert [p.shape for p in fast] == [p.shape for p in ref]
    fast, ref = np.vstack(fast), np.vstack(ref)
    assert np.abs(fast - ref).max() <= 1e-6
    assert np.array_equal(fast.argmax(axis=1), ref.argmax(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("factors", ["fitted", [1.0, 0.45, 1.3, 1.0]])
def test_compiled_context_model_gives_the_scikit_learn_probabilities(
    context_model, general_articles, factors, tmp_path
):
    """Compiled as `tag` loads it: the tables of the saved file, without the scikit-learn model."""
    import copy

    model = copy.deepcopy(context_model)
    if factors != "fitted":  # a decision rule that changes labels, applied by both paths
        model.decision_factors_ = np.array(factors)
    compiled = _through_the_file(model, tmp_path)
    assert sum(map(len, general_articles)) >= 20_000
    ref = model.predict_proba_articles(general_articles)
    _assert_same(compiled.predict_proba_articles(general_articles, normalized=True), ref)
    _assert_same(compiled.predict_proba_articles(general_articles), ref)


ODD_TEXTS = [
    "",
    "   ",
    "!!! ... ???",
    "Hoà  bình\tvà\u200b hợp tác\nquốc tế",  # tone spelling, spaces, an invisible mark, a newline
    unicodedata.normalize("NFD", "Tuyên truyền phòng, chống mua bán người"),
    "ΣΑΣ ΟΔΟΣ İstanbul ǅ ß ﬁ",  # lower() that changes lengths, final sigma
    "từ " * 9000,  # one count past the table of 1 + log(count)
    "nạn nhân " + "\ud800 lạ",  # a lone surrogate, as JSON can carry
    "_ 1 2 ٣ 𝟘 a_b",
]


def test_compiled_paragraph_model_and_odd_texts(trained_model, corpus_paragraphs, tmp_path):
    compiled = _through_the_file(trained_model, tmp_path)
    texts = corpus_paragraphs + ODD_TEXTS
    got = compiled.predict_proba_articles([texts])[0]
    assert np.abs(got - trained_model.predict_proba(texts)).max() <= 1e-6


@pytest.mark.slow
def test_compiled_context_model_on_texts_not_normalised(context_model):
    from pipeline.tagging.compiled import compile_model

    articles = [ODD_TEXTS, ODD_TEXTS[3:], [ODD_TEXTS[0]]]
    _assert_same(
        compile_model(context_model).predict_proba_articles(articles), context_model.predict_proba_articles(articles)
    )


def test_another_scikit_learn_release_keeps_the_reference_path(monkeypatch, trained_model, corpus_paragraphs):
    import copy

    import sklearn

    from pipeline.fastvec import sklearn_supported
    from pipeline.tagging.compiled import compile_model
    from pipeline.tagging.scoring import Scorer

    assert sklearn_supported()  # the pinned release is the one checked
    monkeypatch.setattr(sklearn, "__version__", "1.10.0")
    assert not sklearn_supported()
    model = accelerate(copy.deepcopy(trained_model))
    assert type(model.named_steps["features"]) is TfidfVectorizer
    assert compile_model(model) is None
    scorer = Scorer(model)
    assert scorer.compiled is None
    assert np.array_equal(
        scorer.probabilities([corpus_paragraphs[:50]])[0], trained_model.predict_proba(corpus_paragraphs[:50])
    )


def test_models_the_compiled_path_does_not_reproduce_keep_scikit_learn(corpus_paragraphs):
    from pipeline.model import build_model
    from pipeline.tagging.compiled import compile_model

    labels = ["cooperation", "off_topic"] * 40
    params = {"features": "syllable+char", "classifier": "logreg", "char_ngram": [2, 3], "ngram_max": 2, "min_df": 1}
    params.update(sublinear_tf=True, class_weight=None, C=1.0, seed=0)
    model = build_model(params).fit(corpus_paragraphs[:80], labels)
    assert compile_model(model) is None


def test_process_writes_what_the_records_path_writes(model_file, corpus_dir):
    """The JSON lines and summaries of the fast encoding equal those of the records (the same probabilities)."""
    from pipeline.tagging.inputs import jsonl_units, parse_unit
    from pipeline.tagging.outputs import encode
    from pipeline.tagging.records import article_summary
    from pipeline.tagging.scoring import TagOptions, load_scorer, process, tag_articles

    options = TagOptions(model=str(model_file), min_confidence=0.5)
    scorer = load_scorer(options.model)
    unit = next(jsonl_units(str(corpus_dir / "related.jsonl.gz")))
    result = process(scorer, unit, options)
    articles = parse_unit(unit, False).articles
    per_article = tag_articles(scorer, articles, options)
    assert result.payload == encode([r for recs in per_article for r in recs], "jsonl", list(options.columns))
    rule = dict(options.rule)
    assert result.summaries == [article_summary(a, recs, rule) for a, recs in zip(articles, per_article, strict=True)]
    assert result.n_paragraphs == sum(map(len, per_article))
