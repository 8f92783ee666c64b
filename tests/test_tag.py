"""`python -m pipeline tag` as a user runs it: mixed inputs with broken ones, every output and option, atomic writes,
hostile inputs, interrupted and resumed runs (the Spark engine: tests/test_spark.py).

Sentences in these tests were written for them; the corpus is only read at test time.
"""

import codecs
import gzip
import itertools
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time

import browser
import hostile_inputs as hostile_in
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from hostile_inputs import BAD_FILES, BAD_LINES, GOOD_TEXT, PARAGRAPHS, SCRIPT_AND_STYLE, tcvn3, vni

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


def tag_cmd(args) -> list[str]:
    return [sys.executable, "-m", "pipeline", "--params", str(ROOT / "configs" / "params.yaml"), "tag", *map(str, args)]


def tag(args, cwd=ROOT, stdin=None, timeout=300, prefix=()):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [*prefix, *tag_cmd(args)]
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
    # drawn by a real browser with no network: the table, 24 article sections, the label colours
    html = browser.dom((out / "report.html").resolve().as_uri(), wait_ms=1000)
    assert html.count("<section>") == 24
    shot = browser.screenshot((out / "report.html").resolve().as_uri(), out.parent / "report.png")
    assert browser.colored_share(shot) > 0.01
    fits = "document.querySelector('table').getBoundingClientRect().right <= document.body.getBoundingClientRect().right + 1"
    assert browser.evaluate(out / "report.html", fits) == "true"  # the summary table is not cut off on the right


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


# --- Hostile inputs, interruptions and repeated runs (issue 7) ---------------------------------------------

SUBJECTS = ["Lực lượng biên phòng", "Công an tỉnh", "Hai nước láng giềng", "Các nạn nhân", "Đội bóng địa phương"]
VERBS = ["đã giải cứu", "ký kết kế hoạch với", "được hỗ trợ bởi", "giành chiến thắng trước", "công bố số liệu về"]
OBJECTS = ["những người bị lừa bán", "đường dây đưa người trái phép", "đội khách", "giá lúa vụ mới", "học nghề"]
# Peak resident memory of the largest process in a run (the workers are waited for, so they count).
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def news_sentence(rng: random.Random) -> str:
    """A generated sentence; its numbers vary, so the scoring cache does not hide the work."""
    return (
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.randint(1, 999)} {rng.choice(OBJECTS)} "
        f"trong tháng {rng.randint(1, 12)} năm {rng.randint(1990, 2030)}."
    )


def news_article(rng: random.Random, n_paragraphs: int = 3) -> str:
    return "\n".join(f"{news_sentence(rng)} {news_sentence(rng)}" for _ in range(n_paragraphs))


def one_line(n_bytes: int, seed: int = 3) -> str:
    """One line of generated sentences, about `n_bytes` of UTF-8 and no line break."""
    rng, parts, size = random.Random(seed), [], 0
    while size < n_bytes:
        parts.append(news_sentence(rng))
        size += len(parts[-1].encode("utf-8")) + 1
    return " ".join(parts)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# The unit tests' bad files, less the two made for a tiny size limit; this run keeps the default 10 MB limit.
CLI_BAD_FILES = {name: case for name, case in BAD_FILES.items() if "limit" not in name}
HUGE_REASONS = {
    "50 MB single line": "is 50.0 MB, over the 10 MB limit for one article",
    "gzip bomb": "once decompressed, is over the 10 MB limit for one article",
}


def _write_hostile_folder(folder) -> dict:
    """Every hostile file and record in one folder; what each should give, by case."""
    folder.mkdir()
    cases = {"good": {}, "bad": {}, "lines": {}, "legacy": {}}
    for name, make in GOOD_TEXT.items():
        path = folder / f"good_{_slug(name)}.txt{'.gz' if 'gzipped' in name else ''}"
        path.write_bytes(make(hostile_in.ARTICLE))
        cases["good"][name] = path
    (folder / "good_page.html").write_text(hostile_in.PAGE, encoding="utf-8")
    (folder / "good_long_line.txt").write_text(one_line(1_000_000), encoding="utf-8")
    for name, encode in (("TCVN3", tcvn3), ("VNI", vni)):
        cases["legacy"][name] = folder / f"legacy_{name.lower()}.txt"
        cases["legacy"][name].write_bytes(encode(hostile_in.ARTICLE))
    for name, (example, make, reason) in CLI_BAD_FILES.items():
        path = folder / f"bad_{_slug(name)}{example[1:]}"
        path.write_bytes(make())
        cases["bad"][name] = (path, reason)
    huge = folder / "bad_50mb.txt"
    block = one_line(1_000_000).encode("utf-8")
    with open(huge, "wb") as f:
        for _ in range(50):
            f.write(block + b" ")
    bomb = folder / "bad_bomb.txt.gz"
    bomb.write_bytes(gzip.compress(b" " * 20_000_000, compresslevel=1))
    for name, path in (("50 MB single line", huge), ("gzip bomb", bomb)):
        cases["bad"][name] = (path, HUGE_REASONS[name])
    _write_records(folder / "records.jsonl", cases)
    rows = [{"id": "hang-1", "text": PARAGRAPHS[0]}, {"id": None, "text": "Câu."}, {"id": "hang-3", "text": None}]
    pq.write_table(pa.Table.from_pylist(rows), folder / "rows.parquet")
    return cases


def _write_records(path, cases: dict) -> None:
    """Good records with every bad line among them, a repeated id, blank lines, a 15 MB line, no final newline."""

    def good(i: int) -> bytes:
        return json.dumps({"id": f"r{i}", "text": PARAGRAPHS[i % len(PARAGRAPHS)]}, ensure_ascii=False).encode()

    lines = [good(0), b""]
    for k, (name, (line, reason)) in enumerate(BAD_LINES.items(), 1):
        if name == "gigantic record":
            line = json.dumps({"id": "lon", "text": "Câu rất dài. " * 900_000}, ensure_ascii=False).encode()
            reason = f"a line of {(len(line) + 1) / 10**6:.1f} MB, over the 10 MB limit"  # 15.3 MB, its break counted
        lines.append(line if isinstance(line, bytes) else line.encode("utf-8"))
        cases["lines"][name] = (len(lines), reason)
        lines.append(good(k))
    lines.append(json.dumps({"id": "r0", "text": "Một bản tin khác mang trùng mã."}, ensure_ascii=False).encode())
    cases["repeated"] = len(lines)
    cases["good_ids"] = ["r0", *(f"r{k}" for k in range(1, len(BAD_LINES) + 1)), "r0"]
    cases["n_records"] = sum(1 for line in lines if line.strip())
    path.write_bytes(b"\n".join(lines))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, model_file):
    """One run over every hostile input at once, with its peak memory: (completed process, output folder, cases)."""
    root = tmp_path_factory.mktemp("hostile")
    cases = _write_hostile_folder(root / "in")
    out, peak = root / "out", root / "peak_rss_kb"
    args = [root / "in", root / "in_missing.txt", "--model", model_file, "--jobs", "2"]
    args += ["-o", out / "tags.jsonl", "--summary", out / "summary.csv.gz", "--report", out / "report.html"]
    done = tag(args, prefix=(sys.executable, "-c", PEAK_RSS, str(peak)))
    return done, out, cases, args, int(peak.read_text())


def _by_article(out) -> dict:
    recs = {}
    for r in read_jsonl(out / "tags.jsonl"):
        recs.setdefault((r["source_path"], r["article_id"]), []).append(r)
    return recs


def test_hostile_run_completes_and_counts_its_failures(hostile):
    done, out, cases, _, _ = hostile
    err = done.stderr.decode("utf-8")
    assert done.returncode == 1 and "Traceback" not in err
    failed = len(cases["bad"]) + len(cases["lines"]) + 2 + 1  # files, lines, Parquet rows, the missing path
    inputs = len(cases["good"]) + 2 + 2 + len(cases["bad"]) + cases["n_records"] + 3 + 1  # + page, long line, legacy
    last, before = err.strip().splitlines()[-1], err.strip().splitlines()[-2]
    assert last == f"tag: {failed} of {inputs} inputs failed (messages above); all others were tagged"
    assert before.endswith("; 3 warnings above")  # the two legacy files and the repeated id
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.csv.gz", "tags.jsonl"]


@pytest.mark.parametrize("case", list(GOOD_TEXT))
def test_hostile_run_tags_every_encoding_and_form_like_the_clean_file(hostile, case):
    _, _, cases, _, _ = hostile
    recs = _by_article(hostile[1])
    mine = recs[(str(cases["good"][case]),) * 2]
    clean = recs[(str(cases["good"]["utf-8"]),) * 2]
    assert [r["text"] for r in mine] == PARAGRAPHS
    assert [r["probabilities"] for r in mine] == [r["probabilities"] for r in clean]


def test_hostile_run_tags_the_page_without_scripts_and_the_long_line(hostile):
    _, out, cases, args, _ = hostile
    recs = _by_article(out)
    page = str(args[0] / "good_page.html")
    texts = [r["text"] for r in recs[(page, page)]]
    assert texts == ["Giải cứu bốn nạn nhân bị lừa sang nước ngoài", *PARAGRAPHS]
    assert not any(bit in t for t in texts for bit in SCRIPT_AND_STYLE)
    long = str(args[0] / "good_long_line.txt")
    assert len(recs[(long, long)]) > 1000 and max(len(r["text"]) for r in recs[(long, long)]) <= 5000


@pytest.mark.parametrize("case", [*CLI_BAD_FILES, *HUGE_REASONS])
def test_hostile_run_names_each_bad_file(hostile, case):
    done, out, cases, _, _ = hostile
    path, reason = cases["bad"][case]
    lines = [line for line in done.stderr.decode("utf-8").splitlines() if line.startswith(f"error: {path}: ")]
    assert len(lines) == 1 and reason in lines[0], lines
    assert not any(r["source_path"] == str(path) for r in read_jsonl(out / "tags.jsonl"))


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_hostile_run_names_each_bad_line_by_number(hostile, case):
    done, _, cases, args, _ = hostile
    lineno, reason = cases["lines"][case]
    prefix = f"error: {args[0] / 'records.jsonl'}:{lineno}: "
    lines = [line for line in done.stderr.decode("utf-8").splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and reason in lines[0], lines


def test_hostile_run_keeps_every_good_record_and_warns_of_legacy_files_and_repeated_ids(hostile):
    done, out, cases, args, _ = hostile
    err = done.stderr.decode("utf-8")
    records = str(args[0] / "records.jsonl")
    summary = pd.read_csv(out / "summary.csv.gz", dtype={"article_id": str})
    assert summary[summary.source_path == records].article_id.tolist() == cases["good_ids"]
    assert len(cases["good_ids"]) == cases["n_records"] - len(cases["lines"])
    assert (
        f"warning: {records}:{cases['repeated']}: id 'r0' was already used at {records}:1; both records are tagged"
        in err
    )
    for path in cases["legacy"].values():
        assert f"warning: {path}: reads poorly as Vietnamese" in err
        assert (str(path), str(path)) in _by_article(out)  # tagged as read (best effort)
    rows = str(args[0] / "rows.parquet")
    assert (
        f"error: {rows}: row 2: record has no 'id'" in err
        and f"error: {rows}: row 3: record 'hang-3' has no 'text'" in err
    )
    assert (rows, "hang-1") in _by_article(out)


def test_hostile_run_memory_stays_bounded(hostile):
    # The 50 MB file and the 20 MB gzip bomb are never read whole (a stat, or 10 MB + 1 byte of gunzipped data),
    # and the 15 MB line is read in a 10 MB piece then 1 MB ones. Measured here: this run peaks at about 220 MB;
    # tagging a 10 MB single line peaks at 510 MB, so reading the 50 MB line as an article would pass 1.5 GB.
    peak_mb = hostile[4] / 1024
    assert peak_mb < 500, f"peak RSS {peak_mb:.0f} MB"


def test_two_runs_on_the_same_input_write_the_same_bytes(hostile, tmp_path):
    _, out, _, args, _ = hostile
    again = [
        a if a not in (out / n for n in ("tags.jsonl", "summary.csv.gz", "report.html")) else tmp_path / a.name
        for a in args
    ]
    done = tag(again)
    assert done.returncode == 1
    for name in ("tags.jsonl", "summary.csv.gz", "report.html"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


@pytest.fixture(scope="module")
def big_job(tmp_path_factory):
    """24,000 generated articles (72,000 paragraphs) in one 16 MB JSONL file: 16 units of work."""
    path = tmp_path_factory.mktemp("big") / "news.jsonl"
    rng = random.Random(11)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(24_000):
            f.write(json.dumps({"id": f"tin-{i}", "text": news_article(rng)}, ensure_ascii=False) + "\n")
    return path


def _units_done(journal) -> int:
    return journal.read_bytes().count(b"\n") - 1 if journal.is_file() else 0  # the first line is the job


def _wait_for_units(journal, proc, more_than: int) -> None:
    """Poll the checkpoint's journal until the run has recorded more than `more_than` units: progress, not a guess of time."""
    deadline = time.monotonic() + 60
    while _units_done(journal) <= more_than:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no progress in 60 s"
        time.sleep(0.02)


def _stop(proc, sig: int, group: bool) -> str:
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    return proc.communicate(timeout=60)[1].decode("utf-8")


@pytest.mark.slow
def test_interrupted_runs_resume_to_the_bytes_of_an_uninterrupted_run(tmp_path, big_job, model_file):
    def args(folder):
        out = ["-o", folder / "tags.jsonl", "--summary", folder / "summary.parquet", "--report", folder / "report.html"]
        return [big_job, "--model", model_file, "--jobs", "2", *out]

    whole = tag(args(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr.decode()
    out = tmp_path / "out"
    out.mkdir()
    folder = out / ".tags.jsonl.tag-resume"
    journal = folder / "journal.jsonl"
    parts = ["journal.jsonl", "out.part", "rows.part", "sections.part", "summary.part"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    popen = {
        "cwd": ROOT,
        "env": env,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.PIPE,
        "start_new_session": True,
    }

    # Ctrl-C in a terminal: SIGINT reaches the whole process group, workers included.
    first = subprocess.Popen(tag_cmd(args(out)), **popen)
    _wait_for_units(journal, first, 2)
    err = _stop(first, signal.SIGINT, group=True)
    assert first.returncode == 130 and "Traceback" not in err, err
    assert "tag: interrupted by SIGINT; no output written." in err and "--resume to carry on" in err
    assert [p.name for p in out.iterdir()] == [folder.name] and sorted(p.name for p in folder.iterdir()) == parts
    after_first = _units_done(journal)

    # Resumed, then SIGTERM to the main process alone (as `kill` or a job scheduler sends it).
    second = subprocess.Popen(tag_cmd([*args(out), "--resume"]), **popen)
    _wait_for_units(journal, second, after_first + 2)
    err = _stop(second, signal.SIGTERM, group=False)
    assert second.returncode == 143 and "Traceback" not in err, err
    assert re.search(r"tag: resuming from .*: [1-9]\d* inputs were done", err)
    assert "tag: interrupted by SIGTERM; no output written." in err
    assert [p.name for p in out.iterdir()] == [folder.name] and sorted(p.name for p in folder.iterdir()) == parts

    third = tag([*args(out), "--resume"])
    assert third.returncode == 0 and "tag: resuming from" in third.stderr.decode(), third.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.parquet", "tags.jsonl"]
    for name in ("tags.jsonl", "summary.parquet", "report.html"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert list(big_job.parent.iterdir()) == [big_job]  # nothing left beside the input either


# -- nothing clobbered, no single input takes the batch down, no model from anywhere (issue 11) ----


def _one_line_error(done) -> str:
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("case", ["input", "symlink", "fifo", "/dev/null", "/dev/stdout", "summary", "report"])
def test_an_output_that_would_clobber_something_is_refused_before_any_work(tmp_path, model_file, case):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "1", "text": ARTICLE}, ensure_ascii=False) + "\n", encoding="utf-8")
    target = tmp_path / "target.jsonl"
    target.write_text("keep me\n", encoding="utf-8")
    extra = []
    if case == "input":
        out = src
    elif case == "symlink":
        out = tmp_path / "link.jsonl"
        out.symlink_to(target)
    elif case == "fifo":
        out = tmp_path / "fifo.jsonl"
        os.mkfifo(out)
    elif case.startswith("/dev/"):
        out = case
    else:
        out = tmp_path / "same.jsonl"
        extra = [f"--{case}", out]
    before = src.read_bytes()
    err = _one_line_error(tag([src, "--model", model_file, "-o", out, *extra]))
    reason = {
        "input": "is also an input",
        "symlink": "is a symbolic link",
        "fifo": "is not a regular file",
        "/dev/null": "is not a regular file",
        "/dev/stdout": "is a symbolic link",
        "summary": "given to both -o and --summary",
        "report": "given to both -o and --report",
    }[case]
    assert err.startswith("error: ") and reason in err
    assert src.read_bytes() == before and target.read_text(encoding="utf-8") == "keep me\n"
    assert os.path.islink("/dev/stdout") and not (tmp_path / "same.jsonl").exists()
    if case == "fifo":
        assert stat.S_ISFIFO(os.stat(out).st_mode)


def test_a_model_url_is_refused_without_being_fetched(tmp_path):
    import http.server
    import threading

    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not a model")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = tmp_path / "a.txt"
        src.write_text(ARTICLE, encoding="utf-8")
        url = f"http://127.0.0.1:{server.server_port}/model.joblib"
        err = _one_line_error(tag([src, "--model", url, "-o", tmp_path / "out.jsonl"]))
    finally:
        server.shutdown()
    assert "models are loaded only from a local file or the configured MLflow store" in err
    assert requests == [] and not (tmp_path / "out.jsonl").exists()


def test_a_folder_with_a_fifo_a_linked_folder_and_odd_names_is_tagged_with_notes(tmp_path, model_file):
    folder = tmp_path / "in"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text(ARTICLE, encoding="utf-8")
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE, encoding="utf-8")
    (folder / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(folder / "x.txt")  # would block the run until killed
    (folder / "b\nerror: forged.txt").write_text("", encoding="utf-8")  # empty: its message names it
    with open(os.path.join(os.fsencode(folder), b"c\xff.txt"), "wb") as f:
        f.write(ARTICLE.encode("utf-8"))
    out = tmp_path / "out.jsonl"
    done = tag([folder, "--model", model_file, "-o", out], timeout=120)
    err = done.stderr.decode("utf-8")
    assert done.returncode == 1 and "Traceback" not in err, err
    lines = err.splitlines()
    assert f"note: {folder / 'linked'}: a link to a folder, not followed" in lines
    assert f"note: {folder / 'x.txt'}: a FIFO; skipped" in lines
    assert f"error: {folder}/b\\x0aerror: forged.txt: is empty" in lines
    assert "error: forged.txt: is empty" not in lines
    assert any(line.startswith(f"error: {folder}/c\\xff.txt: the file name is not valid UTF-8") for line in lines)
    assert {r["source_path"] for r in read_jsonl(out)} == {str(folder / "a.txt")}
    assert lines[-1] == "tag: 2 of 3 inputs failed (messages above); all others were tagged"


def test_a_disk_that_fills_during_the_write_is_one_message(tmp_path, corpus_lines, model_file):
    import resource

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(corpus_lines) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "tags.jsonl"

    def small_disk():  # writes past 64 kB fail with EFBIG, as a full disk fails with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = tag_cmd([src, "--model", model_file, "-o", out, "--jobs", "1"])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=300, env=env, preexec_fn=small_disk)  # noqa: PLW1509
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2 and "Traceback" not in err, err
    assert "cannot be written (File too large)" in err
    assert not out.exists() and not list(out.parent.glob("*.tmp"))


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        return [int(c) for c in f.read().split()]


@pytest.mark.slow
def test_a_killed_worker_stops_the_run_with_a_message_and_the_checkpoint_resumes(tmp_path, big_job, model_file):
    out = tmp_path / "tags.jsonl"
    journal = tmp_path / ".tags.jsonl.tag-resume" / "journal.jsonl"
    args = [big_job, "--model", model_file, "--jobs", "2", "-o", out]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(tag_cmd(args), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_units(journal, proc, 1)
    # The main process held still while a worker dies: it cannot finish the run (it submits the units) first.
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(_children(proc.pid)[0], signal.SIGKILL)
    os.kill(proc.pid, signal.SIGCONT)
    err = proc.communicate(timeout=60)[1].decode("utf-8")  # it used to hang here for ever
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "error: a worker process died" in err and "--resume carries on" in err
    assert not out.exists() and journal.is_file()
    resumed = tag([*args, "--resume"])
    assert resumed.returncode == 0 and "tag: resuming from" in resumed.stderr.decode(), resumed.stderr.decode()
    assert len(read_jsonl(out)) == 72_000


@pytest.mark.slow
def test_workers_left_behind_by_a_killed_main_process_end_quietly(tmp_path, big_job, model_file):
    journal = tmp_path / ".tags.jsonl.tag-resume" / "journal.jsonl"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = tag_cmd([big_job, "--model", model_file, "--jobs", "2", "-o", tmp_path / "tags.jsonl"])
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_units(journal, proc, 1)
    workers = _children(proc.pid)
    proc.kill()
    # The pipe closes only once every process holding it (the workers too) has ended.
    err = proc.communicate(timeout=60)[1].decode("utf-8")
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    # A worker closes the pipe while it exits: wait for it to be gone (or a zombie), bounded like _wait_for_units.
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{w}/status") and _state(w) != "Z" for w in workers):
        assert time.monotonic() < deadline, "a worker outlived its main process by 30 s"
        time.sleep(0.05)
    assert workers


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            return next(line.split()[1] for line in f if line.startswith("State:"))
    except (OSError, StopIteration):  # gone meanwhile
        return "Z"


@pytest.fixture(scope="module")
def context_model_file(tmp_path_factory, corpus_dir, labels):
    """A small context model (the default kind, decision rule included) fitted on 60 labeled trafficking articles."""
    import yaml

    from pipeline.model import ContextModel, meta_path, write_json
    from pipeline.text import paragraphs, read_corpus
    from pipeline.train import save_model

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["train"]
    manual = labels[labels.method == "manual"]
    wanted = sorted(manual[manual.article_id.str.startswith("vietnews/")].article_id.unique())[:60]
    gold = dict(zip(zip(manual.article_id, manual.paragraph, strict=True), manual.label, strict=True))
    arts, labs = [], []
    for art in read_corpus(corpus_dir, ("trafficking",)):
        if art.id in wanted:
            paras = paragraphs(art.text)
            arts.append(paras)
            labs.append([gold.get((art.id, i)) for i in range(len(paras))])
    model = ContextModel.from_params(params, cv=3, title=True, window=1, decision="off_factor", decision_folds=3).fit(
        arts, labs
    )
    path = tmp_path_factory.mktemp("context_model") / "model.joblib"
    write_json(meta_path(path), {"sha256": save_model(model, path), "labels": [str(c) for c in model.classes_]})
    return path


def test_group_by_gives_the_labels_of_whole_article_tagging(tmp_path, corpus_lines, context_model_file):
    from pipeline.text import paragraphs

    articles = [json.loads(line) for line in corpus_lines[20:32]]
    (tmp_path / "articles.jsonl").write_text("\n".join(corpus_lines[20:32]) + "\n", encoding="utf-8")
    done = tag(["--quiet", tmp_path / "articles.jsonl", "-o", tmp_path / "whole.jsonl", "--model", context_model_file])
    assert done.returncode == 0, done.stderr
    whole = {(r["article_id"], r["paragraph"]): r for r in read_jsonl(tmp_path / "whole.jsonl")}

    # The same articles as paragraph records, shuffled, with their article id and position as fields.
    rows = [
        {"id": f"{a['id']}#{i}", "text": p, "article_id": a["id"], "paragraph": i}
        for a in articles
        for i, p in enumerate(paragraphs(a["text"]))
    ]
    random.Random(3).shuffle(rows)
    (tmp_path / "paragraphs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    args = ["--quiet", "--paragraphs", "--group-by", "article_id", tmp_path / "paragraphs.jsonl"]
    done = tag([*args, "-o", tmp_path / "grouped.jsonl", "--model", context_model_file])
    assert done.returncode == 0, done.stderr
    grouped = read_jsonl(tmp_path / "grouped.jsonl")
    assert [r["article_id"] for r in grouped] == [r["id"] for r in rows]  # one record per input, in input order
    assert len(grouped) == len(whole)
    for rec in grouped:
        ref = whole[(rec["fields"]["article_id"], rec["fields"]["paragraph"])]
        assert (rec["label"], rec["probabilities"]) == (ref["label"], ref["probabilities"])

    # Without --group-by each record is a one-paragraph article: context lost, some labels differ.
    done = tag(
        [*args[:2], tmp_path / "paragraphs.jsonl", "-o", tmp_path / "alone.jsonl", "--model", context_model_file]
    )
    assert done.returncode == 0, done.stderr
    alone = read_jsonl(tmp_path / "alone.jsonl")
    assert any(a["probabilities"] != g["probabilities"] for a, g in zip(alone, grouped, strict=True))


@pytest.mark.parametrize(
    ("extra", "message"),
    [([], "--group-by FIELD goes with --paragraphs"), (["--paragraphs", "--engine", "spark"], "local engine only")],
)
def test_group_by_needs_paragraph_records_and_the_local_engine(tmp_path, extra, message):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "Một câu."}\n', encoding="utf-8")
    done = tag([tmp_path / "in.jsonl", "--group-by", "article_id", *extra, "-o", tmp_path / "out.jsonl"])
    assert done.returncode == 2 and message in done.stderr.decode()
