"""Cross-validation: folds, the paired comparison and param overrides (tables written here)."""

import pandas as pd
import pytest

from pipeline.crossval import apply_overrides, cv_folds, paired, summarize


def labeled_table(n_articles=40):
    rows = []
    for a in range(n_articles):
        file = ["trafficking", "related", "general", "seeds"][a % 4]
        for p in range(3):
            rows.append({"article_id": f"{file}/{a}", "paragraph": p, "method": "manual", "file": file})
    rows.append({"article_id": "general/mined", "paragraph": 0, "method": "rule:x", "file": "general"})
    rows.append({"article_id": "synthetic/w/1", "paragraph": 0, "method": "synthetic", "file": "synthetic"})
    return pd.DataFrame(rows)


def test_folds_are_disjoint_whole_manual_articles_stratified_by_file_and_seeded():
    df = labeled_table()
    folds = cv_folds(df, 5, seed=3)
    every = [a for f in folds for a in f]
    assert sorted(every) == sorted(df[df.method == "manual"].article_id.unique())  # each article once
    assert "general/mined" not in every and "synthetic/w/1" not in every  # never scored
    for fold in folds:  # 40 articles, 10 per file, 5 folds: 2 of each file per fold
        assert pd.Series([a.split("/")[0] for a in fold]).value_counts().to_dict() == {
            "trafficking": 2,
            "related": 2,
            "general": 2,
            "seeds": 2,
        }
    assert cv_folds(df, 5, seed=3) == folds
    assert cv_folds(df, 5, seed=4) != folds


def fold(macro, on):
    per = {lab: {"f1": macro} for lab in ("cooperation", "victim_support", "statistics", "off_topic")}
    return {"macro_f1": macro, "on_topic": {"f1": on, "recall": on}, "per_label": per}


def test_paired_difference_beats_noise_only_when_the_mean_gain_exceeds_its_spread():
    base = {"folds_key": "k", "folds": [fold(0.70, 0.80), fold(0.60, 0.70), fold(0.65, 0.75)]}
    steady = {"folds_key": "k", "folds": [fold(0.72, 0.80), fold(0.62, 0.69), fold(0.67, 0.76)]}
    noisy = {"folds_key": "k", "folds": [fold(0.75, 0.80), fold(0.57, 0.70), fold(0.66, 0.75)]}
    diff = paired(steady, base)
    assert diff["macro_f1"]["mean"] == pytest.approx(0.02) and diff["macro_f1"]["beats_noise"]
    assert not diff["on_topic_f1"]["beats_noise"]  # 0.00 mean gain
    assert not paired(noisy, base)["macro_f1"]["beats_noise"]
    with pytest.raises(ValueError, match="same folds"):
        paired({**steady, "folds_key": "other"}, base)
    assert summarize(base["folds"])["macro_f1"] == {"mean": 0.65, "std": 0.05}


@pytest.mark.parametrize(
    ("item", "expected"),
    [("train.C=0.5", 0.5), ("train.decision=none", "none"), ("train.synthetic=true", True)],
)
def test_overrides_read_values_as_yaml(item, expected):
    params = {"train": {"C": 10.0, "decision": "off_factor", "synthetic": False}}
    key = item.split("=")[0].split(".")[1]
    assert apply_overrides(params, [item])["train"][key] == expected
    assert params["train"]["C"] == 10.0  # the input is not changed


@pytest.mark.parametrize("item", ["train.nope=1", "C=1", "train.C"])
def test_unknown_override_is_an_error(item):
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        apply_overrides({"train": {"C": 1.0}}, [item])
