"""Unit tests of tag's inputs: decoding in every common encoding, web pages, records and folders (sentences written for these tests)."""

import codecs
import gzip
import json
import os
import unicodedata

import pytest
from hostile_inputs import cp1258

from pipeline.tagging.inputs import (
    InputError,
    Unit,
    decode_article,
    decode_bytes,
    expand,
    jsonl_units,
    kind_of,
    parse_unit,
    read_bytes,
    units,
    vietnamese_score,
)
from pipeline.text import normalize, paragraphs

TEXT = (
    "Lực lượng chức năng đã giải cứu ba nạn nhân bị lừa bán sang nước ngoài.\n"
    "Hai nước ký kết thỏa thuận hợp tác phòng, chống mua bán người.\n"
    "Các nạn nhân được hỗ trợ tâm lý và đưa về địa phương an toàn.\n"
)
SHORT = "Hoà bình và hợp tác."
ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 with BOM": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16 with BOM": lambda t: t.encode("utf-16"),
    "utf-16-le without BOM": lambda t: t.encode("utf-16-le"),
    "utf-16-be without BOM": lambda t: t.encode("utf-16-be"),
    "utf-32 with BOM": lambda t: t.encode("utf-32"),
    "windows-1258": cp1258,
    "utf-8 NFD": lambda t: unicodedata.normalize("NFD", t).encode("utf-8"),
}


@pytest.mark.parametrize("text", [TEXT, SHORT], ids=["article", "short"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_common_encoding_decodes_to_the_same_paragraphs(encoding, text):
    decoded, _ = decode_bytes(ENCODINGS[encoding](text))
    assert paragraphs(decoded) == paragraphs(text)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_text_files_in_every_encoding_give_the_same_article(tmp_path, encoding):
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(ENCODINGS[encoding](TEXT))
    article = decode_article(read_bytes(str(path)), str(path), "text")[0]
    assert paragraphs(article.text) == paragraphs(TEXT)
    assert article.id == article.path == str(path)


def test_gzipped_text_file_is_read(tmp_path):
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress(TEXT.encode("utf-8")))
    assert kind_of(str(path)) == "text"
    assert paragraphs(decode_article(read_bytes(str(path)), str(path), "text")[0].text) == paragraphs(TEXT)


def test_windows_1258_reads_as_vietnamese_not_as_another_code_page():
    decoded, encoding = decode_bytes(cp1258(TEXT))
    assert encoding == "cp1258"
    assert vietnamese_score(decoded) == 1.0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01\x02\x03\xff\xfe\x00\x81\x8d\x90" * 50, "cannot be decoded"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "byte-order mark"),
    ],
    ids=["binary", "broken utf-16"],
)
def test_undecodable_bytes_raise_a_named_error(data, reason):
    with pytest.raises(InputError, match=reason):
        decode_bytes(data)


PAGE = """<!DOCTYPE html><html><head><meta charset="{charset}"><title>Tin mẫu</title>
<script>var quangCao = "đoạn mã không phải bài báo";</script></head><body>
<nav><a href="/">Trang chủ</a> <a href="/the-thao">Thể thao</a> <a href="/giai-tri">Giải trí</a></nav>
<article><h1>Hai nước ký kết hợp tác phòng, chống mua bán người</h1>
<p>Bộ Công an hai nước đã ký biên bản ghi nhớ về hợp tác phòng, chống tội phạm mua bán người trong giai đoạn tới.</p>
<p>Theo thỏa thuận, hai bên sẽ trao đổi thông tin, phối hợp điều tra và hỗ trợ nạn nhân trở về nước an toàn.</p>
<p>Trong năm qua, lực lượng chức năng đã giải cứu hơn một trăm nạn nhân bị lừa bán sang nước ngoài.</p>
</article><footer>Bản quyền thuộc về tòa soạn mẫu.</footer></body></html>"""


@pytest.mark.parametrize("charset", ["utf-8", "windows-1258"])
def test_web_page_main_text_without_navigation_or_scripts(charset):
    page = PAGE.format(charset=charset)
    data = page.encode("utf-8") if charset == "utf-8" else cp1258(page)
    article = decode_article(data, "trang.html", "html")[0]
    paras = paragraphs(article.text)
    assert paras[0] == "Hai nước ký kết hợp tác phòng, chống mua bán người"
    assert any("giải cứu hơn một trăm nạn nhân" in p for p in paras)
    assert not any("quangCao" in p or "Trang chủ" in p or "Bản quyền" in p for p in paras)
    assert article.extra["title"]


def test_page_without_text_is_an_error():
    with pytest.raises(InputError, match="no article text"):
        decode_article(b"<html><body><script>x()</script></body></html>", "trong.html", "html")[0]


def _jsonl(tmp_path, lines, name="a.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_jsonl_bad_lines_are_named_and_the_rest_parsed(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            json.dumps({"id": "a", "text": "Một.\nHai.", "source": "mẫu", "category": None}, ensure_ascii=False),
            "{not json",
            json.dumps({"id": "b"}),
            "",
            json.dumps({"text": "không có mã"}, ensure_ascii=False),
            json.dumps({"id": 7, "text": "Bảy."}, ensure_ascii=False),
        ],
    )
    parsed = parse_unit(next(jsonl_units(path)), paragraphs_mode=False)
    assert [a.id for a in parsed.articles] == ["a", "7"]
    assert parsed.articles[0].extra == {"source": "mẫu", "category": None}
    assert parsed.n_inputs == 5
    assert [e.split(": ")[0] for e in parsed.errors] == [f"{path}:2", f"{path}:3", f"{path}:5"]


def test_jsonl_gz_with_bom_and_line_numbers_across_chunks(tmp_path, monkeypatch):
    import pipeline.tagging.inputs as inputs

    monkeypatch.setattr(inputs, "CHUNK_RECORDS", 2)
    path = tmp_path / "b.jsonl.gz"
    lines = [json.dumps({"id": str(i), "text": f"Câu {i}."}, ensure_ascii=False) for i in range(5)]
    lines[3] = "{broken"
    path.write_bytes(gzip.compress(codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode("utf-8")))
    parsed = [parse_unit(u, False) for u in jsonl_units(str(path))]
    assert [a.id for p in parsed for a in p.articles] == ["0", "1", "2", "4"]
    assert [e for p in parsed for e in p.errors][0].startswith(f"{path}:4:")


def test_truncated_gzip_reports_the_file(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    data = gzip.compress(("\n".join(json.dumps({"id": str(i), "text": "x " * 200}) for i in range(2000))).encode())
    path.write_bytes(data[: len(data) // 2])
    errors = [u.data for u in jsonl_units(str(path)) if u.kind == "error"]
    assert len(errors) == 1 and str(path) in errors[0] and "cannot be read" in errors[0]


def test_paragraph_records_are_never_split_and_empty_text_is_an_error():
    unit = Unit(
        "jsonl",
        "p.jsonl",
        [b'{"id": "p1", "text": "D\xc3\xb2ng m\xe1\xbb\x99t\\nd\xc3\xb2ng hai"}', b'{"id": "p2", "text": "  "}'],
    )
    parsed = parse_unit(unit, paragraphs_mode=True)
    assert [a.id for a in parsed.articles] == ["p1"]
    assert normalize(parsed.articles[0].text) == "Dòng một dòng hai"
    assert parsed.errors == ["p.jsonl:2: paragraph 'p2' has empty 'text'"]


def test_missing_file_in_a_unit_is_named(tmp_path):
    parsed = parse_unit(Unit("text", str(tmp_path / "none.txt")), False)
    assert parsed.errors[0].startswith(f"{tmp_path / 'none.txt'}: cannot be read")


def test_expand_walks_folders_in_order_and_lists_missing_and_skipped(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.txt", "d/a.html", "d/sub/c.jsonl.gz", "d/image.png", "d/.hidden.txt", "notes"):
        (tmp_path / name).write_bytes(b"x")
    found, missing, skipped, notes = expand([str(tmp_path / "d"), str(tmp_path / "notes"), str(tmp_path / "nope"), "-"])
    assert found == [
        (str(tmp_path / "d" / "a.html"), "html"),
        (str(tmp_path / "d" / "b.txt"), "text"),
        (str(tmp_path / "d" / "sub" / "c.jsonl.gz"), "jsonl"),
        (str(tmp_path / "notes"), "text"),
        ("-", "stdin"),
    ]
    assert missing == [str(tmp_path / "nope")]
    assert skipped == [str(tmp_path / "d" / "image.png")] and notes == []


def test_expand_notes_links_to_folders_fifos_and_names_that_are_not_utf8(tmp_path):
    folder = tmp_path / "d"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("Tin.", encoding="utf-8")
    folder.mkdir()
    (folder / "a.txt").write_text("Tin.", encoding="utf-8")
    (folder / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(folder / "pipe.txt")  # a FIFO would block the run until killed
    os.close(os.open(os.path.join(os.fsencode(folder), b"b\xff.txt"), os.O_CREAT | os.O_WRONLY))
    found, missing, skipped, notes = expand([str(folder)])
    assert found == [(str(folder / "a.txt"), "text"), (f"{folder}/b\\xff.txt", "badname")]
    assert notes == [
        f"{folder / 'linked'}: a link to a folder, not followed",
        f"{folder / 'pipe.txt'}: a FIFO; skipped",
    ]
    (unit,) = [u for u in units(found, False) if u.kind == "error"]
    assert unit.data == f"{folder}/b\\xff.txt: the file name is not valid UTF-8 (shown escaped); rename it to tag it"


@pytest.mark.parametrize(
    "where, line",
    [
        ("in/a.jsonl:12", 12),  # an article's place: it orders the articles and their messages
        ("in/a.jsonl:7: not valid JSON", 7),
        ("in/a.jsonl", None),
        ("in/a.jsonl:12x", None),
        ("other/a.jsonl:12", None),
    ],
)
def test_line_of_an_article_or_message_on_spark(where, line):
    from pipeline.tagging.spark import _where_line

    assert _where_line(where, "in/a.jsonl") == line


@pytest.mark.parametrize("parts", [1, 2, 3, 8])
@pytest.mark.parametrize("n_lines", [1, 99, 100, 101, 250, 2_345])
def test_slices_of_a_large_jsonl_file_share_its_lines_out_exactly_once(parts, n_lines):
    """Every slice reads the whole file; the stripes it tags, over all slices, are every line once, numbered as in the file."""
    from pipeline.tagging.inputs import Unit, _line_chunks
    from pipeline.tagging.spark import STRIPE_LINES, _stripes

    lines = [f'{{"id": "{i}", "text": "Dòng thứ {i}."}}\n'.encode() for i in range(1, n_lines + 1)]
    units = [*_line_chunks(lines, "in/a.jsonl"), Unit("error", "in/a.jsonl", "in/a.jsonl: cannot be read")]
    tagged, errors = [], 0
    for part in range(parts):
        read = []
        for unit, mine in _stripes(iter(units), part, parts):
            if unit.kind == "error":
                errors += mine
                continue
            assert parts == 1 or len({(unit.first + k - 1) // STRIPE_LINES for k in range(len(unit.data))}) == 1
            found = [(unit.first + k, line) for k, line in enumerate(unit.data)]
            read += found
            tagged += found if mine else []
        assert read == list(enumerate(lines, 1))  # every slice sees every line, in order
    assert sorted(tagged) == list(enumerate(lines, 1))
    assert errors == 1
