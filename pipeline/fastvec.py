"""An exact, faster counting step for fitted word n-gram TF-IDF vectorizers: tagging's and, in training, the unlabeled neighbours'.

scikit-learn counts the n-grams of each document in a Python dict, n-gram string by n-gram
string; that is most of the time of tagging. Here the tokens of a whole batch are mapped to
integer ids at once and the n-grams are looked up as integer keys with numpy. The counts, and
so the TF-IDF matrix and every probability, are the same as scikit-learn's; fitting is untouched.
"""

from __future__ import annotations

import copy
import re
from itertools import chain, repeat

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

# Token patterns whose tokens never contain a space, so a vocabulary term splits back into its tokens.
_SPACELESS_PATTERNS = (r"(?u)\b\w+\b", r"(?u)\b\w\w+\b")
# Tokens of r"(?u)\b\w+\b" in text of several documents joined by newlines, and the newlines.
_WORD_OR_NEWLINE = re.compile(r"\w+|\n")
_NEWLINE = -1  # the token id of a newline between documents
# The scikit-learn releases whose private TfidfVectorizer._count_vocab (and TF-IDF arithmetic) these paths were
# checked against: with any other, the model keeps its plain scikit-learn path.
SUPPORTED_SKLEARN = ("1.9.",)


def sklearn_supported(version: str | None = None) -> bool:
    """Whether the installed scikit-learn (or `version`) is one the fast paths reproduce."""
    if version is None:
        import sklearn

        version = sklearn.__version__
    return version.startswith(SUPPORTED_SKLEARN)


class FastCountTfidf(TfidfVectorizer):
    """A fitted TfidfVectorizer whose transform counts n-grams with arrays; built by `accelerate`, never fitted."""

    def _count_vocab(self, raw_documents, fixed_vocab):
        if not fixed_vocab:
            return super()._count_vocab(raw_documents, fixed_vocab)
        if getattr(self, "_fast_tables", None) is None:
            self._fast_tables = _tables(self.vocabulary_, self.ngram_range)
        return self.vocabulary_, _count(self, list(raw_documents), self._fast_tables)


def _tables(vocabulary: dict, ngram_range: tuple[int, int]) -> dict:
    """Token ids and, per n, the sorted integer keys of the vocabulary's n-grams with their columns."""
    ids: dict[str, int] = {}
    for term in vocabulary:
        for token in term.split(" "):
            ids.setdefault(token, len(ids))
    base = len(ids) + 1  # id len(ids) stands for a token outside the vocabulary
    keys: dict[int, tuple[list, list]] = {n: ([], []) for n in range(ngram_range[0], ngram_range[1] + 1)}
    for term, col in vocabulary.items():
        key = 0
        tokens = term.split(" ")
        for token in tokens:
            key = key * base + ids[token]
        keys[len(tokens)][0].append(key)
        keys[len(tokens)][1].append(col)
    lookup = {}
    for n, (k, c) in keys.items():
        # A hash index: much faster than a binary search over tens of thousands of keys.
        lookup[n] = (pd.Index(np.asarray(k, dtype=np.int64)), np.asarray(c, dtype=np.int64))
    return {"ids": {**ids, "\n": _NEWLINE}, "unknown": len(ids), "base": base, "lookup": lookup}


def _token_ids(vec: TfidfVectorizer, docs: list, tables: dict) -> tuple[np.ndarray, np.ndarray]:
    """(token ids of all documents one after the other, number of tokens per document)."""
    unknown = tables["unknown"]
    plain = vec.lowercase and vec.strip_accents is None and all(type(d) is str for d in docs)
    if plain and vec.token_pattern == r"(?u)\b\w+\b" and not any("\n" in d for d in docs):
        # One regex pass over the whole batch, documents joined by newlines (never inside a \w+ token,
        # and lower() treats a newline like the end of the text): the same tokens, a third less time.
        tokens = _WORD_OR_NEWLINE.findall("\n".join(docs).lower())
        ids = np.fromiter(map(tables["ids"].get, tokens, repeat(unknown, len(tokens))), np.int64, len(tokens))
        newline = ids == _NEWLINE
        doc = np.cumsum(newline)[~newline]
        return ids[~newline], np.bincount(doc, minlength=len(docs)).astype(np.int64)
    if plain:
        # What decode and preprocess do to a str in that case, without two Python calls per document.
        tokenize = vec.build_tokenizer()
        per_doc = [tokenize(d.lower()) for d in docs]
    else:
        preprocess, tokenize, decode = vec.build_preprocessor(), vec.build_tokenizer(), vec.decode
        per_doc = [tokenize(preprocess(decode(d))) for d in docs]
    lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
    total = int(lengths.sum())
    ids = np.fromiter(map(tables["ids"].get, chain.from_iterable(per_doc), repeat(unknown, total)), np.int64, total)
    return ids, lengths


def _count(vec: TfidfVectorizer, docs: list, tables: dict):
    """The document-term count matrix of `docs`, equal to scikit-learn's (sorted indices, no duplicates)."""
    flat, lengths = _token_ids(vec, docs, tables)
    total = len(flat)
    unknown, base = tables["unknown"], tables["base"]
    row = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    pos = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows, cols = [], []
    for n, (keys, term_cols) in tables["lookup"].items():
        # The n-gram ending at token i exists when i is at least n-1 tokens into its document.
        end = np.flatnonzero(pos >= n - 1)
        key = np.zeros(len(end), dtype=np.int64)
        known = np.ones(len(end), dtype=bool)
        for back in range(n - 1, -1, -1):
            part = flat[end - back]
            known &= part != unknown
            key = key * base + part
        end, key = end[known], key[known]
        at = keys.get_indexer(key)
        hit = at >= 0
        rows.append(row[end[hit]])
        cols.append(term_cols[at[hit]])
    n_features = len(vec.vocabulary_)
    cell = np.concatenate(rows) * n_features + np.concatenate(cols) if rows else np.zeros(0, dtype=np.int64)
    cell, counts = np.unique(cell, return_counts=True)
    indptr = np.searchsorted(cell // n_features, np.arange(len(docs) + 1), side="left")
    X = sparse.csr_array(
        (counts, (cell % n_features).astype(np.int32), indptr.astype(np.int32)),
        shape=(len(docs), n_features),
        dtype=vec.dtype,
    )
    X.has_sorted_indices = True
    return X


def qualifies(vec) -> bool:
    """Whether `vec` is a fitted word n-gram TfidfVectorizer whose counting FastCountTfidf reproduces exactly."""
    if type(vec) not in (TfidfVectorizer, FastCountTfidf) or not hasattr(vec, "vocabulary_"):
        return False
    lo, hi = vec.ngram_range
    return (
        vec.analyzer == "word"
        and vec.input == "content"
        and vec.tokenizer is None
        and vec.preprocessor is None
        and vec.stop_words is None
        and vec.token_pattern in _SPACELESS_PATTERNS
        and 1 <= lo <= hi <= 3
        # An n-gram's key is a number in base (distinct tokens + 1), at most hi * terms + 1: it must fit in int64.
        and (hi * len(vec.vocabulary_) + 2) ** hi < 2**63
    )


def _fast_copy(vec: TfidfVectorizer) -> FastCountTfidf:
    fast = FastCountTfidf.__new__(FastCountTfidf)
    fast.__dict__.update(vec.__dict__)
    return fast


def accelerate(model):
    """A copy of `model` with every qualifying TfidfVectorizer (in pipelines, unions, a context model's first pass) swapped.

    `model` itself is untouched (it may still be saved); the copy shares every fitted array with it.
    With a scikit-learn release the swap was not checked against, `model` is returned as it is.
    """
    if not sklearn_supported():
        return model
    if qualifies(model):
        return _fast_copy(model)
    inner = getattr(model, "paragraph_model_", None)
    if inner is not None:
        fast = copy.copy(model)
        fast.paragraph_model_ = accelerate(inner)
        return fast
    for holder in ("steps", "transformer_list"):
        items = getattr(model, holder, None)
        if isinstance(items, list):
            fast = copy.copy(model)
            setattr(fast, holder, [(item[0], accelerate(item[1]), *item[2:]) for item in items])
            return fast
    return model
