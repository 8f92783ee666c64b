"""normalize()'s fast paths give what every step gives, on generated text; paragraphs are its fixed points."""

import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_normalize

from pipeline import text as text_module
from pipeline.text import normalize, paragraphs

# Letters, tones and marks where the shortcuts could go wrong, plus white space and invisible characters.
VIETNAMESE = "aăâeêioôơuưyAĂÂEÊIOÔƠUƯYqQđĐhnt oa oe uy qu" + "àáảãạÀÁẢÃẠèéẻẽẹÈÉẺẼẸỳýỷỹỵỲÝỶỸỴặậệ"


MARKS = "\u0300\u0301\u0309\u0303\u0323\u0302\u0306\u031b"


ODD = "\t\n\r\xa0\u2000\u200b\u200f\ufeff\x00\x07\x85\u3000  "


ALPHABET = st.sampled_from(VIETNAMESE + MARKS + ODD + ".,!?-_0123456789")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_normalize_equals_the_reference_on_generated_text(text):
    assert normalize(text) == reference_normalize(text)
    assert normalize(unicodedata.normalize("NFD", text)) == reference_normalize(unicodedata.normalize("NFD", text))


def test_tone_candidate_classes_match_the_unicode_database():
    """The NFC characters whose decomposition is a/e (or y) followed by a tone mark and nothing else, from the whole table."""
    tones = text_module._TONES
    alone, toned_y = set(), set()
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.normalize("NFC", c) != c:
            continue
        d = unicodedata.normalize("NFD", c)
        # a tone followed by another mark (ặ, ậ, ệ) does not end the syllable: never moved
        if len(d) == 2 and d[1] in tones:
            if d[0] in "aAeE":
                alone.add(c)
            elif d[0] in "yY":
                toned_y.add(c)
    assert set(text_module._TONED_AE) == alone
    assert set(text_module._TONED_Y) == toned_y


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=120), st.integers(5, 60))
def test_paragraphs_are_fixed_points_of_normalize(text, max_chars):
    for p in paragraphs(text, max_chars=max_chars, hard_max=max_chars + 7):
        assert normalize(p) == p
