"""Unit tests of reading, paragraphs and normalisation (sentences written for these tests)."""

import gzip
import json
import unicodedata

import pytest

from pipeline.text import (
    CorpusError,
    normalize,
    paragraph_hash,
    paragraphs,
    read_corpus,
    read_jsonl,
    split_sentences,
    syllables,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hoà bình", "hòa bình"),  # tone on the first vowel of an open "oa"
        ("Thuý Kiều", "Thúy Kiều"),
        ("uỷ ban", "ủy ban"),
        ("khoẻ mạnh", "khỏe mạnh"),
        ("HOÀ GIẢI", "HÒA GIẢI"),
        ("quý vị", "quý vị"),  # "qu" is a consonant: the tone stays on y
        ("hoàng hôn", "hoàng hôn"),  # closed syllable: unchanged
        ("hoặc", "hoặc"),  # a tone followed by another mark is not the end of the syllable
        ("Hoạ sĩ hoặc khoẻ", "Họa sĩ hoặc khỏe"),
        ("  nhiều   khoảng\ttrắng \n", "nhiều khoảng trắng"),
        ("chữ\u200bcó\ufeffký tự ẩn", "chữcóký tự ẩn"),
        ("điều\x07khiển", "điều khiển"),
        ("", ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("text", ["Người dân ở xã là nạn nhân.", "Hoà bình, thuý, ĐƯỜNG DÂY mua bán người"])
def test_normalize_nfd_equals_nfc_and_is_idempotent(text):
    nfd = unicodedata.normalize("NFD", text)
    assert normalize(nfd) == normalize(text)
    assert normalize(normalize(text)) == normalize(text)
    assert unicodedata.is_normalized("NFC", normalize(nfd))


def test_normalize_keeps_accents():
    assert normalize("Bộ Công an") == "Bộ Công an"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dòng một\n\nDòng hai\r\nDòng ba", ["Dòng một", "Dòng hai", "Dòng ba"]),
        ("   \n\u200b\n", []),
        ("Chỉ một dòng", ["Chỉ một dòng"]),
    ],
)
def test_paragraphs_are_non_empty_lines(text, expected):
    assert paragraphs(text) == expected


def test_long_line_is_split_into_sentences_in_order():
    sentences = [f"Câu thứ {i} nói về một sự kiện khá dài để vượt ngưỡng độ dài." for i in range(30)]
    line = " ".join(sentences)
    out = paragraphs(line, max_chars=1000)
    assert out == sentences
    assert " ".join(out) == line


def test_short_fragments_are_merged():
    out = split_sentences("I. Quan hệ hai nước. Hai bên nhất trí tăng cường hợp tác trong nhiều lĩnh vực quan trọng.")
    assert out == ["I. Quan hệ hai nước. Hai bên nhất trí tăng cường hợp tác trong nhiều lĩnh vực quan trọng."]


def test_line_without_sentence_end_is_cut_at_spaces():
    out = paragraphs("chữ " * 3000, max_chars=1000, hard_max=500)
    assert all(len(p) <= 500 for p in out)
    assert " ".join(out) == normalize("chữ " * 3000)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Người dân ở xã là nạn nhân", ["người", "dân", "ở", "xã", "là", "nạn", "nhân"]),
        ("Năm 2024, 312 nạn nhân!", ["năm", "2024", "312", "nạn", "nhân"]),
    ],
)
def test_syllables_keep_one_letter_words(text, tokens):
    assert syllables(text) == tokens


def test_hash_is_stable_across_forms():
    assert paragraph_hash("Hoà bình") == paragraph_hash(unicodedata.normalize("NFD", " Hòa  bình "))
    assert len(paragraph_hash("x")) == 16


def test_missing_corpus_names_the_path(tmp_path):
    with pytest.raises(CorpusError, match=str(tmp_path / "nowhere")):
        list(read_corpus(tmp_path / "nowhere"))


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": "a", "text": "một"}) + "\n{not json\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl.gz:2"):
        list(read_jsonl(path))
