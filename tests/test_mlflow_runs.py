"""Runs, compare, promote, resolve_model and serving against a real SQLite store, filled by real training.

One `dvc repro` and one `dvc exp run -S train.C=0.05 -n lowc` in a temporary project make two runs
and two registered versions; the tests read them through the command line, as a user does.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import browser
import pandas as pd
import pytest
from conftest import make_project, project_env, run_id_of

pytestmark = pytest.mark.slow

NAME = "trafficking-topics"
# Sentences written for this test (no corpus text): one per label, and one of nothing in particular.
TEXTS = [
    "Bộ Công an hai nước ký biên bản hợp tác phòng, chống mua bán người qua biên giới.",
    "Các nạn nhân được đưa về nhà tạm lánh, được chăm sóc y tế và hỗ trợ học nghề.",
    "Trong năm qua, lực lượng chức năng phát hiện 120 vụ, giải cứu 250 nạn nhân.",
    "Đội tuyển bóng đá giành chiến thắng 2-0 trong trận đấu tối qua.",
    "Giá rau xanh tại chợ đầu mối tăng nhẹ do mưa kéo dài.",
]


def run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


OUTPUT: dict[str, str] = {}


@pytest.fixture(scope="module")
def project(tmp_path_factory, small_corpus):
    """Two real runs: the baseline (C=10) from `dvc repro`, then the experiment `lowc` (C=0.05)."""
    corpus, rows = small_corpus
    dest = make_project(tmp_path_factory.mktemp("runs"), corpus, rows, train={"C": 10.0})
    OUTPUT["first"] = run(["dvc", "repro", "evaluate"], dest)
    base = run_id_of(dest)
    run(["dvc", "exp", "run", "-S", "train.C=0.05", "-n", "lowc", "evaluate"], dest)
    exp = run_id_of(dest)
    assert base != exp
    return dest, base, exp


@pytest.fixture
def cli(project, monkeypatch, capsys):
    """`python -m pipeline ARGS...` in the project, in this process: (exit code, stdout, stderr)."""
    from pipeline.cli import main

    dest = project[0]
    monkeypatch.chdir(dest)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project_env(dest)["MLFLOW_TRACKING_URI"])

    def call(*argv):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.fixture
def client(project):
    import mlflow

    uri = project_env(project[0])["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def ranked(client, project):
    """(worse, better) run ids by macro-F1; the two params must not score the same."""
    _, base, exp = project
    f1 = {r: client.get_run(r).data.metrics["macro_f1"] for r in (base, exp)}
    assert f1[base] != f1[exp], f"C=10 and C=0.05 scored the same macro-F1 {f1}; pick params that differ"
    return tuple(sorted(f1, key=f1.get))


def version_of(client, run_id: str) -> str:
    (mv,) = client.search_model_versions(f"name = '{NAME}' and run_id = '{run_id}'")
    return str(mv.version)


def test_runs_are_named_tagged_and_registered(project, client):
    dest, base, exp = project
    b, e = client.get_run(base), client.get_run(exp)
    assert b.info.run_name.startswith("repro@") and b.data.tags["dvc_exp_name"] == ""
    assert e.info.run_name == "lowc" and e.data.tags["dvc_exp_name"] == "lowc"  # DVC_EXP_NAME, set by `dvc exp run`
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True).stdout.strip()
    assert e.data.tags["dvc_exp_baseline_rev"] == head and b.data.tags["git_commit"].startswith(head)
    for r in (b, e):
        assert r.data.tags["data_hash"] and int(r.data.tags["n_labels"]) > 0
        assert r.data.params["train.C"] in ("10.0", "0.05")
    assert b.data.tags["test_hash"] == e.data.tags["test_hash"]  # same split, different C
    assert b.data.tags["data_hash"] == e.data.tags["data_hash"]
    versions = {mv.run_id for mv in client.search_model_versions(f"name = '{NAME}'")}
    assert versions == {base, exp}
    local = client.download_artifacts(exp, "evaluation/predictions.csv", str(dest))
    predictions = pd.read_csv(local)
    assert list(predictions.columns) == ["article_id", "paragraph", "hash", "gold", "predicted", "p_predicted"]
    assert len(predictions) == int(e.data.metrics["n_test"])
    logged = {f.path for f in client.list_artifacts(exp, "evaluation")}
    assert {"evaluation/confusion.png", "evaluation/precision_recall.png"} <= logged
    png = client.download_artifacts(exp, "evaluation/confusion.png", str(dest / "png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_first_version_becomes_champion_and_the_experiment_opens_on_runs(project, client):
    dest, base, _ = project
    # The MLflow 3 UI shows its GenAI overview unless the experiment says it holds training runs.
    exp = client.get_experiment_by_name(NAME)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert str(client.get_registered_model(NAME).aliases["champion"]) == version_of(client, base)
    assert f"{NAME} had no @champion: v1, its first registered version, is @champion now" in OUTPUT["first"]


def test_an_existing_experiment_gets_the_training_kind(tmp_path, monkeypatch):
    import mlflow

    from pipeline import tracking

    uri = f"sqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("made-before")  # as an older version of the pipeline left it
    assert "mlflow.experimentKind" not in client.get_experiment(exp_id).tags
    tracking.configure({"mlflow": {"experiment": "made-before", "tracking_uri": uri}})
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_serve_without_a_registered_version_says_what_creates_it(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    mlflow.MlflowClient(uri).create_experiment("empty")
    env = {**project_env(tmp_path), "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--params", str(Path(__file__).parents[1] / "params.yaml"), "serve"],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "no registered version yet" in line and "`dvc repro`" in line


def test_runs_table(project, cli, client):
    _, base, exp = project
    code, out, _ = cli("runs", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["run_id"] for r in rows] == [exp, base]  # newest first
    varying = set(rows[0]) - {"run_id", "start_time", "name", "macro_f1", "on_topic.f1"}
    assert {k for k in varying if not k.startswith("per_label.")} == {"train.C"}  # only what differs
    assert [r["train.C"] for r in rows] == ["0.05", "10.0"]
    assert rows[1]["name"].startswith("repro@") and rows[0]["name"] == "lowc"
    for r in rows:
        metrics = client.get_run(r["run_id"]).data.metrics
        assert r["macro_f1"] == metrics["macro_f1"]
        assert r["per_label.statistics.f1"] == metrics["per_label.statistics.f1"]

    worse, better = ranked(client, project)
    code, out, _ = cli("runs", "--sort", "macro_f1", "--format", "csv")
    lines = out.splitlines()
    assert lines[0].startswith("run_id,start_time,name,train.C,macro_f1,on_topic.f1,per_label.cooperation.f1")
    assert [line.split(",")[0] for line in lines[1:]] == [better, worse]
    code, out, _ = cli("runs", "--sort", "macro_f1", "--ascending", "--limit", "1", "--format", "json")
    assert [r["run_id"] for r in json.loads(out)] == [worse]
    code, out, _ = cli("runs", "--filter", "params.`train.C` = '0.05'", "--format", "json")
    assert [r["run_id"] for r in json.loads(out)] == [exp]
    code, out, _ = cli("runs")
    assert code == 0 and "macro_f1" in out and base in out and exp in out and "train.C" in out
    code, _, err = cli("runs", "--filter", "metrics.macro_f1 >>> 1")
    assert code == 2 and err.startswith("error:") and "Traceback" not in err


def test_runs_compare(project, cli, client):
    dest, base, exp = project
    code, out, _ = cli("runs", "compare", base, exp, "--format", "json")
    assert code == 0
    diff = json.loads(out)
    assert diff["same_test_split"] is True
    assert [p["key"] for p in diff["params"] if p["a"] != p["b"]] == ["train.C"]
    ma, mb = client.get_run(base).data.metrics, client.get_run(exp).data.metrics
    for m in diff["metrics"]:
        assert m["a"] == ma[m["key"]] and m["b"] == mb[m["key"]]
        assert m["delta"] == pytest.approx(mb[m["key"]] - ma[m["key"]], abs=1e-4)
    row = diff["per_label"][0]
    assert row["precision"]["delta"] == pytest.approx(
        mb[f"per_label.{row['label']}.precision"] - ma[f"per_label.{row['label']}.precision"], abs=1e-4
    )

    # The paragraph list agrees with what evaluate logged on its own: the confusion matrices and accuracy.
    conf = {r: pd.read_csv(client.download_artifacts(r, "evaluation/confusion.csv", str(dest))) for r in (base, exp)}
    labels = diff["confusion"]["labels"]
    for key, r in (("a", base), ("b", exp)):
        expected = pd.crosstab(conf[r].actual, conf[r].predicted).reindex(index=labels, columns=labels, fill_value=0)
        assert diff["confusion"][key] == expected.to_numpy().tolist()
    changed = diff["changed"]
    n_test = int(ma["n_test"])
    right_gain = sum(c["fixed"] for c in changed) - sum(c["broken"] for c in changed)
    assert right_gain == round((mb["accuracy"] - ma["accuracy"]) * n_test)
    test = pd.read_parquet(dest / "data" / "split" / "test.parquet")
    gold = dict(zip(zip(test.article_id, test.paragraph, strict=True), test.label, strict=True))
    assert changed and all(gold[(c["article_id"], c["paragraph"])] == c["gold"] and c["a"] != c["b"] for c in changed)

    code, out, _ = cli("runs", "compare", "1", "2")  # by registered version, as text
    assert code == 0 and "test paragraphs that changed label" in out and "train.C" in out and "confusion change" in out


def test_promote_refuses_a_worse_model_unless_forced(project, cli, client):
    worse, better = ranked(client, project)
    v_worse, v_better = version_of(client, worse), version_of(client, better)

    def champion():
        return str(client.get_registered_model(NAME).aliases.get("champion"))

    code, _, err = cli("runs", "compare", "@staging", better)
    assert code == 2 and "no version has the alias @staging yet" in err
    assert "`python -m pipeline promote VERSION --alias staging` creates it" in err and "Traceback" not in err

    assert cli("promote", worse, "--force")[0] == 0 and champion() == v_worse
    code, out, _ = cli("promote", v_better)
    assert code == 0 and champion() == v_better and "->" in out
    code, out, err = cli("promote", worse)
    assert code == 1 and champion() == v_better
    assert "refused" in err and "lower than the current @champion" in err and "--force" in err
    code, out, _ = cli("promote", worse, "--force")
    assert code == 0 and champion() == v_worse and "forced" in out
    assert cli("promote", f"models:/{NAME}/{v_better}")[0] == 0 and champion() == v_better

    code, _, err = cli("promote", "0123456789abcdef0123456789abcdef")
    assert code == 2 and "not found" in err and "Traceback" not in err
    code, _, err = cli("promote", "99")
    assert code == 2 and "not found" in err


def test_resolve_model_by_alias(project, cli, client):
    from pipeline.model import ModelError, load_model, predict
    from pipeline.tracking import resolve_model

    dest, _, exp = project
    worse, better = ranked(client, project)
    cli("promote", better)  # whatever the previous test left, champion is the better model
    model, meta = resolve_model(f"models:/{NAME}@champion")
    assert meta["mlflow_run_id"] == better and meta["version"] == version_of(client, better)
    assert (
        meta["registered_model"] == NAME
        and meta["metrics"]["macro_f1"] == client.get_run(better).data.metrics["macro_f1"]
    )
    labels, proba = predict(model, TEXTS)

    same, _ = resolve_model(f"runs:/{better}/model")
    assert predict(same, TEXTS)[0] == labels
    other, other_meta = resolve_model(f"models:/{NAME}/{version_of(client, worse)}")
    assert other_meta["sha256"] != meta["sha256"]

    saved, saved_meta = load_model(dest / "models" / "model.joblib")  # the workspace holds the last run: `lowc`
    ref = model if better == exp else other
    assert saved_meta["sha256"] == (meta if better == exp else other_meta)["sha256"]
    assert predict(saved, TEXTS)[0] == predict(ref, TEXTS)[0]
    assert (predict(saved, TEXTS)[1] == predict(ref, TEXTS)[1]).all()

    # A model file altered in the store is refused before it is unpickled.
    (path,) = [p for p in dest.glob("mlruns/*/models/*/artifacts/artifacts/model.joblib") if _run_of(p) == better]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        with pytest.raises(ModelError, match="sha256"):
            resolve_model(f"models:/{NAME}@champion")
    finally:
        path.write_bytes(original)
    with pytest.raises(ModelError, match="no version has the alias @nope"):
        resolve_model(f"models:/{NAME}@nope")


def _run_of(joblib_path: Path) -> str:
    import yaml

    return yaml.safe_load((joblib_path.parents[1] / "MLmodel").read_text(encoding="utf-8"))["run_id"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(cmd: list[str], cwd: Path, log_path: Path, ready: str, env: dict | None = None):
    """A server started on a free 127.0.0.1 port (`cmd` + host and port), its base URL once `ready` answers 200; stopped after."""
    port = free_port()
    log = log_path.open("w")
    server = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops its children (uvicorn, gunicorn) too
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"{cmd[2]} exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no {ready} in 90 s:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"{base}{ready}", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def post_error(url: str, payload: dict) -> tuple[int, dict]:
    """The status and JSON body of a request that is expected to fail."""
    import urllib.error

    try:
        post(url, payload)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    raise AssertionError(f"{payload} was accepted")


def test_serving_the_champion_answers_like_the_saved_model(project, cli, client, tmp_path):
    import sys

    from pipeline.model import predict, predict_articles
    from pipeline.tracking import resolve_model

    dest, _, _ = project
    _, better = ranked(client, project)
    cli("promote", better)
    model, _ = resolve_model(f"models:/{NAME}@champion")
    labels, proba = predict(model, TEXTS)
    classes = [str(c) for c in model.classes_]

    cmd = [sys.executable, "-m", "pipeline", "serve", "--alias", "champion"]  # what `make serve` runs
    with serving(cmd, dest, tmp_path / "serve.log", "/ping", env=project_env(dest)) as base:
        split = post(f"{base}/invocations", {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}})
        answers = split["predictions"]
        assert len(answers) == len(TEXTS)  # one answer per row
        assert [a["label"] for a in answers] == labels
        for i, a in enumerate(answers):
            for j, c in enumerate(classes):
                assert a[f"p_{c}"] == pytest.approx(float(proba[i, j]), abs=1e-9)
            assert a["probability"] == pytest.approx(float(proba[i].max()), abs=1e-9)
        records = post(f"{base}/invocations", {"dataframe_records": [{"text": t} for t in TEXTS[:2]]})
        assert records["predictions"] == answers[:2]
        inputs = post(f"{base}/invocations", {"inputs": [{"text": t} for t in TEXTS[2:]]})
        assert inputs["predictions"] == answers[2:]

        # Rows sharing an article_id are one article, in `paragraph` order: the labels and
        # probabilities of whole-article tagging, one answer per row in the input order.
        article = [TEXTS[0], TEXTS[3], TEXTS[1], TEXTS[2]]
        whole = predict_articles(model, [article])[0]
        rows = [{"text": t, "article_id": "a1", "paragraph": i} for i, t in enumerate(article)]
        order = [2, 0, 3, 1]
        request = [rows[i] for i in order] + [{"text": TEXTS[4]}]  # the last row has no article: alone
        got = post(f"{base}/invocations", {"dataframe_records": request})["predictions"]
        assert len(got) == len(request)
        for row, i in zip(got, order, strict=False):
            assert row["label"] == classes[int(whole[i].argmax())]
            for j, c in enumerate(classes):
                assert row[f"p_{c}"] == pytest.approx(float(whole[i, j]), abs=1e-9)
        assert got[-1] == answers[4]

        # Bad rows: 400 with one line naming the row, no stack trace; the same rule as `tag`.
        for bad, why in [(None, "not null"), ("", "not empty"), ("  ", "not empty")]:
            status, body = post_error(f"{base}/invocations", {"dataframe_records": [{"text": "ok"}, {"text": bad}]})
            assert status == 400, body
            assert "row 1: 'text' must be a non-empty string" in body["message"] and why in body["message"]
            assert "stack_trace" not in body and "Traceback" not in json.dumps(body)


def test_mlflow_ui_opens_on_the_training_runs(project, client, tmp_path):
    """`make ui`'s server and address, in a real browser without network: the experiment, then its two runs."""
    dest, _, _ = project
    uri = project_env(dest)["MLFLOW_TRACKING_URI"]
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]  # what `make ui` runs
    with serving(cmd, dest, tmp_path / "ui.log", "/health") as base:
        listing = browser.dom(
            f"{base}/#/experiments?workflowType=machine_learning", wait_ms=15000
        )  # what make ui prints
        assert NAME in listing
        runs = f"{base}/#/experiments/{client.get_experiment_by_name(NAME).experiment_id}?workflowType=machine_learning"
        page = browser.dom(runs, wait_ms=15000)
        assert "lowc" in page and "repro@" in page, "the runs table does not list both runs"
        shot = browser.screenshot(runs, tmp_path / "mlflow_ui.png", size=(1400, 900), wait_ms=15000)
        assert browser.colored_share(shot) > 0.001
