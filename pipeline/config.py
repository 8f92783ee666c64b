"""Paths and params: every stage finds its files and settings here."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ParamsError  # noqa: F401 - its home is pipeline.errors; imported from here too

PARAMS = Path("configs/params.yaml")
LABELS_DIR = Path("data/labels")
SYNTHETIC_DIR = Path("data/synthetic")
PREPARED = Path("data/prepared/labeled.parquet")
ARTICLES = Path("data/prepared/articles.parquet")
TRAIN = Path("data/split/train.parquet")
TEST = Path("data/split/test.parquet")
TOKENS = Path("data/tokens/words.parquet")
MODEL = Path("models/model.joblib")
TRAIN_INFO = MODEL.with_suffix(".train.json")  # what `train` records of the model (models/model.train.json)
METRICS = Path("metrics/scores.json")
PLOTS_DIR = Path("metrics/plots")
LEARNING_CURVE = PLOTS_DIR / "learning_curve.csv"
CV_DIR = Path("metrics/cv")
# The same plots as images, for a page with no network and for MLflow (image plots in dvc.yaml).
PNG_CONFUSION = PLOTS_DIR / "confusion.png"
PNG_PR = PLOTS_DIR / "precision_recall.png"
PNG_LEARNING_CURVE = PLOTS_DIR / "learning_curve.png"
MISCLASSIFIED = Path("data/evaluate/misclassified.csv")
SEEDS_OUT = Path("data/tagged/seeds.jsonl")
SEEDS_SUMMARY = Path("data/tagged/seeds_summary.json")
LABELS = ("cooperation", "victim_support", "statistics", "off_topic")
ON_TOPIC = LABELS[:3]


def _num(lo=None, hi=None, integer=False):
    """A check for a number in [lo, hi] (bools are not numbers here)."""

    def check(v):
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type:
            return f"must be {'a whole number' if integer else 'a number'}"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must be between {lo} and {hi}"
        return None

    return check


def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}"


def _features(v):
    blocks = v.split("+") if isinstance(v, str) else []
    ok = blocks and all(b in ("syllable", "word", "char") for b in blocks)
    return None if ok else "must be syllable, word or char, or several joined with '+'"


def _kind(t, what):
    return lambda v: None if isinstance(v, t) and not (t is int and isinstance(v, bool)) else f"must be {what}"


def _fractions(v):
    ok = isinstance(v, list) and v and all(isinstance(x, (int, float)) and 0 < x <= 1 for x in v)
    return None if ok else "must be a list of shares in (0, 1]"


def _pair(v):
    ok = isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v) and v[0] <= v[1]
    return None if ok else "must be [low, high] whole numbers, low <= high"


# Every key a stage reads, with its check: a wrong type or range stops the run before any work.
SCHEMA = {
    "corpus": {"dir": _kind(str, "a folder path")},
    "text": {"max_paragraph_chars": _num(100, 100_000, integer=True)},
    "prepare": {"mined_max_ratio": _num(0, 10), "seed": _num(0, integer=True)},
    "split": {"test_size": _num(0.05, 0.5), "seed": _num(0, integer=True)},
    "tokenize": {"words": _kind(bool, "true or false")},
    "train": {
        "features": _features,
        "fold_digits": _kind(bool, "true or false"),
        "classifier": _one_of("logreg", "linearsvc"),
        "context": _kind(bool, "true or false"),
        "context_classifier": _one_of("logreg", "linearsvc"),
        "context_C": _num(1e-6, 1e6),
        "context_title": _kind(bool, "true or false"),
        "context_folds": _num(2, 20, integer=True),
        "context_window": _num(1, 5, integer=True),
        "context_prob_window": _num(1, 10, integer=True),
        "context_article_probs": _kind(bool, "true or false"),
        "top_k": _num(1, 100, integer=True),
        "decision": _one_of("none", "off_factor", "class_factors"),
        "synthetic": _kind(bool, "true or false"),
        "decision_folds": _num(2, 20, integer=True),
        "decision_tolerance": _num(0, 1),
        "C": _num(1e-6, 1e6),
        "ngram_max": _num(1, 5, integer=True),
        "char_ngram": _pair,
        "min_df": _num(1, integer=True),
        "sublinear_tf": _kind(bool, "true or false"),
        "class_weight": lambda v: None if v in (None, "balanced") else "must be balanced or null",
        "seed": _num(0, integer=True),
    },
    "resources": {
        "n_jobs": lambda v: (
            None
            if isinstance(v, int) and not isinstance(v, bool) and (v == -1 or v >= 1)
            else "must be -1 (every core) or a whole number >= 1"
        )
    },
    "learning_curve": {"refit": _kind(bool, "true or false"), "fractions": _fractions, "seed": _num(0, integer=True)},
    "evaluate": {"pr_points": _num(2, 10_000, integer=True)},
    "crossval": {
        "folds": _num(2, 20, integer=True),
        "seed": _num(0, integer=True),
        "jobs": _num(1, 64, integer=True),
    },
    "tag": {"on_topic_min_share": _num(0, 1), "on_topic_min_paragraphs": _num(0, integer=True)},
}


def validate(params: dict, path: Path = PARAMS) -> list[str]:
    """Every problem with the params, each naming the offending key."""
    problems = []
    for name, checks in SCHEMA.items():
        sec = params.get(name)
        if not isinstance(sec, dict):
            problems.append(f"{path}: section '{name}' is missing or not a mapping")
            continue
        for key, check in checks.items():
            if key not in sec:
                problems.append(f"{path}: {name}.{key} is missing")
            elif why := check(sec[key]):
                problems.append(f"{path}: {name}.{key} = {sec[key]!r} {why}")
    return problems


def load_params(path: Path = PARAMS) -> dict:
    """Read and check the params file, or raise ParamsError naming the file and each bad key."""
    import yaml  # here, not at the top: the CLI reads the paths above to print --help, and YAML is a third of that

    try:
        params = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ParamsError(f"{path}: cannot read params ({e})") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    problems = validate(params, path)
    if problems:
        raise ParamsError("bad params:\n  " + "\n  ".join(problems))
    return params


def section(params: dict, name: str, path: Path = PARAMS) -> dict:
    """Return one section of the params, or raise ParamsError naming the missing key."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ParamsError(f"{path}: section '{name}' is missing or not a mapping")
    return value
