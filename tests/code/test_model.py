"""Unit tests of the model object: building, the context model, saving and checked loading (sentences written here)."""

import numpy as np
import pytest

from pipeline.model import (
    ContextModel,
    ModelError,
    article_score,
    build_model,
    load_model,
    meta_path,
    predict,
    predict_articles,
    save_model,
    top_terms,
    write_json,
)

PARAMS = {
    "features": "syllable",
    "classifier": "logreg",
    "C": 10.0,
    "ngram_max": 2,
    "char_ngram": [2, 4],
    "min_df": 1,
    "sublinear_tf": True,
    "class_weight": "balanced",
    "seed": 0,
    "context_classifier": "linearsvc",
    "context_C": 0.3,
}
COOP = "Công an bắt giữ đối tượng mua bán người và khởi tố vụ án."
VICTIM = "Nạn nhân bị lừa bán được giải cứu và hỗ trợ tái hòa nhập."
STATS = "Năm qua có 300 vụ mua bán người, tăng 10% so với năm trước."
OFF = "Đội bóng thắng trận chung kết tối qua trước hàng nghìn cổ động viên."


def toy_articles(n=12):
    arts, labels = [], []
    for i in range(n):
        if i % 2:
            arts.append([f"Tin {i}: {COOP}", VICTIM, STATS, f"Bình luận {i}."])
            labels.append(["cooperation", "victim_support", "statistics", None])
        else:
            arts.append([OFF, f"Thời tiết hôm nay {i} nắng đẹp.", "Giá vàng tăng nhẹ."])
            labels.append(["off_topic", "off_topic", None])
    return arts, labels


@pytest.mark.parametrize("features", ["syllable", "char", "syllable+char"])
def test_paragraph_model_predicts_one_row_per_text(features):
    arts, labels = toy_articles()
    texts = [p for a, ls in zip(arts, labels, strict=True) for p, lab in zip(a, ls, strict=True) if lab]
    y = [lab for ls in labels for lab in ls if lab]
    model = build_model({**PARAMS, "features": features}).fit(texts, y)
    got, proba = predict(model, [COOP, OFF])
    assert got == ["cooperation", "off_topic"]
    assert proba.shape == (2, 4)


@pytest.mark.parametrize(("p_on", "k", "expected"), [([0.9, 0.1, 0.8, 0.0], 2, 0.85), ([0.4], 3, 0.4), ([], 3, 0.0)])
def test_article_score_is_mean_of_top_k(p_on, k, expected):
    assert article_score(np.array(p_on), k) == pytest.approx(expected)


def test_context_model_scores_whole_articles_and_single_paragraphs():
    arts, labels = toy_articles()
    model = ContextModel(PARAMS, cv=3).fit(arts, labels)
    probas = predict_articles(model, [[COOP, VICTIM, STATS], [OFF], []])
    assert [p.shape for p in probas] == [(3, 4), (1, 4), (0, 4)]
    assert [model.classes_[i] for i in probas[0].argmax(axis=1)] == ["cooperation", "victim_support", "statistics"]
    # a paragraph scored alone is a one-paragraph article
    assert predict(model, [OFF])[1] == pytest.approx(probas[1])
    assert top_terms(model, [COOP], ["cooperation"], 3)[0]


def test_saved_model_loads_only_with_matching_sha256(tmp_path):
    arts, labels = toy_articles()
    model = ContextModel(PARAMS, cv=3).fit(arts, labels)
    path = tmp_path / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path)})
    loaded, meta = load_model(path)
    assert predict(loaded, [COOP])[0] == predict(model, [COOP])[0]
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ModelError, match="does not match"):
        load_model(path)


@pytest.mark.parametrize(
    ("meta", "message"),
    [(None, "metadata file missing"), ("{not json", "unreadable or corrupted"), ('{"labels": []}', "no sha256")],
)
def test_bad_metadata_is_a_clear_error(tmp_path, meta, message):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"not a model")
    if meta is not None:
        meta_path(path).write_text(meta, encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        load_model(path)


def test_truncated_model_file_is_a_clear_error(tmp_path):
    arts, labels = toy_articles()
    path = tmp_path / "model.joblib"
    save_model(build_model(PARAMS).fit([COOP, OFF], ["cooperation", "off_topic"]), path)
    path.write_bytes(path.read_bytes()[:200])
    from pipeline.model import sha256_file

    write_json(meta_path(path), {"sha256": sha256_file(path)})
    with pytest.raises(ModelError, match="cannot be loaded"):
        load_model(path)


def test_training_is_deterministic_for_a_fixed_seed():
    arts, labels = toy_articles()
    a = ContextModel(PARAMS, cv=3).fit(arts, labels)
    b = ContextModel(PARAMS, cv=3).fit(arts, labels)
    texts = [[COOP, VICTIM, OFF]]
    assert np.array_equal(predict_articles(a, texts)[0], predict_articles(b, texts)[0])


# Trains the toy context model in a fresh interpreter and prints the saved file's sha256: a new
# process has other memory addresses and (with another PYTHONHASHSEED) another string hash order.
TRAIN_AND_SAVE = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from test_model import PARAMS, toy_articles

from pipeline.model import ContextModel, save_model

arts, labels = toy_articles()
model = ContextModel({{**PARAMS, "min_df": 1}}, cv=3, title=True).fit(arts, labels, n_jobs=int(sys.argv[2]))
print(save_model(model, Path(sys.argv[1])))
"""


def test_same_inputs_give_the_same_model_bytes_in_any_process_and_job_count(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = TRAIN_AND_SAVE.format(tests=str(Path(__file__).parent))
    shas = []
    for seed, n_jobs in (("1", "1"), ("2", "2"), ("3", "1")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        out = tmp_path / f"model-{seed}.joblib"
        done = subprocess.run(
            [sys.executable, "-c", script, str(out), n_jobs], env=env, cwd=root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        shas.append(done.stdout.split()[-1])
    assert len(set(shas)) == 1, shas
