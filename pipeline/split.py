"""Stage `split`: a train/test split grouped by article (no article on both sides), stratified, seeded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.config import PARAMS, PREPARED, TEST, TRAIN, load_params, section


def grouped_split(df: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out about `test_size` of the articles, keeping each label's share close on both sides.

    Only manual labels are scored: rule-mined rows always go to training.
    """
    manual = df[df.method == "manual"]
    n_splits = max(2, round(1 / test_size))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, test_idx = next(folds.split(manual, manual.label, groups=manual.article_id))
    test_articles = set(manual.article_id.iloc[test_idx])
    is_test = df.article_id.isin(test_articles) & (df.method == "manual")
    return df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True)


def main(params_path: Path = PARAMS) -> None:
    p = section(load_params(params_path), "split")
    train, test = grouped_split(pd.read_parquet(PREPARED), p["test_size"], p["seed"])
    TRAIN.parent.mkdir(parents=True, exist_ok=True)
    train.to_parquet(TRAIN, index=False)
    test.to_parquet(TEST, index=False)
    print(
        f"split: train {len(train)} paragraphs / {train.article_id.nunique()} articles, "
        f"test {len(test)} / {test.article_id.nunique()} -> {TRAIN.parent}"
    )
