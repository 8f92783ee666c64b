"""Shared fixtures: the real corpus beside the project, a small slice of it, and a model trained on the labels."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = (ROOT / ".." / "shared" / "corpus").resolve()

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# The code tier runs on text and fixtures written for the tests: no corpus, no model trained on its labels.
REAL_DATA = {"corpus_dir", "labels", "small_corpus", "trained_model", "model_file"}


def pytest_collection_modifyitems(config, items):
    """Refuse a test of tests/code that reaches the real corpus or a trained model (directly or through a fixture)."""
    code = ROOT / "tests" / "code"
    wrong = [i.nodeid for i in items if code in Path(i.path).parents and REAL_DATA & set(i.fixturenames)]
    if wrong:
        raise pytest.UsageError(
            f"tests/code uses the real corpus or a trained model ({', '.join(wrong[:5])}): move it to tests/model"
        )


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    assert (CORPUS / "trafficking.jsonl.gz").is_file(), f"the tests read the corpus at {CORPUS}"
    return CORPUS


@pytest.fixture(scope="session")
def labels() -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted((ROOT / "data" / "labels").glob("*.csv"))], ignore_index=True)


def pick_slice(labels: pd.DataFrame, n_traffic: int = 14, n_related: int = 4, n_general: int = 60) -> pd.DataFrame:
    """A small, label-balanced subset of the label rows: whole labeled articles from each file."""
    manual = labels[labels.method == "manual"]
    on = manual[manual.label != "off_topic"].groupby("article_id").label.nunique()
    traffic = [a for a in on.sort_values(ascending=False).index if not a.startswith("seeds/")][:n_traffic]
    related = sorted(set(manual.article_id) - set(on.index))[:n_related]
    seeds = sorted(a for a in manual.article_id.unique() if a.startswith("seeds/"))
    mined = labels[labels.method != "manual"].head(n_general)
    keep = manual[manual.article_id.isin(traffic + related + seeds)]
    return pd.concat([keep, mined], ignore_index=True)


def write_slice(corpus: Path, rows: pd.DataFrame, out: Path) -> Path:
    """Copy the corpus records that `rows` refer to (read at test time) into a small corpus folder."""
    wanted = set(rows.article_id)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("trafficking", "related", "general"):
        with (
            gzip.open(corpus / f"{name}.jsonl.gz", "rt", encoding="utf-8") as src,
            gzip.open(out / f"{name}.jsonl.gz", "wt", encoding="utf-8") as dst,
        ):
            for line in src:
                if json.loads(line)["id"] in wanted:
                    dst.write(line)
    shutil.copytree(corpus / "seeds", out / "seeds", dirs_exist_ok=True)
    return out


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, corpus_dir, labels):
    """A corpus folder with ~20 labeled articles plus the seeds, and its label rows."""
    rows = pick_slice(labels)
    return write_slice(corpus_dir, rows, tmp_path_factory.mktemp("corpus")), rows


@pytest.fixture(scope="session")
def trained_model(corpus_dir, labels):
    """The default model fitted on every label (joined with the corpus here), for behavioural tests."""
    import yaml

    from pipeline.model import build_model
    from pipeline.text import paragraphs, read_corpus

    params = yaml.safe_load((ROOT / "configs" / "params.yaml").read_text(encoding="utf-8"))
    wanted = set(labels.article_id)
    paras = {a.id: paragraphs(a.text) for a in read_corpus(corpus_dir) if a.id in wanted}
    texts = [paras[a][i] for a, i in zip(labels.article_id, labels.paragraph, strict=True)]
    model = build_model(params["train"])
    model.fit(texts, labels.label.tolist())
    return model


def make_project(dest: Path, corpus: Path, rows: pd.DataFrame, train: dict | None = None) -> Path:
    """A real git + DVC project in `dest`: this project's code, dvc.yaml and params, `rows` as labels, `corpus`."""
    import subprocess

    import yaml

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "pipeline", dest / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["corpus"]["dir"] = str(corpus)
    params["train"].update(train or {})
    params["tokenize"]["words"] = "word" in params["train"]["features"]
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (dest / "configs").mkdir(exist_ok=True)
    (dest / "configs" / "params.yaml").symlink_to("../params.yaml")
    (dest / "data" / "labels").mkdir(parents=True, exist_ok=True)
    (dest / "data" / "synthetic").mkdir(parents=True, exist_ok=True)  # a prepare dep; none in test projects
    for method, part in rows.groupby(rows.method == "manual"):
        name = "manual.csv" if method else "mined.csv"
        part.to_csv(dest / "data" / "labels" / name, index=False)
    shutil.copy(ROOT / ".gitignore", dest / ".gitignore")
    env = project_env(dest)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def project_env(dest: Path) -> dict:
    """Environment for commands in a temporary project: this venv first, its own SQLite MLflow store."""
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{dest / 'mlruns.db'}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.setdefault("GIT_AUTHOR_NAME", "test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.invalid")
    return env


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, trained_model) -> Path:
    """`trained_model` saved as the pipeline saves it: model.joblib with model.json (sha256) beside it."""
    from pipeline.model import meta_path, write_json
    from pipeline.train import save_model

    path = tmp_path_factory.mktemp("model") / "model.joblib"
    sha = save_model(trained_model, path)
    write_json(meta_path(path), {"sha256": sha, "labels": [str(c) for c in trained_model.classes_]})
    return path


def run_id_of(dest: Path) -> str:
    """The training run of the project's current model: the newest run tagged with its sha256."""
    import mlflow

    sha = json.loads((dest / "models" / "model.json").read_text(encoding="utf-8"))["sha256"]
    client = mlflow.MlflowClient(project_env(dest)["MLFLOW_TRACKING_URI"])
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.model_sha256 = '{sha}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0].info.run_id
