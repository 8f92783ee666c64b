"""Tracking: every train/evaluate run in MLflow, and the model as an MLflow pyfunc model.

The pyfunc wrapper takes a DataFrame with a `text` column (or a list of strings) and returns one
row per input. It loads the same joblib file as tagging, sha256-checked, instead of MLflow's skops
flavour, which stores a large TF-IDF vocabulary slowly and at many times the size.

Each training run also registers a version of one registered model; `runs`, `runs compare` and
`promote` read the store here and leave the tables, diffs and the promotion rule to pipeline/runs.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from pipeline import runs
from pipeline.config import LABELS, PARAMS

PACKAGE_DIR = Path(__file__).resolve().parent
# What the served model needs, pinned to what trained it. Listing it skips MLflow's requirement
# inference (which reloads the model in a subprocess) and its guess `trafficking-topics==0.1.0`,
# a package no index has; the code itself travels in the model's code_paths.
# The MLflow 3 UI opens an experiment on its GenAI overview (traces, token usage) unless it knows the
# experiment holds model training runs: this tag (values of the UI's `ExperimentKind`) where the UI
# reads it; 3.17's UI reads the address's `workflowType=machine_learning` instead (`make ui` prints it).
EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
CHAMPION = "champion"
# The tag of a training run naming the sha256 of the model file it logged.
MODEL_SHA256 = "model_sha256"
REQUIREMENTS = ("mlflow", "cloudpickle", "scikit-learn", "scipy", "numpy", "pandas", "joblib", "pyyaml", "underthesea")


def configure(params: dict) -> str:
    """Point MLflow at the tracking store (MLFLOW_TRACKING_URI, else the params' local SQLite file)."""
    # A queued or --temp `dvc exp run` runs its stages in a copy under .dvc/tmp; DVC_ROOT names the
    # real repository, so a relative SQLite path still means the project's own store.
    uri = anchored(
        os.environ.get("MLFLOW_TRACKING_URI") or params["mlflow"]["tracking_uri"], os.environ.get("DVC_ROOT")
    )
    mlflow.set_tracking_uri(uri)
    exp = mlflow.set_experiment(params["mlflow"]["experiment"])
    if exp.tags.get(EXPERIMENT_KIND) != TRAINING_KIND:  # new experiments, and those made before the tag
        mlflow.set_experiment_tag(EXPERIMENT_KIND, TRAINING_KIND)
    return uri


def anchored(uri: str, root: str | None) -> str:
    """A relative `sqlite:///` URI made absolute under `root`; any other URI unchanged."""
    db = sqlite_file(uri)
    if db is None or db.is_absolute() or not root:
        return uri
    return "sqlite:///" + str(Path(root) / db) + ("?" + uri.split("?", 1)[1] if "?" in uri else "")


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
    """MLflow pyfunc around the saved pipeline: one output row per input row.

    Optional columns `article_id` and `paragraph` (its position in the article) make rows that share
    an `article_id` one article, scored together as whole-article tagging scores it.
    """

    # The input is checked against the logged signature and by `request_rows`; MLflow's type-hint
    # validation would only add a no-op wrapper and a warning on every import.
    _skip_type_hint_validation = True

    def load_context(self, context):
        from pipeline.model import load_model

        self.model, _ = load_model(Path(context.artifacts["model"]), Path(context.artifacts["meta"]))

    def predict(self, context, model_input, params=None):
        from mlflow.exceptions import MlflowException

        from pipeline.model import predict_rows

        try:
            texts, article_ids, positions = request_rows(model_input)
        except ValueError as e:  # a 400 answer with this one line, no stack trace
            raise MlflowException.invalid_parameter_value(str(e)) from None
        proba = predict_rows(self.model, texts, article_ids, positions)
        classes = list(self.model.classes_)
        out = pd.DataFrame(
            {
                "label": [classes[j] for j in proba.argmax(axis=1)],
                "probability": proba.max(axis=1) if len(texts) else [],
            }
        )
        for j, name in enumerate(classes):
            out[f"p_{name}"] = proba[:, j]
        return out


def request_rows(model_input) -> tuple[list[str], list | None, list | None]:
    """The texts, article ids and positions of a request; ValueError naming the first bad row.

    The same rule as the command line: every text is a non-empty string (not null, a number or a list).
    """
    if isinstance(model_input, str):
        model_input = [model_input]
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame({"text": list(model_input)})
    col = "text" if "text" in model_input.columns else model_input.columns[0]
    texts = model_input[col].tolist()
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            if t is None or (isinstance(t, float) and t != t):
                what = "null"
            elif isinstance(t, str):
                what = "empty"
            else:
                what = (
                    "a list"
                    if isinstance(t, list | tuple | np.ndarray)
                    else "an object"
                    if isinstance(t, dict)
                    else "a number"
                )
            raise ValueError(f"row {i}: 'text' must be a non-empty string, not {what}")
    ids = model_input["article_id"].tolist() if "article_id" in model_input.columns else None
    positions = model_input["paragraph"].tolist() if "paragraph" in model_input.columns else None
    if positions is not None:
        for i, pos in enumerate(positions):
            if pos is not None and not (isinstance(pos, float) and pos != pos) and not float(pos).is_integer():
                raise ValueError(f"row {i}: 'paragraph' must be a whole number (the paragraph's position)")
    return texts, ids, positions


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "label"), ColSpec("double", "probability")]
    outputs += [ColSpec("double", f"p_{name}") for name in LABELS]
    inputs = [
        ColSpec("string", "text"),
        ColSpec("string", "article_id", required=False),
        ColSpec("double", "paragraph", required=False),  # a number: missing in rows of no article (NaN)
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def pip_requirements() -> list[str]:
    """The served model's pip requirements: REQUIREMENTS at their installed versions."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in REQUIREMENTS:
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{name}=={version(name)}")
    return out


def log_training(params: dict, info: dict, model_path: Path, train_seconds: float, commit: str | None = None) -> str:
    """Log one training run (params, tags, the pyfunc model), register its model version, return the run id.

    What is particular to this run (its time, the commit, the run id) lives here and not in the
    DVC outputs, so identical inputs give identical outputs; the `model_sha256` tag is how the
    stages after `train` find the run (`training_run_id`).
    """
    configure(params)
    commit = commit or git_commit()
    # `dvc exp run` sets these for its stages (a generated name unless `-n NAME`); `dvc repro` does not.
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    tags = {
        MODEL_SHA256: info["sha256"],
        "git_commit": commit,
        "data_hash": info["data_hash"],
        "n_labels": str(info["n_train"]),
        "n_labels_manual": str(info.get("n_train_manual", "")),
        "dvc_exp_name": exp_name,
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }
    name = runs.run_name(exp_name, commit)
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params(_flat("", {k: v for k, v in params.items() if k != "mlflow"}))
        mlflow.log_metric("train_seconds", round(train_seconds, 2))
        with tempfile.TemporaryDirectory() as tmp:
            meta = Path(tmp) / "model.json"
            meta.write_text(json.dumps({"sha256": info["sha256"], "labels": info["labels"]}), encoding="utf-8")
            mlflow.pyfunc.log_model(
                name="model",
                python_model=TopicModel(),
                artifacts={"model": str(model_path), "meta": str(meta)},
                code_paths=[str(PACKAGE_DIR)],
                # The signature is what serving checks requests against. No input example: MLflow
                # would validate it by loading the model once more (about 1 s of every training).
                signature=signature(),
                pip_requirements=pip_requirements(),
                registered_model_name=params["mlflow"].get("registered_model") or None,
            )
        if params["mlflow"].get("registered_model"):
            note = ensure_champion(mlflow.MlflowClient(), params["mlflow"]["registered_model"])
            if note:
                print(f"train: {note}")
        return run.info.run_id


def training_run_id(params: dict, sha256: str) -> str | None:
    """The newest training run in this store that logged the model file with this sha256, or None."""
    configure(params)
    exp = mlflow.get_experiment_by_name(params["mlflow"]["experiment"])
    found = mlflow.MlflowClient().search_runs(
        [exp.experiment_id],
        filter_string=f"tags.{MODEL_SHA256} = '{sha256}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None


def log_files(params: dict, run_id: str | None, paths: list[Path], folder: str) -> None:
    """Add files that exist to a run's artifacts under `folder` (nothing when the run is not in this store)."""
    configure(params)
    if not run_id:
        return
    client = mlflow.MlflowClient()
    try:
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return  # trained against another store: evaluate already said so in a run of its own
    for path in paths:
        if Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path=folder)


def log_evaluation(
    params: dict, run_id: str | None, metrics: dict, artifacts: list[Path], predictions: pd.DataFrame | None = None
) -> str:
    """Add the test metrics and evaluation files to the training run (a new run, with a note, if it is not in this store).

    `predictions` (references, gold, predicted; no text) becomes evaluation/predictions.csv and
    its hash the `test_hash` tag, so `runs compare` can match two runs' test paragraphs.
    """
    configure(params)
    if run_id is None:
        run = mlflow.start_run(tags={"note": "the model's training run is not in this tracking store"})
    else:
        try:
            run = mlflow.start_run(run_id=run_id)
        except mlflow.exceptions.MlflowException:
            run = mlflow.start_run(tags={"note": f"training run {run_id} not in this tracking store"})
    with run:
        mlflow.log_metrics({k: float(v) for k, v in _flat("", metrics).items() if isinstance(v, (int, float))})
        for path in artifacts:
            if Path(path).exists():
                mlflow.log_artifact(str(path), artifact_path="evaluation")
        if predictions is not None:
            mlflow.set_tag("test_hash", runs.split_hash(predictions))
            folder, name = runs.PREDICTIONS_ARTIFACT.rsplit("/", 1)
            with tempfile.TemporaryDirectory() as tmp:
                predictions.to_csv(Path(tmp) / name, index=False)
                mlflow.log_artifact(str(Path(tmp) / name), artifact_path=folder)
        return run.info.run_id


# -- reading the store: runs, compare, promote, resolve_model -----------------------------------


def tracking_uri(params: dict | None = None) -> str:
    """MLFLOW_TRACKING_URI, else the params' store, else the project's default SQLite file."""
    from_params = ((params or {}).get("mlflow") or {}).get("tracking_uri")
    return os.environ.get("MLFLOW_TRACKING_URI") or from_params or "sqlite:///mlruns.db"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative to the working folder), else None."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///") :].split("?")[0])


@contextlib.contextmanager
def store_errors(uri: str, error=runs.RunsError):
    """Turn the store's failures (missing run, unreadable database, unreachable server) into `error` with one line."""
    import sqlalchemy.exc

    try:
        yield
    except mlflow.exceptions.MlflowException as e:
        raise error(f"{uri}: {e.message.strip().splitlines()[0]}") from None
    except sqlalchemy.exc.SQLAlchemyError as e:
        first = str(e.orig if getattr(e, "orig", None) else e).splitlines()[0]
        raise error(f"{uri}: the tracking store cannot be read ({first}); is it an MLflow database?") from None
    except OSError as e:
        raise error(f"{uri}: the tracking store cannot be read ({e})") from None


def connect(uri: str, error=runs.RunsError):
    """A client on an existing store: a missing SQLite file is an error here, not a new empty store."""
    db = sqlite_file(uri)
    if db is not None and not db.is_file():
        raise error(f"{uri}: no tracking store at {db.resolve()} (train a model with `dvc repro` first)")
    mlflow.set_tracking_uri(uri)
    with store_errors(uri, error):  # the client opens (and checks) the database right away
        return mlflow.MlflowClient(tracking_uri=uri)


def run_record(run) -> dict:
    """An MLflow run as the plain dict pipeline/runs.py works on (MLflow's own tags left out)."""
    return {
        "run_id": run.info.run_id,
        "start_time": run.info.start_time,
        "name": run.info.run_name,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    }


def list_runs(params: dict, filter_string: str = "", sort: str | None = None, ascending: bool = False, limit: int = 20):
    """The experiment's runs as records: filtered by an MLflow search expression, sorted, at most `limit`."""
    uri = tracking_uri(params)
    client = connect(uri)
    name = params["mlflow"]["experiment"]
    with store_errors(uri):
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise runs.RunsError(f"{uri}: no experiment {name!r} yet (train a model with `dvc repro` first)")
        found = client.search_runs(
            [exp.experiment_id],
            filter_string=filter_string or "",
            order_by=runs.order_by(sort, ascending),
            max_results=limit,
        )
    return [run_record(r) for r in found]


def _predictions(client, run_id: str) -> pd.DataFrame | None:
    """The run's test predictions: predictions.csv (with references), else confusion.csv, else None."""
    folder = runs.PREDICTIONS_ARTIFACT.rsplit("/", 1)[0]
    logged = {f.path for f in client.list_artifacts(run_id, folder)}
    with tempfile.TemporaryDirectory() as tmp:
        for path in (runs.PREDICTIONS_ARTIFACT, runs.CONFUSION_ARTIFACT):
            if path in logged:
                local = client.download_artifacts(run_id, path, tmp)
                df = pd.read_csv(local, dtype={"article_id": str, "hash": str})
                return df.rename(columns={"actual": "gold"})
    return None


def _version(client, ref: dict, name: str):
    """The model version a parsed reference names; a run's newest version, registering the run if it has none."""
    if ref["kind"] == "version":
        return client.get_model_version(ref["name"], ref["version"])
    if ref["kind"] == "alias":
        if ref["alias"] == CHAMPION and (note := ensure_champion(client, ref["name"])):
            print(f"note: {note}", file=sys.stderr)
        aliases = _aliases(client, ref["name"])
        if ref["alias"] not in aliases:
            raise runs.RunsError(runs.missing_alias(ref["name"], ref["alias"], _has_versions(client, ref["name"])))
        return client.get_model_version(ref["name"], aliases[ref["alias"]])
    client.get_run(ref["run_id"])  # an unknown run id fails here, with MLflow's "not found"
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{ref['run_id']}'")
    if versions:
        return max(versions, key=lambda v: int(v.version))
    # A run from before registration existed: register its logged model now.
    return mlflow.register_model(f"runs:/{ref['run_id']}/model", name)


def _aliases(client, name: str) -> dict:
    """alias -> version of a registered model; empty when the model is not registered yet."""
    try:
        return dict(client.get_registered_model(name).aliases)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise


def _has_versions(client, name: str) -> bool:
    return bool(client.search_model_versions(f"name = '{name}'", max_results=1))


def ensure_champion(client, name: str) -> str | None:
    """Give @champion to the first registered version when no version has it; say so, or None if nothing changed."""
    if CHAMPION in _aliases(client, name):
        return None
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return None
    first = min(versions, key=lambda v: int(v.version))
    client.set_registered_model_alias(name, CHAMPION, first.version)
    return (
        f"{name} had no @{CHAMPION}: v{first.version}, its first registered version, is @{CHAMPION} now "
        f"(`python -m pipeline promote VERSION` moves it)"
    )


def _registered_name(params: dict) -> str:
    """The registered model's name, or RunsError when the params name none."""
    name = params["mlflow"].get("registered_model")
    if not name:
        raise runs.RunsError(f"{PARAMS}: mlflow.registered_model is not set")
    return name


def version_uri(params: dict, alias: str = CHAMPION) -> str:
    """`models:/NAME/VERSION` of the version holding `alias`, for a command that serves it; RunsError in one line."""
    uri = tracking_uri(params)
    client = connect(uri)
    name = _registered_name(params)
    with store_errors(uri):
        version = _version(client, {"kind": "alias", "name": name, "alias": alias}, name)
    return f"models:/{name}/{version.version}"


def _run_id(client, text: str, name: str) -> str:
    """The run a command-line reference names (a run id, version, alias or model URI)."""
    ref = runs.parse_ref(text, name)
    return ref["run_id"] if ref["kind"] == "run" else _version(client, ref, name).run_id


def compare_runs(params: dict, ref_a: str, ref_b: str) -> dict:
    """The diff of two runs (see runs.compare), each named by run id, version, alias or model URI."""
    uri = tracking_uri(params)
    client = connect(uri)
    name = params["mlflow"].get("registered_model") or ""
    with store_errors(uri):
        records, preds = [], []
        for text in (ref_a, ref_b):
            run_id = _run_id(client, text, name)
            records.append(run_record(client.get_run(run_id)))
            preds.append(_predictions(client, run_id))
    return runs.compare(records[0], records[1], preds[0], preds[1])


def _candidate(client, version) -> dict:
    """What the promotion rule needs of a model version: its run's macro-F1 and test split."""
    try:
        data = client.get_run(version.run_id).data
        macro_f1, test_hash = data.metrics.get("macro_f1"), data.tags.get("test_hash")
    except mlflow.exceptions.MlflowException:  # the run was deleted: nothing to compare with
        macro_f1, test_hash = None, None
    return {"version": str(version.version), "run_id": version.run_id, "macro_f1": macro_f1, "test_hash": test_hash}


def promote(params: dict, ref: str, alias: str = "champion", force: bool = False) -> tuple[str, str]:
    """Move `alias` to the version `ref` names unless the rule in runs.promotion refuses; return (decision, message)."""
    uri = tracking_uri(params)
    client = connect(uri)
    name = _registered_name(params)
    with store_errors(uri):
        version = _version(client, runs.parse_ref(ref, name), name)
        current = _aliases(client, version.name).get(alias)
        champion = _candidate(client, client.get_model_version(version.name, current)) if current else None
        decision, message = runs.promotion(_candidate(client, version), champion, alias, force, version.name)
        if decision == "promote":
            client.set_registered_model_alias(version.name, alias, version.version)
    return decision, message


def download_model(uri: str, dest: Path, store: str | None = None) -> tuple[Path, Path, dict]:
    """Download a logged model (`runs:/...`, `models:/NAME@ALIAS`, `models:/NAME/VERSION`) into `dest`.

    Returns the joblib file, its metadata file (sha256), and what the store says of it: run id,
    registered name and version, the run's metrics. Raises ModelError with one line.
    """
    import yaml

    from pipeline.model import ModelError

    store = store or tracking_uri(_read_params())
    client = connect(store, ModelError)
    uri = runs.model_uri(uri)
    info: dict = {"model_uri": uri}
    with store_errors(f"{uri} ({store})", ModelError):
        if uri.startswith("models:/"):
            ref = runs.parse_ref(uri, "")
            try:
                mv = _version(client, ref, ref["name"])
            except runs.RunsError as e:
                raise ModelError(f"{uri}: {e}") from None
            info.update(registered_model=mv.name, version=str(mv.version), mlflow_run_id=mv.run_id)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=store))
        mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
        info.setdefault("mlflow_run_id", mlmodel.get("run_id"))
        if info["mlflow_run_id"]:
            info["metrics"] = runs.unflatten(client.get_run(info["mlflow_run_id"]).data.metrics)
    artifacts = (mlmodel.get("flavors", {}).get("python_function") or {}).get("artifacts") or {}
    if not {"model", "meta"} <= set(artifacts):
        raise ModelError(f"{uri}: not a model logged by this project (no model and meta artifacts in its MLmodel)")
    return local / artifacts["model"]["path"], local / artifacts["meta"]["path"], info


def resolve_model(uri: str, store: str | None = None) -> tuple:
    """Load the model an MLflow URI names, sha256-checked like a local file; return (model, meta).

    `meta` is the model's metadata (sha256, labels) with the run id, registered version and metrics.
    `store` is the tracking URI (default: MLFLOW_TRACKING_URI, else configs/params.yaml's).
    """
    from pipeline.model import load_model

    with tempfile.TemporaryDirectory() as tmp:
        model_path, meta_file, info = download_model(uri, Path(tmp), store)
        model, meta = load_model(model_path, meta_file)
    return model, {**meta, **info}


def _read_params() -> dict | None:
    """configs/params.yaml when it is there and readable (for its tracking URI), else None."""
    from pipeline.config import ParamsError, load_params

    try:
        return load_params(PARAMS)
    except ParamsError:
        return None
