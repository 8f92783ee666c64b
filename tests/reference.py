"""Reference implementations the fast paths are checked against, shared by the code and model tiers."""

import unicodedata

import numpy as np

from pipeline import text as text_module


def reference_normalize(text: str) -> str:
    """normalize() as first written: every step, always."""
    t = text_module
    text = t._CONTROL.sub(" ", t._INVISIBLE.sub("", text))
    text = unicodedata.normalize("NFD", text)
    text = t._TONE_MOVE.sub(t._move_tone, text)
    text = unicodedata.normalize("NFC", text)
    return t._SPACES.sub(" ", text).strip()


def same_matrix(a, b):
    a, b = a.tocsr(), b.tocsr()
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )
