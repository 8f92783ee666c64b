"""The context model's article features that are not TF-IDF blocks (numpy only).

Shared by `pipeline.model.ContextModel` and its compiled copy for tagging, which must not import
scikit-learn, so both build the same columns in the same order.
"""

from __future__ import annotations

import numpy as np


def offsets(window: int, start: int = 1) -> list[int]:
    """The neighbours read, as offsets in the article: -start, start, ... -window, window."""
    return [d for k in range(start, window + 1) for d in (-k, k)]


def neighbour(article: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """For every paragraph (`article`: its article's number), the row `offset` away and whether it is in the same article.

    Rows past the article's ends point at row 0 and are marked outside, so their features are zeroed.
    """
    n = len(article)
    idx = np.arange(n) + offset
    inside = (idx >= 0) & (idx < n)
    inside[inside] &= article[idx[inside]] == article[inside]
    return np.where(inside, idx, 0), inside


def article_dense(P: np.ndarray, bounds, article: np.ndarray, window: int, prob_window: int, article_probs: bool):
    """The second pass's dense columns past the first pass's own: farther neighbours' probabilities, the article's mean and max.

    `bounds`: where each article starts, and the end (empty articles allowed).
    """
    dense = []
    for offset in offsets(prob_window, window + 1):
        idx, inside = neighbour(article, offset)
        dense.append(P[idx] * inside[:, None])
    if article_probs:
        sizes = np.diff(bounds)
        starts, sizes = np.asarray(bounds[:-1])[sizes > 0], sizes[sizes > 0]
        mean = np.add.reduceat(P, starts, axis=0) / sizes[:, None]
        peak = np.maximum.reduceat(P, starts, axis=0)
        dense += [np.repeat(mean, sizes, axis=0), np.repeat(peak, sizes, axis=0)]
    return dense
