"""End to end: the real `dvc repro` in a temporary git repository, on a slice of the corpus, with a SQLite MLflow store."""

import json
import subprocess

import browser
import pandas as pd
import pytest
from conftest import make_project, project_env, run_id_of

pytestmark = pytest.mark.slow


def run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory, small_corpus):
    corpus, rows = small_corpus
    dest = make_project(tmp_path_factory.mktemp("project"), corpus, rows)
    out = run(["dvc", "repro"], dest)
    return dest, out


def test_repro_trains_evaluates_and_tags_seeds(project):
    dest, out = project
    assert "tag_seeds: 250 paragraphs of 5 articles" in out
    for path in ("models/model.joblib", "models/model.json", "metrics/scores.json", "data/tagged/seeds.jsonl"):
        assert (dest / path).is_file(), path
    scores = json.loads((dest / "metrics/scores.json").read_text())
    assert {"accuracy", "macro_f1", "on_topic", "per_label"} <= set(scores)
    meta = json.loads((dest / "models/model.json").read_text())
    assert meta["labels"] == sorted(["cooperation", "victim_support", "statistics", "off_topic"])
    assert {"sha256", "data_hash", "params", "metrics"} <= set(meta)
    # nothing particular to one run in a DVC output: identical inputs give identical files
    assert not {"mlflow_run_id", "git_commit", "train_seconds"} & set(meta)
    assert "train_seconds" not in pd.read_csv(dest / "metrics/plots/learning_curve.csv").columns
    assert (dest / "metrics/plots/confusion.csv").is_file()
    assert (dest / "data/evaluate/misclassified.csv").is_file()
    for png in ("confusion.png", "precision_recall.png", "learning_curve.png"):
        assert (dest / "metrics/plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    # the learning curve refits only when asked (learning_curve.refit): here, the trained model's point
    assert len(pd.read_csv(dest / "metrics/plots/learning_curve.csv")) == 1


def test_plots_page_shows_the_images(project, tmp_path):
    dest, _ = project
    run(["dvc", "plots", "show", "-o", str(tmp_path / "page")], dest)
    page = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    for png in ("confusion.png", "precision_recall.png", "learning_curve.png"):
        assert png in page and "<img" in page, png
    # In a real browser without network the Vega plots stay blank; the three images must not.
    index = tmp_path / "page" / "index.html"
    widths = browser.image_widths(index)
    assert len(widths) == 3 and all(w > 0 for w in widths), widths
    shot = browser.screenshot(index.resolve().as_uri(), tmp_path / "plots.png", size=(1280, 2400))
    assert browser.colored_share(shot) > 0.005  # the confusion matrix's blues and the curves' colours


def test_repro_again_changes_nothing(project):
    dest, _ = project
    out = run(["dvc", "repro"], dest)
    assert "Running stage" not in out
    assert "didn't change" in out or "up to date" in out


def test_param_change_reruns_training_only(project):
    dest, _ = project
    import yaml

    c = yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8"))["train"]["C"]
    out = run(["dvc", "exp", "run", "-S", f"train.C={c / 4}"], dest)  # a value the project does not have yet
    assert "Running stage 'train'" in out and "Running stage 'prepare'" not in out
    assert "Running stage 'tokenize'" not in out
    diff = run(["dvc", "metrics", "diff", "--json"], dest)
    assert json.loads(diff)  # the experiment's metrics are comparable with the baseline


def test_mlflow_run_and_pyfunc_match_saved_model(project):
    import mlflow

    from pipeline.model import load_model

    dest, _ = project
    mlflow.set_tracking_uri(project_env(dest)["MLFLOW_TRACKING_URI"])
    run_id = run_id_of(dest)  # found by the model_sha256 tag, as evaluate finds it
    run = mlflow.get_run(run_id)
    assert float(run.data.params["train.C"]) > 0
    assert "macro_f1" in run.data.metrics and run.data.tags["data_hash"]
    assert run.data.tags["git_commit"] != "unknown"
    texts = [
        "Bộ Công an và cảnh sát nước bạn ký kết hợp tác phòng, chống mua bán người.",
        "Đội bóng giành chiến thắng trong trận chung kết tối qua.",
        "Các nạn nhân được đưa về nơi an toàn và hỗ trợ tâm lý.",
    ]
    logged = {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "evaluation")}
    assert {"evaluation/learning_curve.png", "evaluation/confusion.png", "evaluation/precision_recall.png"} <= logged
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    served = pyfunc.predict(pd.DataFrame({"text": texts}))
    assert len(served) == len(texts)
    model, _ = load_model(dest / "models/model.joblib")
    assert served.label.tolist() == model.predict(texts).tolist()
