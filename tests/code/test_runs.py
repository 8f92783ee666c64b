"""Unit tests of the run table, the run diff and the promotion rule (pure functions), and of the store errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import runs
from pipeline.runs import RunsError

ROOT = Path(__file__).resolve().parents[2]
ID_A, ID_B = "a" * 32, "b" * 32


def record(run_id, C="10.0", macro=0.7, test_hash="t1", data_hash="d1", start=1_700_000_000_000):
    metrics = {"macro_f1": macro, "accuracy": 0.8, "on_topic.f1": 0.85}
    for i, lab in enumerate(runs.LABELS):
        metrics.update({f"per_label.{lab}.{s}": 0.5 + i / 10 for s in ("precision", "recall", "f1")})
        metrics[f"per_label.{lab}.support"] = 10.0
    return {
        "run_id": run_id,
        "start_time": start,
        "name": f"run-{run_id[:2]}",
        "params": {"train.C": C, "train.features": "syllable"},
        "metrics": metrics,
        "tags": {"test_hash": test_hash, "data_hash": data_hash, "n_labels": "100", "git_commit": "abc"},
    }


def preds(predicted, gold=("cooperation", "off_topic", "statistics")):
    return pd.DataFrame(
        {
            "article_id": ["x/1", "x/1", "x/2"],
            "paragraph": [0, 1, 0],
            "hash": ["h0", "h1", "h2"],
            "gold": list(gold),
            "predicted": list(predicted),
        }
    )


# -- references and names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (ID_A, {"kind": "run", "run_id": ID_A}),
        (f"runs:/{ID_A}/model", {"kind": "run", "run_id": ID_A}),
        ("3", {"kind": "version", "name": "m", "version": "3"}),
        ("v12", {"kind": "version", "name": "m", "version": "12"}),
        ("@champion", {"kind": "alias", "name": "m", "alias": "champion"}),
        ("models:/other/4", {"kind": "version", "name": "other", "version": "4"}),
        ("models:/trafficking-topics@champion", {"kind": "alias", "name": "trafficking-topics", "alias": "champion"}),
    ],
)
def test_parse_ref(text, expected):
    assert runs.parse_ref(text, "m") == expected


@pytest.mark.parametrize("text", ["", "abc", "champion", "models:/", "runs:/nothex/model", "a" * 31])
def test_parse_ref_rejects_with_one_message(text):
    with pytest.raises(RunsError, match="not a run id"):
        runs.parse_ref(text, "m")


def test_model_uri_points_a_bare_run_at_its_model():
    assert runs.model_uri(f"runs:/{ID_A}") == f"runs:/{ID_A}/model"
    assert runs.model_uri(f"runs:/{ID_A}/model") == f"runs:/{ID_A}/model"
    assert runs.model_uri("models:/m@champion") == "models:/m@champion"


def test_run_name_is_the_experiment_name_or_the_commit():
    assert runs.run_name("bushy-moth", "0123456789abcdef") == "bushy-moth"
    assert runs.run_name("", "0123456789abcdef") == "repro@0123456"
    assert runs.run_name("", "0123456789abcdef-dirty") == "repro@0123456-dirty"
    assert runs.run_name("", "unknown") == "repro@nogit"


def test_prediction_refs_carry_no_text_and_split_hash_ignores_row_order():
    test = pd.DataFrame(
        {
            "article_id": ["x/2", "x/1"],
            "paragraph": [0, 3],
            "hash": ["h2", "h1"],
            "label": ["off_topic", "cooperation"],
            "text": ["Giá vàng tăng.", "Hai nước ký kết hợp tác."],
        }
    )
    refs = runs.prediction_refs(test, ["off_topic", "statistics"], np.array([[0.1, 0.9], [0.3, 0.7]]))
    assert list(refs.columns) == ["article_id", "paragraph", "hash", "gold", "predicted", "p_predicted"]
    assert refs.article_id.tolist() == ["x/1", "x/2"] and refs.predicted.tolist() == ["statistics", "off_topic"]
    assert runs.split_hash(refs) == runs.split_hash(refs.iloc[::-1])
    relabeled = refs.assign(gold=["statistics", "off_topic"])
    assert runs.split_hash(relabeled) != runs.split_hash(refs)  # other gold labels: another test split


def test_unflatten_restores_the_metrics_layout():
    assert runs.unflatten({"macro_f1": 0.7, "on_topic.f1": 0.8, "per_label.off_topic.f1": 0.9}) == {
        "macro_f1": 0.7,
        "on_topic": {"f1": 0.8},
        "per_label": {"off_topic": {"f1": 0.9}},
    }


# -- the table ---------------------------------------------------------------------------------


def test_table_shows_only_the_params_and_data_that_differ():
    rows = [record(ID_A, C="10.0"), record(ID_B, C="0.5", data_hash="d2")]
    columns, table = runs.run_table(rows)
    assert columns[:3] == ["run_id", "start_time", "name"]
    assert "train.C" in columns and "tag.data_hash" in columns
    assert "train.features" not in columns and "tag.test_hash" not in columns
    assert columns[-6:] == list(runs.TABLE_METRICS)
    assert [r["train.C"] for r in table] == ["10.0", "0.5"]


def test_table_formats():
    columns, table = runs.run_table([record(ID_A), record(ID_B, C="0.5", macro=0.75)])
    parsed = json.loads(runs.format_rows(columns, table, "json"))
    assert [r["macro_f1"] for r in parsed] == [0.7, 0.75]
    csv_lines = runs.format_rows(columns, table, "csv").splitlines()
    assert csv_lines[0].split(",") == columns and len(csv_lines) == 3
    text = runs.format_rows(columns, table, "table")
    assert ID_A in text and "macro_f1" in text and "statistics.f1" in text and "0.7500" in text
    with pytest.raises(RunsError):
        runs.format_rows(columns, table, "xml")


def test_order_by_quotes_dotted_metric_names():
    assert runs.order_by(None) == ["attributes.start_time DESC"]
    assert runs.order_by("per_label.statistics.f1")[0] == "metrics.`per_label.statistics.f1` DESC"
    assert runs.order_by("metrics.macro_f1", ascending=True)[0] == "metrics.`macro_f1` ASC"
    with pytest.raises(RunsError):
        runs.order_by("macro_f1`; drop")


# -- the diff ----------------------------------------------------------------------------------


def test_compare_on_the_same_split_lists_changed_paragraphs():
    a, b = record(ID_A, macro=0.7), record(ID_B, C="0.5", macro=0.75)
    pa = preds(["cooperation", "cooperation", "off_topic"])
    pb = preds(["cooperation", "off_topic", "statistics"])
    diff = runs.compare(a, b, pa, pb)
    assert diff["same_test_split"] is True
    assert [p["key"] for p in diff["params"] if p["a"] != p["b"]] == ["train.C"]
    assert {m["key"]: m["delta"] for m in diff["metrics"]}["macro_f1"] == 0.05
    assert diff["per_label"][0]["f1"]["delta"] == 0.0
    assert [(c["article_id"], c["paragraph"], c["a"], c["b"], c["fixed"]) for c in diff["changed"]] == [
        ("x/1", 1, "cooperation", "off_topic", True),
        ("x/2", 0, "off_topic", "statistics", True),
    ]
    delta = np.array(diff["confusion"]["delta"])
    assert delta.sum() == 0 and np.trace(delta) == 2  # two more on the diagonal: two fixed
    text = runs.format_compare(diff)
    assert "test paragraphs that changed label: 2 (2 now right, 0 now wrong)" in text
    assert "train.C" in text and "train.features" not in text
    assert "train.features" in runs.format_compare(diff, all_params=True)
    json.dumps(diff)  # the JSON format needs plain types


def test_compare_on_different_splits_says_so_and_lists_no_paragraphs():
    a, b = record(ID_A), record(ID_B, test_hash="t2")
    diff = runs.compare(a, b, preds(["cooperation"] * 3), preds(["off_topic"] * 3))
    assert diff["same_test_split"] is False and diff["changed"] is None
    assert "delta" not in diff["confusion"]
    assert any("different test splits" in n for n in diff["notes"])
    assert "test split: DIFFERENT" in runs.format_compare(diff)


def test_compare_without_test_hash_or_predictions_says_so():
    a, b = record(ID_A, test_hash=None), record(ID_B)
    diff = runs.compare(a, b, None, None)
    assert diff["confusion"] is None and diff["changed"] is None
    assert any("no test_hash" in n for n in diff["notes"]) and any("no logged predictions" in n for n in diff["notes"])


# -- promotion ---------------------------------------------------------------------------------


def cand(version, macro, test_hash="t1"):
    return {"version": str(version), "run_id": f"{version:032d}", "macro_f1": macro, "test_hash": test_hash}


def test_first_promotion_needs_no_comparison():
    assert runs.promotion(cand(1, 0.5), None, "champion", False)[0] == "promote"


def test_lower_macro_f1_on_the_same_split_is_refused_unless_forced():
    decision, message = runs.promotion(cand(2, 0.70), cand(1, 0.72), "champion", False)
    assert decision == "refuse"
    assert "0.7000" in message and "0.7200" in message and "--force" in message
    decision, message = runs.promotion(cand(2, 0.70), cand(1, 0.72), "champion", True)
    assert decision == "promote" and "forced" in message


def test_equal_or_higher_macro_f1_is_promoted():
    assert runs.promotion(cand(2, 0.72), cand(1, 0.72), "champion", False)[0] == "promote"
    assert runs.promotion(cand(2, 0.80), cand(1, 0.72), "champion", False)[0] == "promote"


def test_uncomparable_models_are_refused_unless_forced():
    assert runs.promotion(cand(2, 0.90, "t2"), cand(1, 0.72, "t1"), "champion", False)[0] == "refuse"
    assert runs.promotion(cand(2, None), cand(1, 0.72), "champion", False)[0] == "refuse"
    assert runs.promotion(cand(2, 0.90, "t2"), cand(1, 0.72, "t1"), "champion", True)[0] == "promote"
    assert runs.promotion(cand(2, 0.5), cand(1, None), "champion", False)[0] == "promote"  # champion never evaluated


def test_promoting_the_champion_again_changes_nothing():
    assert runs.promotion(cand(1, 0.5), cand(1, 0.5), "champion", False)[0] == "same"


# -- store errors: one line, exit code 2, no traceback -----------------------------------------


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """An empty folder with the project's params file, as the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "params.yaml", tmp_path / "configs" / "params.yaml")
    return tmp_path


@pytest.mark.parametrize("argv", [["runs"], ["runs", "compare", ID_A, ID_B], ["promote", ID_A]])
def test_missing_store_is_one_clear_error(store_env, capsys, monkeypatch, argv):
    from pipeline.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store_env / 'missing.db'}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no tracking store" in err and "Traceback" not in err
    assert not (store_env / "missing.db").exists()  # reading never creates an empty store


def test_corrupted_store_is_one_clear_error(store_env, capsys, monkeypatch):
    from pipeline.cli import main

    (store_env / "bad.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store_env / 'bad.db'}")
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_resolve_model_on_missing_store_is_a_model_error(store_env, monkeypatch):
    from pipeline.model import ModelError
    from pipeline.tracking import resolve_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store_env / 'missing.db'}")
    with pytest.raises(ModelError, match="no tracking store"):
        resolve_model("models:/m@champion")


def test_unreachable_tracking_server_is_one_clear_error(store_env, capsys, monkeypatch):
    import socket

    from pipeline.cli import main

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    assert main(["runs", "compare", "@champion", ID_A]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: http://127.0.0.1:{port}") and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("models/model.joblib", "file"),
        ("/abs/path/model.joblib", "file"),
        ("./odd:name.joblib", "file"),
        ("runs:/" + "a" * 32, "mlflow"),
        ("runs:/" + "a" * 32 + "/model", "mlflow"),
        ("models:/topics@champion", "mlflow"),
        ("models:/topics/3", "mlflow"),
        ("http://127.0.0.1:8000/model.joblib", None),
        ("https://example.invalid/m", None),
        ("s3://bucket/model", None),
        ("file:///tmp/model.joblib", None),
        ("models://other-host/topics/1", None),
        ("runs:/not-a-run-id/model", None),
        ("mlflow-artifacts:/0/abc/artifacts/model", None),
    ],
)
def test_models_come_only_from_local_files_and_the_configured_store(text, source):
    from pipeline.runs import check_model_source

    if source is None:
        with pytest.raises(RunsError, match="configured"):
            check_model_source(text)
    else:
        assert check_model_source(text) == source
