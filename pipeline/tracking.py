"""Tracking: every train/evaluate run in MLflow, and the model as an MLflow pyfunc model.

The pyfunc wrapper takes a DataFrame with a `text` column (or a list of strings) and returns one
row per input. It loads the same joblib file as tagging, sha256-checked, instead of MLflow's skops
flavour, which stores a large TF-IDF vocabulary slowly and at many times the size.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.config import LABELS

import mlflow

PACKAGE_DIR = Path(__file__).resolve().parent
# Sentences written for this project (no corpus text): the model's input example.
EXAMPLE_TEXTS = [
    "Hai nước ký kế hoạch hành động chung về phòng, chống mua bán người.",
    "Giá vàng hôm nay tăng nhẹ.",
]


def configure(params: dict) -> str:
    """Point MLflow at the tracking store (MLFLOW_TRACKING_URI, else the params' local SQLite file)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(params["mlflow"]["experiment"])
    return uri


def git_commit() -> str:
    """The current commit, with `-dirty` when the work tree has changes; `unknown` outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return rev + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _flat(prefix: str, d: dict) -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(key, v) if isinstance(v, dict) else {key: v})
    return out


class TopicModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around the saved pipeline: one output row per input text."""

    def load_context(self, context):
        from pipeline.model import load_model

        self.model, _ = load_model(Path(context.artifacts["model"]), Path(context.artifacts["meta"]))

    def predict(self, context, model_input, params=None):
        from pipeline.model import predict

        if isinstance(model_input, pd.DataFrame):
            col = "text" if "text" in model_input.columns else model_input.columns[0]
            texts = model_input[col].astype(str).tolist()
        elif isinstance(model_input, str):
            texts = [model_input]
        else:
            texts = [str(t) for t in model_input]
        labels, proba = predict(self.model, texts)
        out = pd.DataFrame({"label": labels, "probability": proba.max(axis=1) if len(texts) else []})
        for j, name in enumerate(self.model.classes_):
            out[f"p_{name}"] = proba[:, j]
        return out


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "label"), ColSpec("double", "probability")]
    outputs += [ColSpec("double", f"p_{name}") for name in LABELS]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def log_training(params: dict, info: dict, model_path: Path) -> str:
    """Log one training run (params, tags, the pyfunc model) and return its run id."""
    configure(params)
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    tags = {
        "git_commit": info["git_commit"],
        "data_hash": info["data_hash"],
        "n_labels": str(info["n_train"]),
        "dvc_exp_name": exp_name,
    }
    with mlflow.start_run(run_name=exp_name or None, tags=tags) as run:
        mlflow.log_params(_flat("", {k: v for k, v in params.items() if k != "mlflow"}))
        mlflow.log_metric("train_seconds", info["train_seconds"])
        with tempfile.TemporaryDirectory() as tmp:
            meta = Path(tmp) / "model.json"
            meta.write_text(json.dumps({"sha256": info["sha256"], "labels": info["labels"]}), encoding="utf-8")
            mlflow.pyfunc.log_model(
                name="model",
                python_model=TopicModel(),
                artifacts={"model": str(model_path), "meta": str(meta)},
                code_paths=[str(PACKAGE_DIR)],
                signature=signature(),
                input_example=pd.DataFrame({"text": EXAMPLE_TEXTS}),
            )
        return run.info.run_id


def log_evaluation(params: dict, run_id: str | None, metrics: dict, artifacts: list[Path]) -> str:
    """Add the test metrics and evaluation files to the training run (a new run if it is not in this store)."""
    configure(params)
    try:
        run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run()
    except mlflow.exceptions.MlflowException:
        run = mlflow.start_run(tags={"note": f"training run {run_id} not in this tracking store"})
    with run:
        mlflow.log_metrics({k: float(v) for k, v in _flat("", metrics).items() if isinstance(v, (int, float))})
        for path in artifacts:
            if Path(path).exists():
                mlflow.log_artifact(str(path), artifact_path="evaluation")
        return run.info.run_id
