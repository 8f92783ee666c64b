"""Grouped k-fold cross-validation over every manually labeled article: how model changes are compared.

Folds are whole articles, stratified by source file (trafficking, related, general, seeds) and
seeded, so two runs with the same data and `crossval` params score the same articles in each fold
and can be compared fold by fold. Rows that are not manual labels (rule-mined negatives, synthetic
paragraphs) only ever train. Off the default `dvc repro` path: `make cv` or `python -m pipeline crossval`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import ARTICLES, CV_DIR, LABELS, PARAMS, PREPARED, load_params, section
from pipeline.evaluate import predict_in_context, score
from pipeline.train import data_hash, decision_factors, fit

# What a fold reports, as (name, path into the score dict).
FIGURES = [
    ("macro_f1", ("macro_f1",)),
    ("on_topic_f1", ("on_topic", "f1")),
    ("on_topic_recall", ("on_topic", "recall")),
    *[(f"{lab}_f1", ("per_label", lab, "f1")) for lab in LABELS],
]


def cv_folds(labeled: pd.DataFrame, k: int, seed: int) -> list[list[str]]:
    """The test articles of each fold: manual articles only, stratified by source file, seeded."""
    from sklearn.model_selection import StratifiedKFold

    arts = labeled[labeled.method == "manual"].groupby("article_id", sort=True).file.first()
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [sorted(arts.index[te]) for _, te in folds.split(arts.index, arts.values)]


def fold_scores(labeled: pd.DataFrame, articles: pd.DataFrame, train_params: dict, test_articles: list[str]) -> dict:
    """Fit on every row outside the fold's articles, score the fold's manual labels in their articles."""
    held = labeled.article_id.isin(set(test_articles))
    test = labeled[held & (labeled.method == "manual")].reset_index(drop=True)
    model, seconds = fit(labeled[~held].reset_index(drop=True), articles, train_params)
    pred, _ = predict_in_context(model, test, articles)
    result = score(test.label.tolist(), pred)
    result["train_seconds"] = round(seconds, 1)
    result["decision_factors"] = decision_factors(model)
    if any(f != 1.0 for f in result["decision_factors"].values()):
        # The same fit without the decision rule: its gain measured on identical models and folds.
        model.decision_factors_ = None
        result["without_rule"] = score(test.label.tolist(), predict_in_context(model, test, articles)[0])
    return result


def figure(result: dict, path: tuple[str, ...]) -> float:
    for key in path:
        result = result[key]
    return float(result)


def summarize(folds: list[dict]) -> dict:
    """Mean and spread (sample standard deviation) over folds of each figure."""
    out = {}
    for name, path in FIGURES:
        values = np.array([figure(f, path) for f in folds])
        out[name] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)), 4)}
    return out


def paired(run: dict, base: dict) -> dict:
    """Fold-by-fold differences run - base of each figure: mean, spread, and whether the gain beats the spread."""
    if run["folds_key"] != base["folds_key"]:
        raise ValueError("the two runs were not scored on the same folds (different data or crossval params)")
    out = {}
    for name, path in FIGURES:
        diff = np.array([figure(a, path) - figure(b, path) for a, b in zip(run["folds"], base["folds"], strict=True)])
        mean, std = float(diff.mean()), float(diff.std(ddof=1))
        out[name] = {"mean": round(mean, 4), "std": round(std, 4), "beats_noise": bool(mean > std)}
    return out


def run_cv(labeled: pd.DataFrame, articles: pd.DataFrame, train_params: dict, k: int, seed: int, jobs: int) -> dict:
    """Every fold's scores (folds fitted in parallel) and their summary."""
    from joblib import Parallel, delayed

    folds = cv_folds(labeled, k, seed)
    results = Parallel(n_jobs=min(jobs, k))(delayed(fold_scores)(labeled, articles, train_params, f) for f in folds)
    return {
        "folds_key": f"{data_hash(labeled[labeled.method == 'manual'])}/k={k}/seed={seed}",
        "train": train_params,
        "summary": summarize(results),
        "folds": results,
    }


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    """`section.key=value` overrides (values read as YAML), as `dvc exp run -S` takes them."""
    import copy

    import yaml

    params = copy.deepcopy(params)
    for item in overrides:
        key, sep, value = item.partition("=")
        sec, dot, name = key.partition(".")
        if not sep or not dot or sec not in params or name not in params[sec]:
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE with a key of the params file")
        params[sec][name] = yaml.safe_load(value)
    return params


def format_table(name: str, result: dict, diff: dict | None, base_name: str | None) -> str:
    lines = [f"crossval {name}: {len(result['folds'])} folds ({result['folds_key']})"]
    if "rule_gain" in result:
        lines.append("  decision rule's own gain (same fits):")
        lines += [f"    {fig:20s} {d['mean']:+.4f} ± {d['std']:.4f}" for fig, d in result["rule_gain"].items()]
    for fig, _ in FIGURES:
        s = result["summary"][fig]
        row = f"  {fig:22s} {s['mean']:.4f} ± {s['std']:.4f}"
        if diff:
            d = diff[fig]
            row += f"   vs {base_name}: {d['mean']:+.4f} ± {d['std']:.4f}{'  (beats the noise)' if d['beats_noise'] else ''}"
        lines.append(row)
    return "\n".join(lines)


def main(
    params_path: Path = PARAMS, overrides: list[str] | None = None, name: str = "default", against: str | None = None
) -> None:
    from pipeline.config import validate

    params = apply_overrides(load_params(params_path), overrides or [])
    if problems := validate(params, params_path):
        raise ValueError("bad --set values:\n  " + "\n  ".join(problems))
    p = section(params, "crossval")
    result = run_cv(
        pd.read_parquet(PREPARED), pd.read_parquet(ARTICLES), section(params, "train"), p["folds"], p["seed"], p["jobs"]
    )
    result["overrides"] = overrides or []
    if all("without_rule" in f for f in result["folds"]):
        # Scored both ways on the same fits: the rule's own gain, fold by fold.
        plain = {**result, "folds": [f["without_rule"] for f in result["folds"]]}
        plain["summary"] = summarize(plain["folds"])
        result["rule_gain"] = paired(result, plain)
        print(format_table(f"{name} without the decision rule", plain, None, None))
    base_name = against or ("default" if name != "default" else None)
    diff = None
    if base_name and (CV_DIR / f"{base_name}.json").exists():
        base = json.loads((CV_DIR / f"{base_name}.json").read_text(encoding="utf-8"))
        diff = paired(result, base)
        result["against"] = {"name": base_name, "paired": diff}
    from pipeline.model import write_json

    write_json(CV_DIR / f"{name}.json", result)
    print(format_table(name, result, diff, base_name))
    print(f"-> {CV_DIR / f'{name}.json'}")
