"""Stage `learning_curve`: grouped-test macro-F1 against the share of training articles, to see if more labels still help.

Each fraction below 100% is a full training, so the refits run only with `learning_curve.refit: true`
(`dvc exp run -S learning_curve.refit=true`); otherwise the curve is the trained model's point alone
and a changed training param costs one training, not four.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.background import Background
from pipeline.config import (
    ARTICLES,
    LEARNING_CURVE,
    METRICS,
    PARAMS,
    PNG_LEARNING_CURVE,
    TEST,
    TRAIN,
    TRAIN_INFO,
    load_params,
    section,
)
from pipeline.plots import learning_curve_png


def subsample(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The training rows of a seeded `fraction` of the training articles (whole articles, never split)."""
    ids = np.array(sorted(train.article_id.unique()))
    keep = np.random.default_rng(seed).permutation(len(ids))[: max(1, round(fraction * len(ids)))]
    return train[train.article_id.isin(set(ids[keep]))]


def curve(
    train, test, articles, params: dict, fractions: list[float], seed: int, full: dict | None = None, n_jobs: int = 1
) -> pd.DataFrame:
    """Fit on each fraction of the training articles and score on the full test split.

    `full` is the test scores of the model already trained on all of it: the 100% point is taken
    from there rather than fitted again. Training times are printed, not written: the table is the
    same for the same inputs.
    """
    # only a refit needs scikit-learn: the 100% point alone is read from the scores (a faster retrain loop)
    if any(frac < 1.0 or not full for frac in fractions):
        from pipeline.evaluate import predict_in_context, score
        from pipeline.train import fit
    rows = []
    for frac in fractions:
        part = subsample(train, frac, seed)
        took = ""
        if frac >= 1.0 and full:
            s = full
        else:
            model, seconds = fit(part, articles, params, n_jobs=n_jobs)
            pred, _ = predict_in_context(model, test, articles)
            s = score(test.label.tolist(), pred)
            took = f" (trained in {seconds:.1f}s)"
        rows.append(
            {
                "fraction": frac,
                "train_paragraphs": len(part),
                "train_manual": int((part.method == "manual").sum()),
                "macro_f1": s["macro_f1"],
                "on_topic_f1": s["on_topic"]["f1"],
            }
        )
        print(
            f"learning_curve: {frac:.0%} of training articles, {len(part)} paragraphs -> macro-F1 {s['macro_f1']:.3f}{took}",
            flush=True,
        )
    return pd.DataFrame(rows)


def main(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    # MLflow only in entry points, here in a second process that imports it while the curve is drawn
    with Background("pipeline.tracking", "configure", params) as tracking:
        p = section(params, "learning_curve")
        info = json.loads(TRAIN_INFO.read_text(encoding="utf-8"))
        full = json.loads(METRICS.read_text(encoding="utf-8"))
        fractions = p["fractions"] if p["refit"] else [1.0]
        table = curve(
            pd.read_parquet(TRAIN),
            pd.read_parquet(TEST),
            pd.read_parquet(ARTICLES),
            section(params, "train"),
            fractions,
            p["seed"],
            full,
            section(params, "resources")["n_jobs"],
        )
        LEARNING_CURVE.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(LEARNING_CURVE, index=False)
        learning_curve_png(table, PNG_LEARNING_CURVE)
        run_id = tracking("training_run_id", params, info["sha256"])
        tracking("log_files", params, run_id, [LEARNING_CURVE, PNG_LEARNING_CURVE], "evaluation")
    if not p["refit"]:
        print("learning_curve: the 100% point only; `dvc exp run -S learning_curve.refit=true` refits the fractions")
