"""Unit tests of the evaluate stage's pure functions (rows written here, no corpus text)."""

import numpy as np
import pandas as pd

from pipeline.evaluate import errors


def test_misclassified_rows_come_in_one_order_whatever_the_input_order():
    # three errors with the same probability of their prediction: the order must not depend on the input's
    test = pd.DataFrame(
        {
            "article_id": ["b", "a", "a", "c", "b"],
            "paragraph": [0, 2, 1, 0, 1],
            "hash": list("vwxyz"),
            "label": ["off_topic", "statistics", "statistics", "off_topic", "statistics"],
            "text": ["t1", "t2", "t3", "t4", "t5"],
        }
    )
    classes = ["off_topic", "statistics"]
    proba = np.array([[0.4, 0.6], [0.6, 0.4], [0.6, 0.4], [0.9, 0.1], [0.3, 0.7]])
    pred = [classes[i] for i in proba.argmax(axis=1)]
    got = errors(test, pred, proba, classes)
    order = np.random.default_rng(0).permutation(len(test))
    shuffled = errors(test.iloc[order].reset_index(drop=True), [pred[i] for i in order], proba[order], classes)
    assert got.to_csv(index=False) == shuffled.to_csv(index=False)
    assert list(zip(got.article_id, got.paragraph, strict=True)) == [("a", 1), ("a", 2), ("b", 0)]
