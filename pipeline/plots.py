"""The plots as PNG images (confusion matrix, precision-recall curves, learning curve), readable with no network.

`dvc plots show` draws the CSV plots with Vega loaded from a CDN, blank offline; these images are
declared as image plots in dvc.yaml too, so the page shows them anyway, and they go to MLflow.
Fixed size, font and metadata, so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pipeline.files import atomic_write_bytes

DPI = 100
# No timestamp or version in the file: identical inputs give identical bytes.
METADATA = {"Software": None}


def _figure(width: float = 6.4, height: float = 4.8):
    import matplotlib

    matplotlib.use("Agg")  # no display; the default backend would look for one
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(width, height), dpi=DPI)


def _save(plt, fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata=METADATA)
    plt.close(fig)
    atomic_write_bytes(Path(path), lambda f: f.write(buf.getvalue()))


def confusion_png(gold: list[str], pred: list[str], labels: list[str], path: Path) -> None:
    """The confusion matrix (rows gold, columns predicted), counts in the cells, shaded by row share."""
    index = {lab: i for i, lab in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        if g in index and p in index:
            counts[index[g], index[p]] += 1
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    plt, (fig, ax) = _figure(6.4, 5.4)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Confusion matrix ({len(gold)} test paragraphs)")
    _save(plt, fig, path)


def pr_png(curves: dict, path: Path) -> None:
    """One precision-recall curve per label (tables with `recall` and `precision` columns) on one chart."""
    plt, (fig, ax) = _figure()
    for lab, curve in curves.items():
        ax.plot(curve["recall"], curve["precision"], label=lab)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall per label (one vs rest)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    _save(plt, fig, path)


def learning_curve_png(table, path: Path) -> None:
    """Macro-F1 and on-topic F1 against the manual training paragraphs (a `learning_curve` table)."""
    plt, (fig, ax) = _figure()
    ax.plot(table["train_manual"], table["macro_f1"], marker="o", label="macro-F1")
    ax.plot(table["train_manual"], table["on_topic_f1"], marker="s", label="on-topic F1")
    ax.set_xlabel("manual training paragraphs")
    ax.set_ylabel("F1 on the test split")
    ax.set_ylim(0, 1)
    ax.set_title("Learning curve (grouped test split)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(plt, fig, path)
