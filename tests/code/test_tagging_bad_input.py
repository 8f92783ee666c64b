"""Hostile inputs of `tag`, one unit of work at a time: each is read correctly or named in one clear message, never raised.

Every sentence here was written for these tests; generated files live in tmp_path.
"""

import gzip
import io
import json
import unicodedata

import pytest
from hostile_inputs import (
    ARTICLE,
    BAD_FILES,
    BAD_LINES,
    GOOD_TEXT,
    PAGE,
    PARAGRAPHS,
    SCRIPT_AND_STYLE,
    mixed_forms,
    tcvn3,
    vni,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.tagging.inputs import (
    MB,
    Oversized,
    Unit,
    bounded_lines,
    has_text,
    jsonl_units,
    parse_unit,
    reads_poorly,
)
from pipeline.text import paragraphs


def _parse_file(path, kind="text", max_bytes=int(10 * MB)):
    return parse_unit(Unit(kind, str(path)), False, max_bytes)


@pytest.mark.parametrize("case", list(GOOD_TEXT))
def test_text_in_every_encoding_and_form_gives_the_same_paragraphs(tmp_path, case):
    path = tmp_path / ("a.txt.gz" if "gzipped" in case else "a.txt")
    path.write_bytes(GOOD_TEXT[case](ARTICLE))
    parsed = _parse_file(path)
    assert parsed.errors == [] and parsed.warnings == []
    assert paragraphs(parsed.articles[0].text) == PARAGRAPHS


def test_the_mixed_forms_really_differ_before_normalisation():
    mixed = mixed_forms(ARTICLE)
    assert mixed != ARTICLE.rstrip("\n") and unicodedata.normalize("NFC", mixed) != ARTICLE.rstrip("\n")


def test_page_scripts_styles_and_noscript_are_not_text(tmp_path):
    path = tmp_path / "trang.html"
    path.write_text(PAGE, encoding="utf-8")
    parsed = _parse_file(path, "html")
    paras = paragraphs(parsed.articles[0].text)
    assert paras == ["Giải cứu bốn nạn nhân bị lừa sang nước ngoài", *PARAGRAPHS]
    assert not any(bit in p for p in paras for bit in SCRIPT_AND_STYLE)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_named_in_one_message(tmp_path, case):
    name, make, reason = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(make())
    parsed = _parse_file(path, "html" if name.endswith(".html") else "text", max_bytes=100_000)
    assert parsed.articles == [] and parsed.n_inputs == 1
    (message,) = parsed.errors
    assert message.startswith(f"{path}: ") and reason in message, message


@pytest.mark.parametrize("encode", [tcvn3, vni], ids=["TCVN3", "VNI"])
def test_legacy_font_encodings_are_read_best_effort_with_a_warning(tmp_path, encode):
    path = tmp_path / "cu.txt"
    path.write_bytes(encode(ARTICLE))
    parsed = _parse_file(path)
    assert parsed.errors == [] and len(parsed.articles) == 1  # tagged as read, whatever it reads as
    (warning,) = parsed.warnings
    assert warning.startswith(f"{path}: reads poorly as Vietnamese") and "TCVN3 or VNI" in warning


@pytest.mark.parametrize(
    "text",
    [
        ARTICLE,
        unicodedata.normalize("NFD", ARTICLE),
        "“Chúng tôi đã phối hợp chặt chẽ”, ông Nguyễn Văn A nói — tỷ lệ tăng 5%… (theo Reuters, €, °C)",
        "Die Polizei hat drei Opfer aus den Händen der Schleuser befreit. Über die Grenze kamen sie für wenig Geld.",
        "The police freed three victims of trafficking near the border last week.",
    ],
    ids=["vietnamese", "nfd", "punctuation", "german", "english"],
)
def test_ordinary_text_does_not_read_poorly(text):
    assert not reads_poorly(text)


def test_has_text_is_what_paragraphs_keeps():
    for text in ("", " \t\n", "\u200b\x00\ufeff", "\xa0\u3000", "a", "\u200bđ", "."):
        assert has_text(text) == bool(paragraphs(text))


def _line(value) -> bytes:
    return value if isinstance(value, bytes | Oversized) else value.encode("utf-8")


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_json_lines_are_named_by_line_and_the_rest_kept(case):
    line, reason = BAD_LINES[case]
    good = [json.dumps({"id": f"g{i}", "text": p}, ensure_ascii=False).encode() for i, p in enumerate(PARAGRAPHS)]
    unit = Unit("jsonl", "tin.jsonl", [good[0], good[1], _line(line), b"", good[2]], first=40)
    parsed = parse_unit(unit, False)
    assert [a.id for a in parsed.articles] == ["g0", "g1", "g2"]
    assert parsed.wheres == ["tin.jsonl:40", "tin.jsonl:41", "tin.jsonl:44"]
    assert parsed.n_inputs == 4  # the blank line is not an input
    (message,) = parsed.errors
    assert message.startswith("tin.jsonl:42: ") and reason in message, message


@pytest.mark.parametrize("utf16", [False, True], ids=["bytes", "utf-16 text"])
def test_a_line_over_the_limit_is_skipped_in_pieces_and_the_next_one_read(utf16):
    lines = ['{"id": "a", "text": "Một."}\n', '{"id": "b", "text": "' + "x" * 5000 + '"}\n', '{"id": "c"}']
    data = "".join(lines).encode("utf-8")
    if utf16:
        stream = io.TextIOWrapper(io.BytesIO("".join(lines).encode("utf-16")), encoding="utf-16")
        expected = lines
    else:
        stream, expected = io.BytesIO(data), [line.encode("utf-8") for line in lines]
    got = list(bounded_lines(stream, 1000))
    assert got == [expected[0], Oversized(len(expected[1])), expected[2]]


def test_jsonl_file_with_a_gigantic_record_reports_its_line(tmp_path):
    path = tmp_path / "lon.jsonl.gz"
    records = [
        {"id": "a", "text": PARAGRAPHS[0]},
        {"id": "b", "text": "Câu dài. " * 400},
        {"id": "c", "text": PARAGRAPHS[1]},
    ]
    path.write_bytes(gzip.compress("\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()))
    parsed = [parse_unit(u, False, 1000) for u in jsonl_units(str(path), max_bytes=1000)]
    assert [a.id for p in parsed for a in p.articles] == ["a", "c"]
    (message,) = [e for p in parsed for e in p.errors]
    assert message.startswith(f"{path}:2: a line of 0.0 MB, over the 0.001 MB limit"), message


def test_parquet_rows_with_bad_values_are_named_by_row(tmp_path):
    import pyarrow as pa

    rows = [{"id": "a", "text": PARAGRAPHS[0]}, {"id": None, "text": "Câu."}, {"id": "c", "text": None}]
    table = pa.Table.from_pylist(rows)
    parsed = parse_unit(Unit("rows", "t.parquet", table.to_pylist(), first=1), False)
    assert [a.id for a in parsed.articles] == ["a"]
    assert parsed.errors == ["t.parquet: row 2: record has no 'id'", "t.parquet: row 3: record 'c' has no 'text'"]


# -- one input must not take the batch down (issue 11) ---------------------------------------------

HUGE_INT = "9" * 10_240  # more digits than Python converts to an int (sys.get_int_max_str_digits)


@pytest.mark.parametrize(
    "line",
    [f'{{"id": {HUGE_INT}, "text": "Câu."}}', f'{{"id": "a", "text": "Câu.", "so": {HUGE_INT}}}'],
    ids=["id", "another field"],
)
def test_a_json_integer_too_long_for_python_is_a_bad_line(line):
    good = json.dumps({"id": "b", "text": "Nạn nhân được hỗ trợ."}, ensure_ascii=False)
    parsed = parse_unit(Unit("jsonl", "in.jsonl", [line.encode(), good.encode()]), False)
    assert [a.id for a in parsed.articles] == ["b"]
    assert parsed.errors == [
        "in.jsonl:1: malformed JSON (Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 10240 digits; use sys.set_int_max_str_digits() to increase the limit)"
    ]


@pytest.mark.parametrize("charset", ["undefined", "hex", "rot13", "no-such-codec"])
def test_a_page_declaring_an_unusable_charset_is_read_by_guessing(tmp_path, charset):
    page = PAGE.replace('<meta charset="utf-8">', f'<meta charset="{charset}">').replace("<html>", '<html lang="vi">')
    path = tmp_path / "trang.html"
    path.write_bytes(page.encode("cp1258", errors="ignore"))  # not UTF-8
    parsed = _parse_file(path, "html")
    assert parsed.errors == [] and parsed.articles


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("The police arrested two men suspected of trafficking people across the border last night.", "0.0% of"),
        (
            "警方昨天逮捕了两名涉嫌跨境贩卖人口的男子，受害者已被送回家中并获得心理支持和职业培训。",
            "0% of its letters are Latin",
        ),
        (
            "ألقت الشرطة القبض على رجلين بتهمة الاتجار بالبشر عبر الحدود مساء أمس في المدينة",
            "0% of its letters are Latin",
        ),
        (
            "Полиция задержала двух мужчин по подозрению в торговле людьми через границу вчера",
            "0% of its letters are Latin",
        ),
        ("Lực lượng chức năng đã giải cứu năm nạn nhân bị lừa bán sang nước ngoài làm việc.", ""),
        ("Hello world, short.", ""),  # under 40 letters: not judged
    ],
    ids=["English", "Chinese", "Arabic", "Russian", "Vietnamese", "too short"],
)
def test_text_that_is_not_vietnamese_is_warned_of_and_flagged(text, why):
    from pipeline.tagging.inputs import not_vietnamese
    from pipeline.tagging.records import article_summary

    assert (not_vietnamese(text) != "") == bool(why) and why in not_vietnamese(text)
    parsed = parse_unit(Unit("text", "tin.txt", text.encode("utf-8")), False)
    warned = [w for w in parsed.warnings if "does not read as Vietnamese" in w]
    assert len(warned) == bool(why) and all(w.startswith("tin.txt: ") for w in warned)
    rule = {"on_topic_min_share": 0.2, "on_topic_min_paragraphs": 2}
    assert article_summary(parsed.articles[0], [], rule)["not_vietnamese"] is bool(why)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a\nerror: forged.txt", "a\\x0aerror: forged.txt"),
        ("\x1b[31mred.txt", "\\x1b[31mred.txt"),
        ("b\udcff.txt", "b\\xff.txt"),  # a byte that is not UTF-8, as os.listdir gives it
        ("bình thường.txt", "bình thường.txt"),
    ],
    ids=["newline", "ANSI escape", "not UTF-8", "plain"],
)
def test_names_are_printed_escaped_on_one_line(name, shown):
    from pipeline.tagging.inputs import printable

    assert printable(name) == shown


def test_a_carried_field_holding_nan_or_infinity_is_written_as_null():
    from pipeline.tagging.outputs import encode, paragraph_columns, summary_columns

    rec = {"article_id": "a", "fields": {"score": float("nan"), "xs": [float("inf"), 1.5]}}
    line = encode([rec], "jsonl", [])
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the output")) == {
        "article_id": "a",
        "fields": {"score": None, "xs": [None, 1.5]},
    }
    for columns in (paragraph_columns(False, False), summary_columns()):
        row = encode([rec], "csv", columns).decode()
        assert "NaN" not in row and "Infinity" not in row


def test_small_files_are_tagged_in_groups_with_the_same_articles_and_messages(tmp_path):
    from pipeline.tagging.inputs import SMALL_FILES, units

    sources = []
    for i in range(SMALL_FILES + 60):
        path = tmp_path / f"{i:04d}.txt"
        path.write_text(f"Bài số {i}: nạn nhân được hỗ trợ tái hòa nhập cộng đồng." if i != 3 else "", encoding="utf-8")
        sources.append((str(path), "text"))
    big = tmp_path / "big.txt"
    big.write_text("Câu dài về hợp tác phòng chống mua bán người. " * 10_000, encoding="utf-8")
    sources.insert(50, (str(big), "text"))
    got = list(units(sources, False))
    assert [(u.kind, len(u.data) if u.kind == "files" else 1) for u in got] == [
        ("files", 50),
        ("text", 1),
        ("files", SMALL_FILES),
        ("files", 10),
    ]
    grouped = [parse_unit(u, False) for u in got]
    alone = [parse_unit(Unit(kind, path), False) for path, kind in sources]
    assert [a.text for p in grouped for a in p.articles] == [a.text for p in alone for a in p.articles]
    assert (
        [e for p in grouped for e in p.errors] == [e for p in alone for e in p.errors] == [f"{sources[3][0]}: is empty"]
    )
    assert sum(p.n_inputs for p in grouped) == len(sources)


@given(st.text(max_size=300) | st.text(st.characters(max_codepoint=0x2100), max_size=300))
@settings(max_examples=300, deadline=None)
def test_letter_counts_are_the_regex_counts(text):
    """The table lookup counts what the three letter regexes match, for any string."""
    from pipeline.tagging.inputs import _letter_patterns, letter_counts

    assert letter_counts(text) == tuple(sum(map(len, p.findall(text))) for p in _letter_patterns())
