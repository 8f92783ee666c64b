"""The PNG plots: real images, the same bytes for the same numbers, written atomically."""

import pandas as pd
import pytest

from pipeline.plots import confusion_png, learning_curve_png, pr_png

LABELS = ["cooperation", "victim_support", "statistics", "off_topic"]
GOLD = ["cooperation", "off_topic", "statistics", "off_topic", "victim_support"]
PRED = ["cooperation", "off_topic", "off_topic", "off_topic", "cooperation"]
CURVE = pd.DataFrame({"recall": [1.0, 0.5, 0.0], "precision": [0.4, 0.8, 1.0]})
TABLE = pd.DataFrame({"train_manual": [100, 400], "macro_f1": [0.5, 0.7], "on_topic_f1": [0.6, 0.8]})


@pytest.mark.parametrize(
    "draw",
    [
        lambda path: confusion_png(GOLD, PRED, LABELS, path),
        lambda path: pr_png({"cooperation": CURVE, "off_topic": CURVE}, path),
        lambda path: learning_curve_png(TABLE, path),
    ],
    ids=["confusion", "precision_recall", "learning_curve"],
)
def test_png_is_an_image_and_the_same_bytes_twice(tmp_path, draw):
    first, second = tmp_path / "a" / "plot.png", tmp_path / "plot.png"
    draw(first)
    draw(second)
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["plot.png"]  # no temporary file left behind
