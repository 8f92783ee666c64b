"""The labeling workflow: picking what to label next, and importing labeled batches (sentences written here)."""

import gzip
import json

import pytest
import yaml

from pipeline.annotate import import_file, near_duplicate_key, pick_uncertain, read_answers, render_batch
from pipeline.labels import read_label_file
from pipeline.text import Article, paragraph_hash


def cand(article, i, margin, text, source="general"):
    return {"article_id": article, "paragraph": i, "margin": margin, "text": text, "source": source}


@pytest.mark.parametrize(
    ("a", "b"),
    [("Giá vàng tăng 2%.", "giá vàng tăng 5 %"), ("Xem  nhiều", "xem nhiều!")],
)
def test_near_duplicates_share_a_key(a, b):
    assert near_duplicate_key(a) == near_duplicate_key(b)


def test_pick_uncertain_spreads_across_articles_and_sources_without_duplicates():
    cands = [
        cand("a", 0, 0.01, "Câu một về chợ."),
        cand("a", 1, 0.02, "Câu hai về trường."),
        cand("a", 2, 0.03, "Câu ba về bệnh viện."),
        cand("b", 0, 0.05, "Câu một về chợ."),  # duplicate of a/0
        cand("c", 0, 0.04, "Một câu khác hẳn.", source="related"),
        cand("d", 0, 0.90, "Câu rất chắc chắn.", source="related"),
    ]
    chosen = pick_uncertain(cands, n=4, per_article=2)
    keys = [(c["article_id"], c["paragraph"]) for c in chosen]
    assert keys == [("a", 0), ("c", 0), ("a", 1), ("d", 0)]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A corpus of two written articles, params pointing at it, and an empty label set."""
    import gzip

    corpus = tmp_path / "corpus"
    (corpus / "seeds").mkdir(parents=True)
    arts = {
        "x/1": "Công an bắt giữ đối tượng mua bán người.\nGiá vàng tăng nhẹ.",
        "x/2": "Nạn nhân được hỗ trợ tái hòa nhập cộng đồng.",
    }
    for name in ("trafficking", "related", "general"):
        with gzip.open(corpus / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            if name == "trafficking":
                for aid, text in arts.items():
                    f.write(json.dumps({"id": aid, "text": text}, ensure_ascii=False) + "\n")
    from pipeline.config import PARAMS

    params = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    params["corpus"]["dir"] = str(corpus)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return tmp_path


def test_import_reports_bad_rows_by_line_keeps_good_ones_and_is_idempotent(project, capsys):
    h0 = paragraph_hash("Công an bắt giữ đối tượng mua bán người.")
    h2 = paragraph_hash("Nạn nhân được hỗ trợ tái hòa nhập cộng đồng.")
    batch = project / "batch.jsonl"
    lines = [
        json.dumps({"article_id": "x/1", "paragraph": 0, "hash": h0, "label": "cooperation"}),
        "{not json",
        json.dumps({"article_id": "x/1", "paragraph": 1, "hash": h0, "label": "off_topic"}),  # stale hash
        json.dumps({"article_id": "x/2", "paragraph": 0, "hash": h2, "label": "victims"}),  # unknown label
        json.dumps({"article_id": "x/2", "paragraph": 0, "hash": h2, "label": "victim_support", "annotator": "an"}),
    ]
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    into = project / "labels" / "manual.csv"
    assert import_file(batch, "tester", into, project / "params.yaml") == 1
    err = capsys.readouterr().err
    assert f"{batch}:2: malformed JSON" in err
    assert f"{batch}:3: hash" in err and "no longer matches" in err
    assert f"{batch}:4: unknown label 'victims'" in err
    labels, problems = read_label_file(into)
    assert not problems
    assert {(lab.article_id, lab.paragraph, lab.label, lab.annotator) for lab in labels} == {
        ("x/1", 0, "cooperation", "tester"),
        ("x/2", 0, "victim_support", "an"),
    }
    before = into.read_bytes()
    import_file(batch, "tester", into, project / "params.yaml")
    assert into.read_bytes() == before  # re-importing changes nothing

    conflict = project / "conflict.csv"
    conflict.write_text(f"article_id,paragraph,hash,label\nx/1,0,{h0},statistics\n", encoding="utf-8")
    assert import_file(conflict, "other", into, project / "params.yaml") == 1
    assert "already 'cooperation'" in capsys.readouterr().err
    assert into.read_bytes() == before


def test_batch_answers_must_cover_every_paragraph(tmp_path):
    art = Article(id="x/1", text="Dòng một.\nDòng hai.")
    _, manifest = render_batch("b000", [art])
    answers = tmp_path / "b000.labels.txt"
    answers.write_text("A1 0 C\nA1 0 O\nA1 7 O\nbad line\n", encoding="utf-8")
    rows, problems = read_answers(answers, manifest)
    assert [r["label"] for r in rows] == ["cooperation"]
    assert any("answered twice, differently" in p for p in problems)
    assert any("no paragraph A1 7" in p for p in problems)
    assert any(":4: not 'KEY INDEX CODE'" in p for p in problems)
    assert any("1 paragraph(s) not answered, first: A1 1" in p for p in problems)


def _import(project, lines, into, name="batch.jsonl"):
    batch = project / name
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return import_file(batch, "tester", into, project / "params.yaml")


H0 = paragraph_hash("Công an bắt giữ đối tượng mua bán người.")
H2 = paragraph_hash("Nạn nhân được hỗ trợ tái hòa nhập cộng đồng.")


def test_import_into_a_label_file_saved_with_a_bom_keeps_its_rows(project):
    into = project / "labels" / "manual.csv"
    into.parent.mkdir()
    into.write_bytes(
        f"\ufeffarticle_id,paragraph,hash,label,method,annotator\nx/1,0,{H0},cooperation,manual,a\n".encode()
    )
    line = json.dumps({"article_id": "x/2", "paragraph": 0, "hash": H2, "label": "victim_support"})
    assert _import(project, [line], into) == 0
    labels, problems = read_label_file(into)
    assert problems == [] and {lab.article_id for lab in labels} == {"x/1", "x/2"}


def test_import_stops_on_a_bad_existing_row_and_leaves_the_file_alone(project):
    from pipeline.labels import LabelError

    into = project / "labels" / "manual.csv"
    into.parent.mkdir()
    into.write_text(f"article_id,paragraph,hash,label,method,annotator\nx/1,0,{H0},offtopic,manual,a\n")
    before = into.read_bytes()
    line = json.dumps({"article_id": "x/2", "paragraph": 0, "hash": H2, "label": "victim_support"})
    with pytest.raises(LabelError, match=f"{into}:2: unknown label 'offtopic'"):
        _import(project, [line], into)
    assert into.read_bytes() == before


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"article_id": "x/1", "paragraph": ' + "9" * 10_240 + "}", "malformed JSON (Exceeds the limit"),
        ("[" * 100_000 + "]" * 100_000, "malformed JSON (nested too deeply)"),
    ],
)
def test_import_names_a_line_json_cannot_hold(project, capsys, line, message):
    good = json.dumps({"article_id": "x/2", "paragraph": 0, "hash": H2, "label": "victim_support"})
    into = project / "labels" / "manual.csv"
    assert _import(project, [line, good], into) == 1
    assert f"batch.jsonl:1: {message}" in capsys.readouterr().err
    assert [lab.article_id for lab in read_label_file(into)[0]] == ["x/2"]


def test_conflicting_rows_of_one_batch_are_both_rejected(project, capsys):
    lines = [
        json.dumps({"article_id": "x/1", "paragraph": 0, "hash": H0, "label": lab})
        for lab in ("cooperation", "statistics")
    ]
    into = project / "labels" / "manual.csv"
    assert _import(project, lines, into) == 1
    err = capsys.readouterr().err
    assert "batch.jsonl:2: x/1 paragraph 0 is 'statistics' here but 'cooperation' at" in err
    assert "conflict with each other" in err and "already" not in err
    assert not into.exists()


def test_export_to_csv_keeps_text_from_running_as_a_formula(project):
    import csv

    from pipeline.annotate import export

    queue = project / "queue.jsonl"
    queue.write_text(json.dumps({"article_id": "x/1", "paragraph": 1, "hash": "0" * 16}) + "\n", encoding="utf-8")
    corpus = project / "corpus"
    with gzip.open(corpus / "trafficking.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": "x/1", "text": "Công an bắt giữ.\n=1+2 là công thức."}, ensure_ascii=False) + "\n")
    out = project / "batch.csv"
    assert export(queue, out, project / "params.yaml") == 0
    (row,) = csv.DictReader(out.open(encoding="utf-8"))
    assert row["text"] == "'=1+2 là công thức." and row["previous"] == "Công an bắt giữ."


def test_label_batches_writes_batches_that_import_batch_takes_back(project, capsys):
    from pipeline.cli import main

    out, params = project / "batches", str(project / "params.yaml")
    assert (
        main(
            ["--params", params, "label", "batches", "--files", "trafficking", "--max-paragraphs", "2", "-o", str(out)]
        )
        == 0
    )
    assert "2 batches of 2 articles" in capsys.readouterr().out
    manifests = sorted(out.glob("*.manifest.json"))
    assert [m.name for m in manifests] == ["b000.manifest.json", "b001.manifest.json"]
    for manifest in manifests:
        keys = json.loads(manifest.read_text(encoding="utf-8"))["articles"]
        answers = [f"{key} {i} O" for key, art in keys.items() for i in range(len(art["hashes"]))]
        manifest.with_name(manifest.name.replace(".manifest.json", ".labels.txt")).write_text("\n".join(answers) + "\n")
    into = project / "labels" / "manual.csv"
    labels = [str(m).replace(".manifest.json", ".labels.txt") for m in manifests]
    assert main(["--params", params, "label", "import-batch", *labels, "--annotator", "t", "--into", str(into)]) == 0
    assert len(into.read_text(encoding="utf-8").splitlines()) == 1 + 3  # a header and every paragraph
