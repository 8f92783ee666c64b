"""Paragraph records, article summaries and the scoring cache (a small model fitted on sentences written for these tests)."""

import numpy as np
import pytest

from pipeline.model import build_model
from pipeline.tagging.records import UNCERTAIN, article_summary, paragraph_records
from pipeline.tagging.scoring import Scorer, TagOptions, tag_articles
from pipeline.text import Article

TRAIN = {
    "cooperation": [
        "Hai nước ký kết hợp tác phòng chống mua bán người.",
        "Bộ Công an hai nước phối hợp điều tra đường dây.",
    ],
    "victim_support": ["Các nạn nhân được hỗ trợ tâm lý và học nghề.", "Nạn nhân được đưa về địa phương an toàn."],
    "statistics": ["Năm qua phát hiện 120 vụ mua bán người.", "Số vụ án tăng 15% so với cùng kỳ."],
    "off_topic": ["Đội bóng giành chiến thắng trong trận chung kết.", "Giá vàng hôm nay tăng nhẹ."],
}
PARAMS = {
    "features": "syllable",
    "classifier": "logreg",
    "C": 10.0,
    "ngram_max": 2,
    "min_df": 1,
    "sublinear_tf": True,
    "class_weight": None,
    "seed": 1,
    "char_ngram": [2, 3],
}
RULE = {"on_topic_min_share": 0.2, "on_topic_min_paragraphs": 2}


@pytest.fixture(scope="module")
def tiny_model():
    texts = [t for ts in TRAIN.values() for t in ts]
    labels = [lab for lab, ts in TRAIN.items() for _ in ts]
    return build_model(PARAMS).fit(texts, labels)


class Spy:
    """A model that records what it is asked to score (and, with `articles`, reads whole articles like a context model)."""

    def __init__(self, model, articles: bool = False):
        self.model, self.classes_, self.calls = model, model.classes_, []
        if articles:
            self.predict_proba_articles = self._articles

    def predict_proba(self, texts):
        self.calls.append(list(texts))
        return self.model.predict_proba(texts)

    def _articles(self, articles):
        self.calls.append([list(a) for a in articles])
        return [self.model.predict_proba(a) for a in articles]


def test_records_label_probabilities_and_uncertain():
    article = Article(id="a1", text="", path="a.txt", extra={"title": "Tựa"})
    classes = ["cooperation", "off_topic", "statistics", "victim_support"]
    proba = np.array([[0.7, 0.1, 0.1, 0.1], [0.3, 0.35, 0.05, 0.3]])
    recs = paragraph_records(article, ["một", "hai"], proba, classes, min_confidence=0.5)
    assert [r["label"] for r in recs] == ["cooperation", UNCERTAIN]
    assert [r["predicted"] for r in recs] == ["cooperation", "off_topic"]
    assert recs[1]["probability"] == 0.35 and recs[1]["on_topic"] is False
    assert list(recs[0]["probabilities"]) == ["cooperation", "victim_support", "statistics", "off_topic"]
    assert recs[0]["probabilities"]["victim_support"] == 0.1
    assert "fields" not in recs[0]
    bare = paragraph_records(article, ["một"], proba[:1], classes, with_text=False, with_fields=True)[0]
    assert "text" not in bare and bare["fields"] == {"title": "Tựa"}


def test_summary_counts_uncertain_and_applies_the_rule():
    article = Article(id="a1", text="", path="a.txt", extra={"category": "Pháp luật"})
    labels = ["cooperation", "victim_support", UNCERTAIN, "off_topic", "off_topic"]
    summary = article_summary(article, [{"label": lab} for lab in labels], RULE)
    assert summary["counts"] == {"cooperation": 1, "victim_support": 1, "statistics": 0, "off_topic": 2, UNCERTAIN: 1}
    assert summary["on_topic_paragraphs"] == 2 and summary["on_topic_share"] == 0.4 and summary["on_topic"] is True
    assert summary["source_path"] == "a.txt" and summary["fields"] == {"category": "Pháp luật"}
    one = article_summary(article, [{"label": "cooperation"}] + [{"label": "off_topic"}] * 3, RULE)
    assert one["on_topic"] is False  # one on-topic paragraph is below on_topic_min_paragraphs


def test_identical_paragraphs_are_scored_once(tiny_model):
    spy = Spy(tiny_model)
    scorer = Scorer(spy)
    same = "Nạn nhân được hỗ trợ tâm lý."
    first = scorer.probabilities([[same, "Giá vàng tăng."], [same]])
    second = scorer.probabilities([[same, "Đội bóng thắng."]])
    assert [sorted(c) for c in spy.calls] == [sorted([same, "Giá vàng tăng."]), ["Đội bóng thắng."]]
    assert np.array_equal(first[0][0], first[1][0]) and np.array_equal(first[1][0], second[0][0])
    assert np.allclose(first[0], tiny_model.predict_proba([same, "Giá vàng tăng."]))


def test_a_context_model_is_given_whole_articles_and_cached_by_article(tiny_model):
    spy = Spy(tiny_model, articles=True)
    scorer = Scorer(spy)
    a, b = ["Hai nước ký kết hợp tác.", "Giá vàng tăng."], ["Giá vàng tăng."]
    scorer.probabilities([a, b, a])
    scorer.probabilities([a])
    assert spy.calls == [[a, b]]


def test_cache_stays_bounded(tiny_model):
    scorer = Scorer(tiny_model, cache_size=3)
    out = scorer.probabilities([[f"Câu số {i}." for i in range(5)], ["Câu số 1."]])
    assert len(out[0]) == 5 and len(scorer.cache) <= 5
    scorer.probabilities([["Một câu khác.", "Câu số 1."]])
    assert len(scorer.cache) <= 3


def test_tag_articles_with_explanations(tiny_model):
    options = TagOptions(model="-", explain=2, min_confidence=0.0)
    articles = [
        Article(
            id="x", text="Hai nước ký kết hợp tác phòng chống mua bán người.\nGiá vàng hôm nay tăng nhẹ.", path="x.txt"
        )
    ]
    (records,) = tag_articles(Scorer(tiny_model), articles, options)
    assert [r["paragraph"] for r in records] == [0, 1]
    assert records[0]["label"] == "cooperation"
    assert 0 < len(records[0]["terms"]) <= 2 and all(w > 0 for _, w in records[0]["terms"])


def test_paragraphs_mode_keeps_each_record_whole(tiny_model):
    options = TagOptions(model="-", paragraphs_mode=True)
    articles = [Article(id="p-9", text="Dòng một\nDòng hai", path="p.jsonl", extra={"lang": "vi"})]
    (records,) = tag_articles(Scorer(tiny_model), articles, options)
    assert len(records) == 1 and records[0]["text"] == "Dòng một Dòng hai"
    assert records[0]["article_id"] == "p-9" and records[0]["fields"] == {"lang": "vi"}
