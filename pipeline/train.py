"""Stage `train`: fit the model on the training split, save it, and log the run to MLflow."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd

from pipeline.config import MODEL, PARAMS, TOKENS, TRAIN, load_params, section
from pipeline.model import build_model, save_model, write_json


def data_hash(df: pd.DataFrame) -> str:
    """Hash of the labeled references (not the file bytes), so the same labels give the same hash."""
    rows = df[["article_id", "paragraph", "hash", "label"]].astype(str).agg("\t".join, axis=1)
    return hashlib.sha256("\n".join(sorted(rows)).encode("utf-8")).hexdigest()[:16]


def fit(train: pd.DataFrame, params: dict, word_cache: dict | None = None):
    """Fit a fresh model on the training rows; return it with the seconds it took."""
    model = build_model(params, word_cache)
    start = time.perf_counter()
    model.fit(train.text.tolist(), train.label.tolist())
    return model, time.perf_counter() - start


def read_word_cache(params: dict) -> dict | None:
    """The tokenize stage's segmentations, when the features use words."""
    if "word" not in params["features"].split("+") or not TOKENS.exists():
        return None
    tokens = pd.read_parquet(TOKENS)
    return dict(zip(tokens.text, tokens.words, strict=True))


def info_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".train.json")


def main(params_path: Path = PARAMS) -> None:
    from pipeline import tracking  # MLflow only in entry points

    params = load_params(params_path)
    p = section(params, "train")
    train = pd.read_parquet(TRAIN)
    model, seconds = fit(train, p, read_word_cache(p))
    info = {
        "labels": [str(c) for c in model.classes_],
        "params": p,
        "data_hash": data_hash(train),
        "n_train": len(train),
        "n_train_manual": int((train.method == "manual").sum()),
        "train_seconds": round(seconds, 2),
    }
    info["sha256"] = save_model(model, MODEL)
    info["git_commit"] = tracking.git_commit()
    info["mlflow_run_id"] = tracking.log_training(params, info, MODEL)
    write_json(info_path(MODEL), info)
    print(f"train: {p['features']} + {p['classifier']} (C={p['C']}) on {len(train)} paragraphs in {seconds:.1f}s -> {MODEL}")
