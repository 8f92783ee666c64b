"""Stage `train`: fit the model on the training split, save it, and log the run to MLflow."""

from __future__ import annotations

import time
from pathlib import Path

import joblib
import pandas as pd
from threadpoolctl import threadpool_limits

from pipeline import modelfile
from pipeline.background import Background
from pipeline.config import ARTICLES, MODEL, PARAMS, TOKENS, TRAIN, TRAIN_INFO, load_params, section
from pipeline.model import ContextModel, build_model, drop_caches, write_json
from pipeline.runs import rows_hash


def save_model(model, path: Path) -> str:
    """Save the model with its compiled tables for tagging (`modelfile.pack`), atomically; return the file's sha256 for its metadata."""
    from pipeline.tagging.compiled import compiled_state

    model = drop_caches(model)
    return modelfile.write(path, modelfile.pack(model, compiled_state(model)))


def data_hash(df: pd.DataFrame) -> str:
    """Hash of the labeled references (not the file bytes), so the same labels give the same hash."""
    return rows_hash(df, ["article_id", "paragraph", "hash", "label"])


def article_lists(articles: pd.DataFrame, labeled: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list]]:
    """The articles that `labeled` touches, in id order: their ids, paragraphs, and labels (None where unlabeled)."""
    gold = dict(zip(zip(labeled.article_id, labeled.paragraph, strict=True), labeled.label, strict=True))
    part = articles[articles.article_id.isin(set(labeled.article_id))].sort_values(["article_id", "paragraph"])
    aids, texts = part.article_id.tolist(), part.text.tolist()
    found = [gold.get(key) for key in zip(aids, part.paragraph.tolist(), strict=True)]
    starts = [i for i in range(len(aids)) if i == 0 or aids[i] != aids[i - 1]]
    bounds = list(zip(starts, [*starts[1:], len(aids)], strict=True))
    return [aids[a] for a, _ in bounds], [texts[a:b] for a, b in bounds], [found[a:b] for a, b in bounds]


def fit(train: pd.DataFrame, articles: pd.DataFrame, params: dict, word_cache: dict | None = None, n_jobs: int = 1):
    """Fit a fresh model on the training rows (in their articles, for the context model); return it and the seconds.

    `n_jobs` processes fit the context model's out-of-fold folds; the model is the same for any value.
    """
    start = time.perf_counter()
    # One BLAS thread in this process and in the fold workers: a sum split over threads rounds
    # differently, so the thread count (set by n_jobs and by the machine's cores) would change the model.
    if not params["synthetic"]:
        train = train[train.method != "synthetic"]
    with threadpool_limits(limits=1), joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        model = _fit(train, articles, params, word_cache, n_jobs)
    return model, time.perf_counter() - start


def _fit(train: pd.DataFrame, articles: pd.DataFrame, params: dict, word_cache: dict | None, n_jobs: int):
    if params["context"]:
        _, paras, labels = article_lists(articles, train)
        model = ContextModel.from_params(params, word_cache)
        model.fit(paras, labels, n_jobs=n_jobs)
    else:
        model = build_model(params, word_cache)
        model.fit(train.text.tolist(), train.label.tolist())
    return model


def decision_factors(model) -> dict[str, float]:
    """The decision rule's factor per label (all 1.0 without a rule or for a paragraph model)."""
    factors = getattr(model, "decision_factors_", None)
    return {str(c): float(factors[j]) if factors is not None else 1.0 for j, c in enumerate(model.classes_)}


def read_word_cache(params: dict) -> dict | None:
    """The tokenize stage's segmentations, when the features use words."""
    if "word" not in params["features"].split("+") or not TOKENS.exists():
        return None
    tokens = pd.read_parquet(TOKENS)
    return dict(zip(tokens.text, tokens.words, strict=True))


def training_record(model, p: dict, train: pd.DataFrame, sha256: str) -> dict:
    """What models/model.train.json holds: the same for the same inputs, so nothing of the run itself.

    The run's time, commit and MLflow run id go to MLflow (and the stage's printed line): in a DVC
    output they would make every training a change for `git status` and for the stages after it.
    """
    return {
        "labels": [str(c) for c in model.classes_],
        "params": p,
        "data_hash": data_hash(train),
        "n_train": len(train),
        "n_train_manual": int((train.method == "manual").sum()),
        "decision_factors": decision_factors(model),
        "sha256": sha256,
    }


def main(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    # MLflow only in entry points, here in a second process that imports it and opens the store
    # while the model is fitted
    with Background("pipeline.tracking", "configure", params) as tracking:
        p = section(params, "train")
        train = pd.read_parquet(TRAIN)
        n_jobs = section(params, "resources")["n_jobs"]
        model, seconds = fit(train, pd.read_parquet(ARTICLES), p, read_word_cache(p), n_jobs)
        info = training_record(model, p, train, save_model(model, MODEL))
        # the run's own values (time, commit, run id) go to MLflow and the line below, not to the DVC outputs
        run_id = tracking("log_training", params, info, MODEL, seconds)
    write_json(TRAIN_INFO, info)
    kind = "context model" if p["context"] else "paragraph model"
    factors = ", ".join(f"{c} x {f}" for c, f in info["decision_factors"].items() if f != 1.0)
    rule = f", {factors} (chosen out-of-fold)" if factors else ""
    print(
        f"train: {kind}, {p['features']} + {p['classifier']} (C={p['C']}){rule} on {len(train)} paragraphs "
        f"in {seconds:.1f}s -> {MODEL} (MLflow run {run_id})"
    )
