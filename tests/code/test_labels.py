"""Unit tests of label validation: every bad row is named with its file and row."""

import pytest

from pipeline.labels import (
    COLUMNS,
    Label,
    LabelError,
    batch_conflicts,
    load_labels,
    merge_into,
    read_label_file,
    write_label_file,
)
from pipeline.text import paragraph_hash

ARTICLES = {
    "a/1": ["Công an triệt phá đường dây mua bán người.", "Giá xăng tăng nhẹ."],
    "a/2": ["Các nạn nhân được hỗ trợ tái hòa nhập cộng đồng."],
}


def row(article="a/1", idx=0, label="cooperation", h=None, method="manual"):
    h = h or paragraph_hash(ARTICLES.get(article, ["x"] * (idx + 1))[idx] if article in ARTICLES else "x")
    return ",".join([article, str(idx), h, label, method, "tester"])


def write(tmp_path, *rows, name="labels.csv"):
    path = tmp_path / name
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_valid_labels_load(tmp_path):
    path = write(tmp_path, row(), row(idx=1, label="off_topic"), row("a/2", 0, "victim_support"))
    labels = load_labels([path], ARTICLES)
    assert {(lab.article_id, lab.paragraph, lab.label) for lab in labels} == {
        ("a/1", 0, "cooperation"),
        ("a/1", 1, "off_topic"),
        ("a/2", 0, "victim_support"),
    }


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (row(label="trafficking"), "unknown label 'trafficking'"),
        (row(article="a/9"), "article 'a/9' is not in the corpus"),
        (row(idx=5, h="0" * 16), "has 2 paragraphs, no index 5"),
        (row(h="0123456789abcdef"), "no longer matches"),
        (row(h="xyz"), "hash must be 16 hex digits"),
        ("a/1,one," + "0" * 16 + ",off_topic,manual,", "paragraph must be a whole number"),
        ("a/1,0,,off_topic,manual,", "missing hash"),
        (row(method="guess"), "method must be 'manual' or 'rule:NAME'"),
    ],
)
def test_bad_row_stops_with_file_and_row(tmp_path, bad_row, message):
    path = write(tmp_path, row("a/2", 0, "victim_support"), bad_row)
    with pytest.raises(LabelError, match=message) as err:
        load_labels([path], ARTICLES)
    assert f"{path}:3" in str(err.value)


def test_disagreeing_rows_are_a_conflict(tmp_path):
    one = write(tmp_path, row(label="cooperation"), name="one.csv")
    two = write(tmp_path, row(label="statistics"), name="two.csv")
    with pytest.raises(LabelError, match="labeled 'statistics' but .*one.csv:2 says 'cooperation'"):
        load_labels([one, two], ARTICLES)


def test_missing_header_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("article_id,paragraph\na/1,0\n", encoding="utf-8")
    labels, problems = read_label_file(path)
    assert not labels and "header lacks column(s) hash, label" in problems[0]


def test_merge_is_idempotent_and_reports_conflicts(tmp_path):
    h = paragraph_hash(ARTICLES["a/1"][0])
    base = [Label("a/1", 0, h, "cooperation")]
    merged, added, conflicts = merge_into(base, [Label("a/1", 0, h, "cooperation")])
    assert (len(merged), added, conflicts) == (1, 0, [])
    merged, added, conflicts = merge_into(base, [Label("a/1", 0, h, "off_topic", where="b:3")])
    assert added == 0 and "b:3" in conflicts[0]
    path = tmp_path / "out.csv"
    write_label_file(path, merged)
    first = path.read_bytes()
    write_label_file(path, read_label_file(path)[0])
    assert path.read_bytes() == first


def test_a_label_file_saved_with_a_bom_reads_every_row(tmp_path):
    path = write(tmp_path, row(), row("a/2", 0, "victim_support"))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # what Excel's "CSV UTF-8" writes
    labels, problems = read_label_file(path)
    assert problems == [] and len(labels) == 2


def test_rows_of_one_batch_that_disagree_are_both_rejected():
    h = paragraph_hash(ARTICLES["a/1"][0])
    batch = [
        Label("a/1", 0, h, "cooperation", where="b:2"),
        Label("a/1", 0, h, "statistics", where="b:3"),
        Label("a/2", 0, paragraph_hash(ARTICLES["a/2"][0]), "victim_support", where="b:4"),
    ]
    kept, problems = batch_conflicts(batch)
    assert [lab.where for lab in kept] == ["b:4"]
    assert problems == [
        "b:3: a/1 paragraph 0 is 'statistics' here but 'cooperation' at b:2: "
        "the two rows conflict with each other; neither is imported"
    ]


@pytest.mark.parametrize("annotator", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)"])
def test_free_text_that_a_spreadsheet_would_run_is_written_as_text(tmp_path, annotator):
    h = paragraph_hash(ARTICLES["a/1"][0])
    path = tmp_path / "out.csv"
    write_label_file(path, [Label("a/1", 0, h, "cooperation", annotator=annotator)])
    (lab,), problems = read_label_file(path)
    assert problems == [] and lab.annotator == "'" + annotator
    write_label_file(path, [lab])  # written again: one apostrophe, not two
    assert read_label_file(path)[0][0].annotator == "'" + annotator
