"""Hostile inputs for the tests of `tag`: Vietnamese text in the encodings users' files come in, and bad files and lines.

Every sentence here was written for these tests.

Windows-1258 goes through Python's codec. TCVN3 (ABC) and VNI have no codec in Python or in
charset-normalizer; the two small tables here were written for these tests from the published
layouts (TCVN3: one byte per lower-case letter; VNI: an ASCII vowel then a mark byte), cover the
letters of the tests' sentences, and are not a reference converter.
"""

from __future__ import annotations

import codecs
import gzip
import random
import unicodedata

from pipeline.tagging.inputs import Oversized
from pipeline.text import paragraphs

TONES = "\u0301\u0300\u0309\u0303\u0323"  # sắc, huyền, hỏi, ngã, nặng


def cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese software writes it: letters with their vowel marks precomposed, tones as combining marks."""
    out = []
    for c in unicodedata.normalize("NFC", text):
        try:
            out.append(c.encode("cp1258"))
        except UnicodeEncodeError:
            d = unicodedata.normalize("NFD", c)
            base = unicodedata.normalize("NFC", "".join(x for x in d if x not in TONES))
            out.append(base.encode("cp1258") + "".join(x for x in d if x in TONES).encode("cp1258"))
    return b"".join(out)


_TCVN3_LETTERS = "ăâêôơưđàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ"
_TCVN3_BYTES = bytes.fromhex(
    "a8a9aaabacadaeb5b6b7b8b9bbbcbdbec6c7c8c9cacbcccecfd0d1d2d3d4d5d6d7d8dcddde"
    "dfe1e2e3e4e5e6e7e8e9eaebecedeeeff1f2f3f4f5f6f7f8f9fafbfcfdfe"
)


def tcvn3(text: str) -> bytes:
    """TCVN3 (ABC) bytes of `text`; upper-case Vietnamese letters are written as lower-case ones (TCVN3 fonts had them apart)."""
    table = dict(zip(_TCVN3_LETTERS, _TCVN3_BYTES, strict=True))
    return b"".join(
        bytes([table[c.lower()]]) if c.lower() in table else c.encode("ascii")
        for c in unicodedata.normalize("NFC", text)
    )


_VNI_PLAIN, _VNI_HAT, _VNI_BREVE, _VNI_I = "ùøûõï", "áàåãä", "éèúüë", "íìæóò"


def _vni_letter(c: str) -> str:
    d = unicodedata.normalize("NFD", c)
    base, marks = d[0].lower(), d[1:]
    tone = next((TONES.index(m) for m in marks if m in TONES), None)
    if c.lower() == "đ":
        s = "ñ"
    elif "\u031b" in marks:  # horn: ơ, ư
        s = {"o": "ô", "u": "ö"}[base] + ("" if tone is None else _VNI_PLAIN[tone])
    elif "\u0302" in marks:  # circumflex: â, ê, ô
        s = base + ("â" if tone is None else _VNI_HAT[tone])
    elif "\u0306" in marks:  # breve: ă
        s = base + ("ê" if tone is None else _VNI_BREVE[tone])
    elif base == "i" and tone is not None:
        s = _VNI_I[tone]
    else:
        s = base + ("" if tone is None else _VNI_PLAIN[tone])
    return s if c == c.lower() else s[0].upper() + s[1:]


def vni(text: str) -> bytes:
    """VNI (Windows) bytes of `text`: each letter an ASCII base and its mark bytes, read as Windows-1252 characters."""
    return "".join(_vni_letter(c) for c in unicodedata.normalize("NFC", text)).encode("cp1252")


ENCODERS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 with BOM": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16-le with BOM": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16-be with BOM": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "windows-1258": cp1258,
}


ARTICLE = (
    "Lực lượng biên phòng đã giải cứu bốn nạn nhân bị lừa sang nước ngoài làm việc.\n"
    "Hai tỉnh ký kết kế hoạch hợp tác phòng, chống mua bán người trong năm tới.\n"
    "Các nạn nhân được hỗ trợ tâm lý, học nghề và hòa nhập cộng đồng.\n"
    "Năm qua, cơ quan chức năng phát hiện 35 vụ mua bán người, tăng 12% so với năm trước.\n"
)
PARAGRAPHS = paragraphs(ARTICLE)
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Bản tin mẫu</title>
<style>body { font-family: serif; } .quang-cao { display: none; }</style>
<script>var theoDoi = "mã theo dõi người đọc"; document.write("<p>Đoạn chèn bởi mã.</p>");</script>
<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Tiêu đề trong dữ liệu cấu trúc"}</script>
</head><body><nav><a href="/">Trang chủ</a> <a href="/xa-hoi">Xã hội</a></nav>
<article><h1>Giải cứu bốn nạn nhân bị lừa sang nước ngoài</h1>
<p>Lực lượng biên phòng đã giải cứu bốn nạn nhân bị lừa sang nước ngoài làm việc.</p>
<script>chenQuangCao("giữa bài");</script><style>.the-quang-cao { color: red; }</style>
<p onclick="theoDoi()">Hai tỉnh ký kết kế hoạch hợp tác phòng, chống mua bán người trong năm tới.</p>
<!-- ghi chú của biên tập viên -->
<p>Các nạn nhân được hỗ trợ tâm lý, học nghề và hòa nhập cộng đồng.</p>
<p>Năm qua, cơ quan chức năng phát hiện 35 vụ mua bán người, tăng 12% so với năm trước.</p>
</article><noscript>Vui lòng bật JavaScript để đọc bình luận.</noscript>
<footer>Bản quyền thuộc về tòa soạn mẫu.</footer></body></html>"""
SCRIPT_AND_STYLE = ("theoDoi", "chèn bởi mã", "NewsArticle", "chenQuangCao", "font-family", "color: red", "JavaScript")


def decomposed_every_other_letter(text: str) -> str:
    """Composed and decomposed letters mixed in one line, tones in both canonical and reversed mark order."""
    out = []
    for i, c in enumerate(unicodedata.normalize("NFC", text)):
        d = unicodedata.normalize("NFD", c)
        out.append(d[0] + d[1:][::-1] if i % 2 and len(d) > 2 else d if i % 2 else c)
    return "".join(out)


def mixed_forms(text: str) -> str:
    """Lines in NFC, NFD, the other tone placement ("hoà" for "hòa") and mixed composition, in one file."""
    lines = text.splitlines()
    return "\n".join(
        [
            lines[0],
            unicodedata.normalize("NFD", lines[1]),
            lines[2].replace("hòa", "hoà"),
            decomposed_every_other_letter(lines[3]),
        ]
    )


def with_controls(text: str) -> str:
    """Three stray control characters (a NUL among them) beside spaces: under 1% of the text."""
    return text.replace("giải cứu ", "giải cứu\x07 ").replace("ký kết ", "ký\x00 kết ").replace("tâm lý", "tâm\x1b lý")


def with_zero_width(text: str) -> str:
    """Zero-width spaces, joiners, a word joiner, a soft hyphen, bidi marks and a BOM inside words."""
    for word, marked in (
        ("phòng", "ph\u200bòng"),
        ("người", "ng\u200cười"),
        ("nạn", "n\u200dạn"),
        ("cộng", "c\u2060ộng"),
        ("đồng", "đ\u00adồng"),
        ("tâm", "\u200etâm\u200f"),
        ("năm", "n\ufeffăm"),
    ):
        text = text.replace(word, marked)
    return text


GOOD_TEXT = {
    **{name: (lambda t, enc=enc: enc(t)) for name, enc in ENCODERS.items()},
    "utf-8 NFD": lambda t: unicodedata.normalize("NFD", t).encode("utf-8"),
    "NFC, NFD and mixed tone marks in one file": lambda t: mixed_forms(t).encode("utf-8"),
    "control characters": lambda t: with_controls(t).encode("utf-8"),
    "zero-width characters": lambda t: with_zero_width(t).encode("utf-8"),
    "windows-1258 gzipped": lambda t: gzip.compress(cp1258(t)),
}


def _random_bytes(n: int) -> bytes:
    return random.Random(7).randbytes(n)


BAD_FILES = {
    "empty": ("a.txt", lambda: b"", "is empty"),
    "white space only": ("a.txt", lambda: " \n\t\u00a0\r\n  \u3000\n".encode(), "has no text to tag"),
    "invisible characters only": ("a.txt", lambda: "\u200b\ufeff\u200d \u2060\n".encode(), "has no text to tag"),
    "random bytes": ("a.txt", lambda: _random_bytes(20_000), "cannot be decoded"),
    "image bytes": ("a.txt", lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + _random_bytes(3000), "cannot be decoded"),
    "gzipped binary": ("a.txt.gz", lambda: gzip.compress(_random_bytes(5000)), "cannot be decoded"),
    "control characters throughout": ("a.txt", lambda: ARTICLE.replace(" ", "\x01").encode(), "control characters"),
    "broken utf-16": (
        "a.txt",
        lambda: codecs.BOM_UTF16_LE + "Tin".encode("utf-16-le") + b"\x00\xd8",
        "byte-order mark",
    ),
    "not gzip": ("a.txt.gz", lambda: ARTICLE.encode(), "cannot be read"),
    "truncated gzip": ("a.txt.gz", lambda: gzip.compress(ARTICLE.encode() * 50)[:200], "cannot be read"),
    "over the size limit": ("a.txt", lambda: ARTICLE.encode() * 2000, "is 0.8 MB, over the 0.1 MB limit"),
    "over the limit once gunzipped": ("a.txt.gz", lambda: gzip.compress(b" " * 10**6), "once decompressed, is over"),
    "page with no article": (
        "a.html",
        lambda: b"<html><head><script>x()</script><style>p{}</style></head></html>",
        "no article text",
    ),
    "page of binary": ("a.html", lambda: _random_bytes(4000), "cannot be decoded"),
}


# One line each, between two good records: (line, what its message says).
BAD_LINES = {
    "malformed": ("{not json", "malformed JSON (Expecting property name"),
    "cut short": ('{"id": "t", "text": "Câu bị cắt', "malformed JSON (Unterminated string"),
    "array": ("[1, 2]", "must be a JSON object with 'id' and 'text', not a list"),
    "string": ('"chỉ là một chuỗi"', "not a string"),
    "number": ("42", "not a number"),
    "null": ("null", "not null"),
    "not utf-8": (b'{"id": "u", "text": "\xff\xfe"}', "not UTF-8"),
    "raw control character": ('{"id": "c", "text": "a\x01b"}', "malformed JSON (Invalid control character"),
    "nested too deeply": ("[" * 200_000, "nested too deeply"),
    "no text": ('{"id": "m"}', "record 'm' has no 'text'"),
    "null text": ('{"id": "n", "text": null}', "record 'n' has no 'text'"),
    "number text": ('{"id": "d", "text": 7}', "a 'text' that is a number, not a string"),
    "list text": ('{"id": "l", "text": ["Câu."]}', "a 'text' that is a list"),
    "object text": ('{"id": "o", "text": {"vi": "Câu."}}', "a 'text' that is an object"),
    "empty text": ('{"id": "e", "text": ""}', "record 'e' has empty 'text'"),
    "invisible text": ('{"id": "w", "text": " \\u200b\\t\\u00a0 "}', "record 'w' has empty 'text'"),
    "no id": ('{"text": "Không có mã."}', "record has no 'id'"),
    "null id": ('{"id": null, "text": "Câu."}', "record has no 'id'"),
    "object id": ('{"id": {"a": 1}, "text": "Câu."}', "'id' must be a string or a number, not an object"),
    "list id": ('{"id": [1], "text": "Câu."}', "not a list"),
    "boolean id": ('{"id": true, "text": "Câu."}', "not true or false"),
    "empty id": ('{"id": "  ", "text": "Câu."}', "record has an empty 'id'"),
    "gigantic record": (Oversized(12 * 10**6), "a line of 12.0 MB, over the 10 MB limit"),
}
