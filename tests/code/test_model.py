"""Unit tests of the model object: building, the context model, saving and checked loading (sentences written here)."""

import numpy as np
import pytest

from pipeline.model import (
    ContextModel,
    ModelError,
    apply_factors,
    article_score,
    build_model,
    choose_factors,
    load_model,
    meta_path,
    predict,
    predict_articles,
    predict_rows,
    proba_in,
    top_terms,
    write_json,
)
from pipeline.train import save_model

PARAMS = {
    "features": "syllable",
    "fold_digits": False,
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
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    probas = predict_articles(model, [[COOP, VICTIM, STATS], [OFF], []])
    assert [p.shape for p in probas] == [(3, 4), (1, 4), (0, 4)]
    assert [model.classes_[i] for i in probas[0].argmax(axis=1)] == ["cooperation", "victim_support", "statistics"]
    # a paragraph scored alone is a one-paragraph article
    assert predict(model, [OFF])[1] == pytest.approx(probas[1])
    assert top_terms(model, [COOP], ["cooperation"], 3)[0]


def test_context_model_trains_on_articles_with_every_paragraph_labeled_in_parallel():
    arts, labels = toy_articles()
    full = [[lab or "off_topic" for lab in labs] for labs in labels]
    model = ContextModel(**PARAMS, cv=3).fit(arts, full, n_jobs=2)
    assert predict(model, [STATS])[1].shape == (1, 4)


def test_saved_model_loads_only_with_matching_sha256(tmp_path):
    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    path = tmp_path / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path)})
    loaded, meta = load_model(path)
    assert predict(loaded, [COOP])[0] == predict(model, [COOP])[0]
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ModelError, match="does not match"):
        load_model(path)


def test_a_model_saved_by_joblib_before_still_loads(tmp_path):
    import joblib

    from pipeline.model import sha256_file

    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path, compress=3)  # how models were saved before the gzip pickle
    write_json(meta_path(path), {"sha256": sha256_file(path)})
    assert predict_proba_equal(load_model(path)[0], model)
    saved = tmp_path / "new.joblib"
    save_model(model, saved)
    assert predict_proba_equal(joblib.load(saved), model)  # and joblib reads the new files


def test_the_model_file_holds_the_tables_and_the_model_sharing_their_weights(tmp_path):
    """One file: tagging reads the compiled tables alone; the scikit-learn model stores the weights it shares with them once."""
    import gzip
    import pickle

    from pipeline import modelfile

    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    path = tmp_path / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path)})
    estimator, tables, _ = modelfile.load(path, model=False)
    assert estimator is None and tables["context"] and tables["vocab"]["n_features"] > 0
    estimator, tables, _ = modelfile.load(path)
    assert estimator.context_clf_.calibrated_classifiers_[0].estimator.coef_ is tables["second"]["coefs"][0]
    assert estimator.paragraph_model_.named_steps["classify"].coef_ is tables["first"]["coefs"][0]
    alone = len(gzip.compress(pickle.dumps(model, protocol=5), compresslevel=3, mtime=0))
    assert path.stat().st_size < 1.5 * alone  # the tables add the vocabulary's integers, not the weights again


TAG_WITHOUT_SKLEARN = """
import sys
from pipeline.tagging.scoring import load_scorer
scorer = load_scorer({path!r})
proba = scorer.probabilities([{texts!r}])[0]
print(repr(proba.tolist()))
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"sklearn", "pandas", "joblib", "pipeline"}}))
print(sorted(m for m in sys.modules if m in ("pipeline.model", "pipeline.fastvec", "scipy.stats")))
"""


def test_tagging_loads_the_tables_without_importing_scikit_learn(tmp_path):
    import ast
    import subprocess
    import sys

    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    path = tmp_path / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path)})
    texts = [COOP, VICTIM, OFF]
    code = TAG_WITHOUT_SKLEARN.format(path=str(path), texts=texts)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert np.abs(np.array(ast.literal_eval(out[0])) - model.predict_proba_articles([texts])[0]).max() <= 1e-6
    assert out[1:] == ["['pipeline']", "[]"]


def test_a_gzip_pickle_of_the_model_alone_still_loads_and_tags(tmp_path):
    import gzip
    import pickle

    from pipeline.model import sha256_file
    from pipeline.tagging.scoring import load_scorer

    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(pickle.dumps(model, protocol=5)))  # the format before the compiled tables
    write_json(meta_path(path), {"sha256": sha256_file(path)})
    assert predict_proba_equal(load_model(path)[0], model)
    scorer = load_scorer(str(path))  # the tables are compiled from the model in memory
    assert scorer.compiled is not None and scorer.model is not None
    got = scorer.probabilities([[COOP, OFF]])[0]
    assert np.abs(got - model.predict_proba_articles([[COOP, OFF]])[0]).max() <= 1e-6


def test_a_model_file_of_another_format_is_a_clear_error(tmp_path):
    import gzip
    import pickle

    from pipeline import modelfile
    from pipeline.model import sha256_file

    packed = modelfile._Packed([], None, b"")
    packed.parts = ("pipeline-model/99", [], None, b"")
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(pickle.dumps(packed)))
    write_json(meta_path(path), {"sha256": sha256_file(path)})
    with pytest.raises(ModelError, match="cannot be loaded.*pipeline-model/99"):
        load_model(path)


def predict_proba_equal(a, b) -> bool:
    return np.array_equal(a.predict_proba([COOP, OFF, STATS]), b.predict_proba([COOP, OFF, STATS]))


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
    a = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    b = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    texts = [[COOP, VICTIM, OFF]]
    assert np.array_equal(predict_articles(a, texts)[0], predict_articles(b, texts)[0])


@pytest.mark.parametrize("factors", [[1.0, 1.0, 1.0, 1.0], [1.0, 0.5, 1.0, 1.0], [2.0, 0.2, 1.0, 3.0]])
def test_factors_scale_classes_and_keep_rows_normalised(factors):
    proba = np.array([[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    got = apply_factors(proba, np.array(factors))
    assert got.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert got[:, 1] / got[:, 0] == pytest.approx(factors[1] / factors[0] * proba[:, 1] / proba[:, 0])
    if factors == [1.0] * 4:
        assert got is proba


def test_off_factor_is_chosen_to_recover_missed_on_topic_paragraphs():
    classes = np.array(["cooperation", "off_topic"])
    y = np.array(["cooperation"] * 4 + ["off_topic"] * 4)
    # on-topic rows just lose to off_topic; off-topic rows are clear
    proba = np.array([[0.45, 0.55]] * 4 + [[0.05, 0.95]] * 4)
    factors, steps = choose_factors(y, proba, classes)
    assert factors[0] == 1.0 and factors[1] < 0.82
    assert steps[f"off_topic x {factors[1]}"] == max(steps.values())
    # nothing to gain: the smallest change (1.0) wins the tie
    clear = np.array([[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 4)
    assert choose_factors(y, clear, classes)[0].tolist() == [1.0, 1.0]


def test_a_tolerance_takes_the_factor_closest_to_one_among_the_near_best():
    classes = np.array(["cooperation", "off_topic"])
    # three on-topic rows need off_topic x 0.8 or less; the fourth needs x 0.4, which two off-topic rows survive
    y = np.array(["cooperation"] * 4 + ["off_topic"] * 8)
    proba = np.array([[0.45, 0.55]] * 3 + [[0.3, 0.7]] + [[0.25, 0.75]] * 2 + [[0.05, 0.95]] * 6)
    exact, steps = choose_factors(y, proba, classes)
    near, _ = choose_factors(y, proba, classes, tolerance=0.25)
    assert (exact[1], near[1]) == (0.4, 0.8)
    assert max(steps.values()) - 0.25 <= steps["off_topic x 0.8"] < steps["off_topic x 0.4"]
    assert choose_factors(y, proba, classes, tolerance=10.0)[0].tolist() == [1.0, 1.0]


def test_class_factors_raise_a_label_that_loses_to_another_on_topic_label():
    classes = np.array(["cooperation", "off_topic", "statistics"])
    y = np.array(["statistics"] * 3 + ["cooperation"] * 3 + ["off_topic"] * 3)
    proba = np.array([[0.5, 0.1, 0.4]] * 3 + [[0.8, 0.1, 0.1]] * 3 + [[0.1, 0.8, 0.1]] * 3)
    assert choose_factors(y, proba, classes, "off_factor")[0].tolist() == [1.0, 1.0, 1.0]
    factors, _ = choose_factors(y, proba, classes, "class_factors")
    pred = classes[apply_factors(proba, factors).argmax(axis=1)]
    assert pred.tolist() == y.tolist()


@pytest.mark.parametrize("rule", ["off_factor", "class_factors"])
def test_context_model_decision_rule_is_chosen_in_fit_and_applied_everywhere(rule):
    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3, decision=rule, decision_folds=3).fit(arts, labels)
    assert model.decision_factors_.shape == (4,) and model.decision_scores_
    plain = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    assert plain.decision_factors_.tolist() == [1.0] * 4 and plain.decision_scores_ == {}
    factors = np.array([1.0, 0.5, 2.0, 1.0])
    model.decision_factors_ = factors
    ruled = predict_articles(model, [[COOP, OFF]])[0]
    model.decision_factors_ = None
    raw = predict_articles(model, [[COOP, OFF]])[0]
    assert ruled == pytest.approx(apply_factors(raw, factors))


class _LengthModel:
    """Scores a paragraph by its article's length and its position, to see how rows were grouped."""

    classes_ = np.array(["a", "b"])

    def predict_proba_articles(self, articles):
        return [np.array([[len(art), i] for i in range(len(art))], dtype=float) for art in articles]


@pytest.mark.parametrize(
    ("ids", "positions", "expected"),
    [
        (None, None, [[1, 0], [1, 0], [1, 0]]),  # no ids: each row its own article
        (["A", "A", "B"], None, [[2, 0], [2, 1], [1, 0]]),  # input order inside an article
        (["A", "A", "B"], [5, 2, 0], [[2, 1], [2, 0], [1, 0]]),  # position order
        (["A", None, "A"], [None, 1, 0], [[2, 1], [1, 0], [2, 0]]),  # a missing position goes last
        (["A", float("nan"), "A"], None, [[2, 0], [1, 0], [2, 1]]),  # NaN id (a null in a frame): alone
    ],
)
def test_predict_rows_groups_rows_into_articles_and_answers_in_input_order(ids, positions, expected):
    assert predict_rows(_LengthModel(), ["x", "y", "z"], ids, positions).tolist() == expected


class _RunsCode:
    """Unpickled, it writes a marker file: what a hostile model file would do with os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.mark.parametrize("writer", ["joblib", "joblib compressed", "gzip pickle (save_model's format)"])
def test_a_pickle_that_runs_code_is_refused_even_with_a_matching_sha256(tmp_path, writer):
    import gzip
    import pickle

    import joblib

    from pipeline.model import sha256_file

    marker = tmp_path / "marker"
    path = tmp_path / "model.joblib"
    hostile = {"model": _RunsCode(marker)}
    if writer.startswith("gzip"):
        path.write_bytes(gzip.compress(pickle.dumps(hostile, protocol=5)))
    else:
        joblib.dump(hostile, path, compress=3 if writer.endswith("compressed") else 0)
    write_json(meta_path(path), {"sha256": sha256_file(path), "labels": ["off_topic"]})
    with pytest.raises(ModelError, match=r"refused: the file calls builtins\.exec.*nothing in it was run"):
        load_model(path)
    assert not marker.exists()
    joblib.load(path)  # the same file, loaded the plain way: the code runs
    assert marker.read_text() == "ran"


@pytest.mark.parametrize(
    ("features", "classifier", "context"),
    [
        ("syllable", "logreg", False),
        ("syllable+char", "linearsvc", False),
        ("syllable+word+char", "logreg", False),
        ("syllable", "logreg", True),
        ("syllable+char", "linearsvc", True),
    ],
)
def test_every_kind_of_model_the_project_trains_loads_with_the_trusted_types(tmp_path, features, classifier, context):
    params = {**PARAMS, "features": features, "classifier": classifier}
    arts, labels = toy_articles()
    if context:
        model = ContextModel(**params, cv=3, title=True).fit(arts, labels)
    else:
        texts = [p for a, ls in zip(arts, labels, strict=True) for p, lab in zip(a, ls, strict=True) if lab]
        model = build_model(params).fit(texts, [lab for ls in labels for lab in ls if lab])
    path = tmp_path / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path)})
    loaded, _ = load_model(path)
    assert predict(loaded, [COOP, OFF])[1] == pytest.approx(predict(model, [COOP, OFF])[1])


# Trains the toy context model in a fresh interpreter and prints the saved file's sha256: a new
# process has other memory addresses and (with another PYTHONHASHSEED) another string hash order.
TRAIN_AND_SAVE = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from test_model import PARAMS, toy_articles

import hashlib

import pandas as pd

from pipeline.model import ContextModel, write_json
from pipeline.train import save_model
from pipeline.train import training_record

arts, labels = toy_articles()
model = ContextModel(**{{**PARAMS, "min_df": 1}}, cv=3, title=True).fit(arts, labels, n_jobs=int(sys.argv[2]))
sha = save_model(model, Path(sys.argv[1]))
rows = [
    (f"a{{i}}", j, hashlib.sha256(text.encode()).hexdigest()[:16], lab)
    for i, labs in enumerate(labels)
    for j, (text, lab) in enumerate(zip(arts[i], labs))
    if lab
]
train = pd.DataFrame(rows, columns=["article_id", "paragraph", "hash", "label"]).assign(method="manual")
record = Path(sys.argv[1]).with_suffix(".train.json")
write_json(record, training_record(model, {{**PARAMS, "min_df": 1}}, train, sha))
print(sha, hashlib.sha256(record.read_bytes()).hexdigest())
"""


def test_same_inputs_give_the_same_model_and_training_record_bytes_in_any_process_and_job_count(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = TRAIN_AND_SAVE.format(tests=str(Path(__file__).parent))
    shas = []
    for seed, n_jobs in (("1", "1"), ("2", "2"), ("3", "1")):
        # the first process compiles the tables' numba kernels into an empty cache, the others read them from it
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONPATH": str(root),
            "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        }
        out = tmp_path / f"model-{seed}.joblib"
        done = subprocess.run(
            [sys.executable, "-c", script, str(out), n_jobs], env=env, cwd=root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        shas.append(tuple(done.stdout.split()[-2:]))  # the model file's sha256, the training record's
    assert len(set(shas)) == 1, shas


def test_a_fold_that_lacks_a_label_still_gives_every_column():
    # a fold of a small training set may have no `statistics` paragraph at all
    fitted = build_model(PARAMS).fit([COOP, OFF, VICTIM], ["cooperation", "off_topic", "victim_support"])
    classes = np.array(["cooperation", "off_topic", "statistics", "victim_support"])
    got = proba_in(classes, fitted, [COOP, OFF])
    assert got.shape == (2, 4) and (got[:, 2] == 0).all()
    assert got[:, [0, 1, 3]] == pytest.approx(fitted.predict_proba([COOP, OFF]))


def test_every_hyperparameter_of_the_context_model_is_a_constructor_argument():
    from sklearn.base import clone

    model = ContextModel(**PARAMS, cv=3)
    got = model.get_params()
    assert {k: got[k] for k in PARAMS} == PARAMS and got["cv"] == 3
    changed = clone(model).set_params(context_C=1.0, C=2.0, min_df=3)
    paragraph = {k: v for k, v in PARAMS.items() if not k.startswith("context_")}
    assert changed.second_params() == {**paragraph, "classifier": "linearsvc", "C": 1.0, "min_df": 3}
    assert changed.paragraph_params()["C"] == 2.0 and model.get_params()["C"] == 10.0


def test_a_train_section_maps_to_the_context_models_arguments():
    train = {
        **PARAMS,
        "context_folds": 4,
        "context_title": True,
        "context_window": 2,
        "context_prob_window": 3,
        "context_article_probs": True,
        "top_k": 2,
        "decision": "off_factor",
        "decision_folds": 3,
        "decision_tolerance": 0.01,
        "synthetic": False,
    }
    model = ContextModel.from_params(train, decision_folds=2)
    got = model.get_params()
    assert (got["cv"], got["title"], got["window"], got["top_k"], got["decision"]) == (4, True, 2, 2, "off_factor")
    assert (got["prob_window"], got["article_probs"], got["decision_tolerance"]) == (3, True, 0.01)
    assert got["decision_folds"] == 2 and model.paragraph_params() == {k: PARAMS[k] for k in model.paragraph_params()}


@pytest.mark.parametrize(
    ("text", "fold", "expected"),
    [
        ("Năm 2023 có 312 nạn nhân, tăng 18%.", True, "Năm 0000 có 000 nạn nhân, tăng 00%."),
        ("Năm 2023 có 312 nạn nhân.", False, "Năm 2023 có 312 nạn nhân."),
        ("Hoà bình 0 ٣ 𝟘", True, "Hòa bình 0 ٣ 𝟘"),  # normalised too; only ASCII digits fold
    ],
)
def test_normalize_all_folds_ascii_digits_when_asked(text, fold, expected):
    from pipeline.model import normalize_all

    assert normalize_all([text], fold_digits=fold) == [expected]


def test_folded_digits_make_figures_of_any_value_one_feature():
    model = build_model({**PARAMS, "fold_digits": True}).fit([STATS, OFF], ["statistics", "off_topic"])
    vec = model.named_steps["features"]
    a, b = (vec.transform(model.named_steps["normalize"].transform([t])) for t in (STATS, STATS.replace("300", "587")))
    assert (a != b).nnz == 0 and "000 vụ" in vec.vocabulary_


def test_article_columns_are_each_articles_mean_and_max_and_farther_neighbours():
    from pipeline.context import article_dense

    P = np.array([[0.1, 0.9], [0.5, 0.5], [0.3, 0.7], [1.0, 0.0]])
    bounds = np.array([0, 3, 3, 4])  # an article of three paragraphs, an empty one, one of one
    article = np.repeat(np.arange(3), np.diff(bounds))
    back, far, mean, peak = article_dense(P, bounds, article, window=1, prob_window=2, article_probs=True)
    assert np.allclose(back, [[0, 0], [0, 0], [0.1, 0.9], [0, 0]])  # two before, inside the article
    assert np.allclose(far, [[0.3, 0.7], [0, 0], [0, 0], [0, 0]])  # two after
    assert np.allclose(mean[:3], [0.3, 0.7]) and np.allclose(mean[3], [1.0, 0.0])
    assert np.allclose(peak[:3], [0.5, 0.9]) and np.allclose(peak[3], [1.0, 0.0])
    assert article_dense(P, bounds, article, window=2, prob_window=2, article_probs=False) == []


def test_a_model_saved_before_the_article_columns_and_folded_digits_scores_as_it_did():
    """Files from before `fold_digits`, `prob_window` and `article_probs` lack them; both paths read them as off."""
    from pipeline.tagging.compiled import CompiledModel, compiled_state

    arts, labels = toy_articles()
    model = ContextModel(**PARAMS, cv=3).fit(arts, labels)
    state = compiled_state(model)
    want = np.vstack(model.predict_proba_articles(arts))
    for name in ("fold_digits", "prob_window", "article_probs"):
        delattr(model, name)
    del state["prob_window"], state["article_probs"], state["vocab"]["fold_digits"]
    assert np.array_equal(np.vstack(model.predict_proba_articles(arts)), want)
    assert np.abs(np.vstack(CompiledModel(state).predict_proba_articles(arts)) - want).max() <= 1e-6
