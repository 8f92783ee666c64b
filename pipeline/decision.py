"""The decision rule: per-class factors on the probabilities, chosen on out-of-fold predictions (numpy only)."""

from __future__ import annotations

import numpy as np


def apply_factors(proba: np.ndarray, factors: np.ndarray | None) -> np.ndarray:
    """Multiply each class's probability by its factor and renormalise the rows (the decision rule; ones change nothing)."""
    if factors is None or not len(proba) or np.all(factors == 1.0):
        return proba
    proba = proba * factors
    return proba / proba.sum(axis=1, keepdims=True)


# Factors tried by the out-of-fold decision rule: for off_topic (below 1 favours the on-topic
# labels), then, with `class_factors`, for each on-topic label in turn.
OFF_FACTORS = tuple(round(0.2 + 0.05 * i, 2) for i in range(17))
LABEL_FACTORS = tuple(round(0.5 + 0.1 * i, 1) for i in range(26))


def decision_score(y: np.ndarray, pred: np.ndarray, n_classes: int, off: int) -> float:
    """What the decision rule maximises: macro-F1 plus on-topic F1, of class indices (off: off_topic's).

    F1 is 2tp / (2tp + fp + fn), 0 where a class is never true nor predicted (scikit-learn's
    `zero_division=0`); counted with bincount, as this runs for every factor tried.
    """

    def f1(tp, fp, fn):
        denom = 2 * tp + fp + fn
        return np.divide(2 * tp, denom, out=np.zeros(np.shape(tp)), where=denom > 0)

    tp = np.bincount(y[y == pred], minlength=n_classes)
    n_true, n_pred = np.bincount(y, minlength=n_classes), np.bincount(pred, minlength=n_classes)
    macro = f1(tp, n_pred - tp, n_true - tp).mean()
    on_true, on_pred = y != off, pred != off
    on_tp = int((on_true & on_pred).sum())
    return float(macro + f1(on_tp, int(on_pred.sum()) - on_tp, int(on_true.sum()) - on_tp))


def choose_factors(
    y: np.ndarray, proba: np.ndarray, classes, rule: str = "off_factor", tolerance: float = 0.0
) -> tuple[np.ndarray, dict]:
    """Per-class factors chosen on out-of-fold probabilities, and the score of each step.

    `off_factor` searches one factor for off_topic; `class_factors` then adjusts each on-topic label's
    factor in turn (two sweeps). Each step takes the factor closest to 1 (the smallest change) among
    those scoring within `tolerance` of the best: the out-of-fold optimum is flat, and where it lies
    overshoots on unseen articles (README, "The decision rule").
    """
    classes = np.asarray(classes)
    factors = np.ones(len(classes))
    off = list(classes).index("off_topic")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in y], dtype=int)

    def best(j, grid):
        scores = {}
        for f in grid:
            trial = factors.copy()
            trial[j] = f
            scores[f] = round(decision_score(y, apply_factors(proba, trial).argmax(axis=1), len(classes), off), 6)
        top = max(scores.values())
        return min((f for f in grid if scores[f] >= top - tolerance), key=lambda f: abs(f - 1.0)), scores

    factors[off], scores = best(off, OFF_FACTORS)
    steps = {f"off_topic x {f}": v for f, v in scores.items()}
    if rule == "class_factors":
        for sweep in (1, 2):
            for j in (j for j in range(len(classes)) if j != off):
                factors[j], scores = best(j, LABEL_FACTORS)
                steps[f"sweep {sweep}: {classes[j]} x {factors[j]}"] = scores[factors[j]]
    return factors, steps
