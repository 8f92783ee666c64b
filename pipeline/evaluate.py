"""Stage `evaluate`: score the model on the grouped test split; metrics, plots and errors for DVC and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_curve, precision_recall_fscore_support

from pipeline.background import Background
from pipeline.config import (
    ARTICLES,
    LABELS,
    METRICS,
    MISCLASSIFIED,
    MODEL,
    ON_TOPIC,
    PARAMS,
    PLOTS_DIR,
    PNG_CONFUSION,
    PNG_PR,
    TEST,
    TRAIN_INFO,
    load_params,
    section,
)
from pipeline.model import load_model, meta_path, predict_articles, write_json
from pipeline.plots import confusion_png, pr_png
from pipeline.runs import prediction_refs
from pipeline.train import article_lists


def score(gold: list[str], pred: list[str]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1, and on-topic vs off-topic as a binary task."""
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=list(LABELS), zero_division=0)
    per_label = {
        lab: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, lab in enumerate(LABELS)
    }
    g_on = [g in ON_TOPIC for g in gold]
    p_on = [x in ON_TOPIC for x in pred]
    bp, br, bf, _ = precision_recall_fscore_support(g_on, p_on, average="binary", zero_division=0)
    return {
        "n_test": len(gold),
        "accuracy": round(float(accuracy_score(gold, pred)), 4),
        "macro_f1": round(float(np.mean(f)), 4),
        "on_topic": {"precision": round(float(bp), 4), "recall": round(float(br), 4), "f1": round(float(bf), 4)},
        "per_label": per_label,
    }


def pr_curves(gold: list[str], proba: np.ndarray, classes: list[str], points: int) -> dict[str, pd.DataFrame]:
    """One-vs-rest precision-recall curve per label, thinned to about `points` points."""
    curves = {}
    for j, lab in enumerate(classes):
        y = np.array([g == lab for g in gold])
        if not y.any():
            continue
        prec, rec, thr = precision_recall_curve(y, proba[:, j])
        keep = np.unique(np.linspace(0, len(thr) - 1, min(points, len(thr))).astype(int))
        curves[lab] = pd.DataFrame(
            {"recall": rec[keep].round(4), "precision": prec[keep].round(4), "threshold": thr[keep].round(4)}
        )
    return curves


def errors(test: pd.DataFrame, pred: list[str], proba: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The misclassified test paragraphs with both labels and the model's probabilities."""
    col = {c: j for j, c in enumerate(classes)}
    df = test[["article_id", "paragraph", "hash", "label"]].rename(columns={"label": "gold"})
    df["predicted"] = pred
    df["p_predicted"] = proba.max(axis=1).round(4)
    df["p_gold"] = [round(float(proba[i, col[g]]), 4) for i, g in enumerate(test.label)]
    df["text"] = test.text
    # a stable, complete order: the same rows give the same file
    wrong = df[df.gold != df.predicted]
    return wrong.sort_values(["p_predicted", "article_id", "paragraph"], ascending=[False, True, True], kind="stable")


def predict_in_context(model, test: pd.DataFrame, articles: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Score the test paragraphs inside their whole articles, as tagging does; rows in `test` order."""
    ids, paras, _ = article_lists(articles, test)
    probas = predict_articles(model, paras)
    row = {(aid, i): probas[k][i] for k, aid in enumerate(ids) for i in range(len(paras[k]))}
    proba = np.array([row[(a, i)] for a, i in zip(test.article_id, test.paragraph, strict=True)])
    return [str(model.classes_[j]) for j in proba.argmax(axis=1)], proba


def main(params_path: Path = PARAMS) -> None:
    params = load_params(params_path)
    # MLflow only in entry points, here in a second process that imports it and opens the store
    # while the test split is scored
    with Background("pipeline.tracking", "configure", params) as tracking:
        _evaluate(params, tracking)


def _evaluate(params: dict, tracking: Background) -> None:
    """Score the test split inside its articles, write the metrics, plots and errors, and log them to the training run."""
    p = section(params, "evaluate")
    info = json.loads(TRAIN_INFO.read_text(encoding="utf-8"))
    model, _ = load_model(MODEL, TRAIN_INFO)
    test = pd.read_parquet(TEST)
    gold = test.label.tolist()
    pred, proba = predict_in_context(model, test, pd.read_parquet(ARTICLES))
    classes = [str(c) for c in model.classes_]
    metrics = score(gold, pred)
    write_json(METRICS, metrics)

    PLOTS_DIR.joinpath("pr").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"actual": gold, "predicted": pred}).to_csv(PLOTS_DIR / "confusion.csv", index=False)
    curves = pr_curves(gold, proba, classes, p["pr_points"])
    for lab, curve in curves.items():
        curve.to_csv(PLOTS_DIR / "pr" / f"{lab}.csv", index=False)
    confusion_png(gold, pred, list(LABELS), PNG_CONFUSION)
    pr_png(curves, PNG_PR)
    MISCLASSIFIED.parent.mkdir(parents=True, exist_ok=True)
    errors(test, pred, proba, classes).to_csv(MISCLASSIFIED, index=False)

    run_id = tracking(
        "log_evaluation",
        params,
        tracking("training_run_id", params, info["sha256"]),
        metrics,
        [PLOTS_DIR / "confusion.csv", MISCLASSIFIED, PNG_CONFUSION, PNG_PR],
        prediction_refs(test, pred, proba),  # which label each test paragraph got, for `runs compare`
    )
    write_json(meta_path(MODEL), {**info, "metrics": metrics})
    on = metrics["on_topic"]
    print(
        f"evaluate: macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}, "
        f"on-topic P/R/F1 {on['precision']:.3f}/{on['recall']:.3f}/{on['f1']:.3f} on {len(gold)} test paragraphs -> {METRICS} (MLflow run {run_id})"
    )
