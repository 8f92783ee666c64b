"""`python -m pipeline tag` as a user runs it: mixed inputs with a broken one, every output and option, atomic writes, and the Spark engine."""

import codecs
import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from pipeline.config import LABELS

ARTICLE = (
    "Hai nước ký kết thỏa thuận hợp tác phòng, chống mua bán người.\n\n"
    "Các nạn nhân được hỗ trợ tâm lý, học nghề và đưa về địa phương an toàn.\n"
    "Đội bóng địa phương giành chiến thắng trong trận chung kết tối qua.\n"
)
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Tin mẫu</title><script>quangCao()</script></head><body>
<nav><a href="/">Trang chủ</a> <a href="/the-thao">Thể thao</a></nav>
<article><h1>Giải cứu nạn nhân bị lừa bán sang nước ngoài</h1>
<p>Lực lượng chức năng đã giải cứu năm nạn nhân bị lừa bán sang nước ngoài làm việc trái phép.</p>
<p>Các nạn nhân được tiếp nhận, hỗ trợ tâm lý và đưa về gia đình trong tuần này.</p></article>
<footer>Bản quyền tòa soạn mẫu</footer></body></html>"""


def tag(args, cwd=ROOT, stdin=None, timeout=300):
    cmd = [sys.executable, "-m", "pipeline", "--params", str(ROOT / "configs" / "params.yaml"), "tag", *map(str, args)]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, timeout=timeout, env=env)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus_lines(corpus_dir):
    with gzip.open(corpus_dir / "trafficking.jsonl.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, 40)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, corpus_lines):
    """A folder of articles in several encodings and a page, a JSONL file with one malformed line, a binary file."""
    root = tmp_path_factory.mktemp("inputs")
    folder = root / "articles"
    (folder / "sub").mkdir(parents=True)
    (folder / "a_utf8.txt").write_text(ARTICLE, encoding="utf-8")
    (folder / "b_utf16.txt").write_bytes(ARTICLE.encode("utf-16"))
    (folder / "c_bom.txt").write_bytes(codecs.BOM_UTF8 + ARTICLE.encode("utf-8"))
    (folder / "sub" / "d_page.html").write_text(PAGE, encoding="utf-8")
    (folder / "e_broken.txt").write_bytes(b"\x00\x01\x02\xff\xfe\x00\x81\x8d\x90" * 40)
    records = root / "records.jsonl.gz"
    lines = corpus_lines[:10] + ["{this is not json"] + corpus_lines[10:20]
    records.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return folder, records


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, inputs, model_file):
    folder, records = inputs
    out = tmp_path_factory.mktemp("out")
    done = tag(
        [
            folder,
            records,
            out / "missing.txt",
            "--model",
            model_file,
            "-o",
            out / "tags.jsonl",
            "--summary",
            out / "summary.jsonl",
            "--report",
            out / "report.html",
            "--explain",
            "3",
        ]
    )
    return done, out


def test_mixed_inputs_broken_ones_named_the_rest_tagged(mixed_run, inputs):
    done, out = mixed_run
    folder, records = inputs
    err = done.stderr.decode("utf-8")
    assert done.returncode == 1, err
    assert "Traceback" not in err
    assert f"{folder / 'e_broken.txt'}: cannot be decoded" in err
    assert f"{records}:11: malformed JSON" in err
    assert f"{out / 'missing.txt'}: no such file" in err
    assert err.strip().splitlines()[-1].startswith("tag: 3 of 27 inputs failed")
    recs = read_jsonl(out / "tags.jsonl")
    articles = list(dict.fromkeys(r["article_id"] for r in recs))
    names = ["a_utf8.txt", "b_utf16.txt", "c_bom.txt", "sub/d_page.html"]
    assert articles[:4] == [str(folder / n) for n in names]
    assert len(articles) == 4 + 20
    by_article = {a: [r["text"] for r in recs if r["article_id"] == a] for a in articles[:3]}
    assert by_article[articles[0]] == by_article[articles[1]] == by_article[articles[2]]
    page = [r["text"] for r in recs if r["article_id"] == articles[3]]
    assert page[0] == "Giải cứu nạn nhân bị lừa bán sang nước ngoài" and not any("Trang chủ" in p for p in page)
    for r in recs:
        assert set(r["probabilities"]) == set(LABELS) and r["probability"] == max(r["probabilities"].values())
        assert r["on_topic"] == (r["label"] != "off_topic") and isinstance(r["terms"], list)


def test_summary_one_record_per_article_with_fields(mixed_run):
    _, out = mixed_run
    recs = read_jsonl(out / "tags.jsonl")
    summary = read_jsonl(out / "summary.jsonl")
    assert [s["article_id"] for s in summary] == list(dict.fromkeys(r["article_id"] for r in recs))
    for s in summary:
        mine = [r for r in recs if r["article_id"] == s["article_id"]]
        assert s["paragraphs"] == len(mine) == sum(s["counts"].values())
        assert s["on_topic_paragraphs"] == sum(r["on_topic"] for r in mine)
    assert {"source", "title"} <= set(summary[-1]["fields"])  # corpus records' other fields are carried through


def test_report_is_one_self_contained_page(mixed_run):
    _, out = mixed_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert page.index("<table>") < page.index("<section>")
    assert page.count("<section>") == 24
    assert 'class="para l-victim_support" title="victim_support (' in page


def test_min_confidence_paragraphs_only_no_text_and_stdin(tmp_path, model_file):
    paras = tmp_path / "paras.jsonl"
    lines = [
        {"id": 17, "text": "Nạn nhân được hỗ trợ tâm lý.\nDòng hai vẫn cùng đoạn."},
        {"id": "x-2", "text": "Giá vàng hôm nay."},
    ]
    paras.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    done = tag([paras, "--paragraphs", "--model", model_file, "--min-confidence", "0.999", "--no-text", "--jobs", "1"])
    assert done.returncode == 0, done.stderr.decode()
    recs = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [(r["article_id"], r["paragraph"]) for r in recs] == [("17", 0), ("x-2", 0)]
    assert all("text" not in r and r["label"] == "uncertain" for r in recs)
    piped = tag(["-", "--model", model_file, "--jobs", "1", "--quiet"], stdin=ARTICLE.encode("utf-16"))
    assert piped.returncode == 0 and piped.stderr == b""
    assert [json.loads(line)["paragraph"] for line in piped.stdout.decode().splitlines()] == [0, 1, 2]


def test_csv_and_parquet_hold_the_jsonl_records(tmp_path, inputs, model_file):
    folder, _ = inputs
    for name in ("t.jsonl", "t.csv", "t.parquet"):
        done = tag([folder, "--model", model_file, "-o", tmp_path / name, "--quiet"])
        assert done.returncode == 1  # the broken file
    recs = read_jsonl(tmp_path / "t.jsonl")
    for frame in (pd.read_csv(tmp_path / "t.csv", keep_default_na=False), pd.read_parquet(tmp_path / "t.parquet")):
        assert frame.article_id.tolist() == [r["article_id"] for r in recs]
        assert frame.text.tolist() == [r["text"] for r in recs]
        assert frame.label.tolist() == [r["label"] for r in recs]
        for lab in LABELS:
            assert frame[f"p_{lab}"].astype(float).tolist() == [r["probabilities"][lab] for r in recs]
    assert pd.read_parquet(tmp_path / "t.parquet").paragraph.dtype == "int64"


def test_a_failed_run_leaves_the_old_output_and_no_temp_file(tmp_path, inputs, model_file):
    folder, _ = inputs
    bad_model = tmp_path / "model.joblib"
    bad_model.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")
    (tmp_path / "model.json").write_text(json.dumps({"sha256": "0" * 64}), encoding="utf-8")
    out = tmp_path / "tags.jsonl"
    out.write_text("old\n", encoding="utf-8")
    done = tag([folder, "--model", bad_model, "-o", out])
    err = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in err and "sha256" in err
    assert out.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib", "model.json", "tags.jsonl"]


def test_an_interrupted_run_leaves_no_half_written_file(tmp_path, corpus_dir, model_file):
    out = tmp_path / "tags.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "tag",
        str(corpus_dir / "general.jsonl.gz"),
        "--model",
        str(model_file),
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".tags.jsonl.") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(1.0)  # well into the run: the temporary file is being written
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def parquet_input(tmp_path_factory, corpus_dir):
    with gzip.open(corpus_dir / "related.jsonl.gz", "rt", encoding="utf-8") as f:
        recs = [json.loads(line) for line in itertools.islice(f, 60)]
    path = tmp_path_factory.mktemp("pq") / "articles.parquet"
    table = pa.table(
        {"id": [r["id"] for r in recs], "text": [r["text"] for r in recs], "source": [r["source"] for r in recs]}
    )
    pq.write_table(table, path, row_group_size=25)
    return path


@pytest.mark.slow
def test_spark_engine_equals_local_engine(tmp_path, inputs, parquet_input, model_file):
    folder, records = inputs
    runs = {}
    for engine in ("local", "spark"):
        out = tmp_path / engine
        done = tag(
            [
                folder,
                records,
                parquet_input,
                "--engine",
                engine,
                "--model",
                model_file,
                "-o",
                out / "tags.parquet",
                "--summary",
                out / "summary.jsonl",
                "--min-confidence",
                "0.6",
                "--explain",
                "2",
            ],
            timeout=600,
        )
        runs[engine] = done, out
    (local, lout), (spark, sout) = runs["local"], runs["spark"]
    assert local.returncode == spark.returncode == 1, spark.stderr.decode()
    errors = [[line for line in d.stderr.decode().splitlines() if line.startswith("error:")] for d in (local, spark)]
    assert errors[0] == errors[1] and len(errors[0]) == 2
    assert spark.stderr.decode().strip().splitlines()[-1] == local.stderr.decode().strip().splitlines()[-1]
    left, right = pd.read_parquet(lout / "tags.parquet"), pd.read_parquet(sout / "tags.parquet")
    assert len(left) > 1000 and left.article_id.nunique() == 4 + 20 + 60
    pd.testing.assert_frame_equal(left, right)
    assert (lout / "summary.jsonl").read_bytes() == (sout / "summary.jsonl").read_bytes()
