"""Property-based tests of segmentation and normalisation: no input string raises, nothing is lost or reordered."""

import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.text import _TONE_MOVE, _move_tone, normalize, paragraph_hash, paragraphs

# Vietnamese letters in both forms, tone marks on their own, odd spaces and controls, ASCII.
VIET = "aăâeêioôơuưyđAĂÂEÊIOÔƠUƯYĐàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
ALPHABET = st.sampled_from(
    list(VIET)
    + list("qghnktc .,;!?…\"'()-0123456789")
    + ["\u0300", "\u0301", "\u0309", "\u0303", "\u0323", "\u0302", "\u0306", "\u031b"]
    + ["\n", "\r", "\t", "\u00a0", "\u200b", "\ufeff", "\x00", "\x07", "\u2028", "\x85"]
)
TEXT = st.text(ALPHABET, max_size=300) | st.text(max_size=200)


def reference_normalize(text: str) -> str:
    """Every step of normalize(), run unconditionally: the fast paths must give the same result."""
    text = re.sub(
        "[\x00-\x08\x0b-\x1f\x7f-\x9f]", " ", re.sub("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]", "", text)
    )
    text = unicodedata.normalize("NFC", _TONE_MOVE.sub(_move_tone, unicodedata.normalize("NFD", text)))
    return re.sub(r"\s+", " ", text).strip()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_normalize_never_raises_and_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
    assert unicodedata.is_normalized("NFC", once)


@settings(max_examples=400)
@given(TEXT)
def test_normalize_fast_paths_equal_the_full_computation(text):
    assert normalize(text) == reference_normalize(text)


@settings(max_examples=300)
@given(TEXT)
def test_nfc_and_nfd_normalise_alike(text):
    assert normalize(unicodedata.normalize("NFD", text)) == normalize(unicodedata.normalize("NFC", text))
    assert paragraph_hash(unicodedata.normalize("NFD", text)) == paragraph_hash(text)


@settings(max_examples=300)
@given(TEXT, st.integers(min_value=100, max_value=2000))
def test_paragraphs_cover_the_text_in_order(text, max_chars):
    paras = paragraphs(text, max_chars=max_chars, hard_max=max_chars * 3)
    assert all(p and p == normalize(p) for p in paras)
    # joined back, the paragraphs are the article's words in order, nothing dropped or added
    assert " ".join(paras).split() == " ".join(normalize(line) for line in re.split(r"\r\n|\r|\n", text)).split()


@settings(max_examples=100)
@given(st.lists(st.text(ALPHABET, min_size=1, max_size=80), min_size=1, max_size=40))
def test_long_lines_split_at_sentences_keep_every_word(sentences):
    line = ". ".join(s.strip() or "x" for s in sentences) + "."
    paras = paragraphs(line, max_chars=100, hard_max=400)
    assert " ".join(paras).split() == normalize(line).split()
    assert all(len(p) <= 400 for p in paras)
