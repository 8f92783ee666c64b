"""Paths and params: every stage finds its files and settings here."""

from __future__ import annotations

from pathlib import Path

import yaml

PARAMS = Path("configs/params.yaml")
LABELS_DIR = Path("data/labels")
PREPARED = Path("data/prepared/labeled.parquet")
ARTICLES = Path("data/prepared/articles.parquet")
TRAIN = Path("data/split/train.parquet")
TEST = Path("data/split/test.parquet")
TOKENS = Path("data/tokens/words.parquet")
MODEL = Path("models/model.joblib")
METRICS = Path("metrics/scores.json")
PLOTS_DIR = Path("metrics/plots")
LEARNING_CURVE = PLOTS_DIR / "learning_curve.csv"
MISCLASSIFIED = Path("data/evaluate/misclassified.csv")
SEEDS_OUT = Path("data/tagged/seeds.jsonl")
SEEDS_SUMMARY = Path("data/tagged/seeds_summary.json")
LABELS = ("cooperation", "victim_support", "statistics", "off_topic")
ON_TOPIC = LABELS[:3]


class ParamsError(Exception):
    """The params file is missing, unreadable, or has a value of the wrong type or range."""


def load_params(path: Path = PARAMS) -> dict:
    """Read the params file, or raise ParamsError naming it."""
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ParamsError(f"{path}: cannot read params ({e})") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return params


def section(params: dict, name: str, path: Path = PARAMS) -> dict:
    """Return one section of the params, or raise ParamsError naming the missing key."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ParamsError(f"{path}: section '{name}' is missing or not a mapping")
    return value
