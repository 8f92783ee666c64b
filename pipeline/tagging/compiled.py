"""The saved model compiled for batch tagging: the same probabilities as its scikit-learn path, with no per-token Python work.

Built from the loaded model object in memory (never a side file): the vocabulary becomes integer
tables, and every linear weight that reads the paragraph's TF-IDF vector (the first pass, and each
block of the second pass: the paragraph, the paragraph times the article score, the neighbours,
the title) is stacked into one dense matrix W. A numba kernel counts each paragraph's n-grams,
weighs them exactly as TfidfVectorizer does (float32, the same rounding) and multiplies the
vector by W at once, so X·W is ONE sparse x dense product; the second pass then shifts those
projections to the neighbours and the title, adds the dense part, and calibrates as scikit-learn
does. The decision rule is `apply_factors` with the model's own `decision_factors_`.

`compile_model` returns None for a model it cannot reproduce (another feature kind, another
classifier, another scikit-learn version): the caller keeps the scikit-learn path.
"""

from __future__ import annotations

import re

import numba
import numpy as np

from pipeline.fastvec import sklearn_supported

TF_TABLE = (
    1 << 13
)  # counts below this take 1 + log(count) from a table numpy filled (a paragraph has at most 5,000 chars)


# Compiled on first call (or read from numba's cache beside this file); the CLI never imports this module for --help.
_jit = numba.njit(cache=True, nogil=True)


_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_WORD_CHARS = []


def word_chars() -> np.ndarray:
    """Which code points Python's re calls \\w (str.isalnum() or "_"), read from re itself over all of Unicode, once."""
    if not _WORD_CHARS:
        # Every code point in one string, built from bytes: a list of 1.1 million one-letter strings would take 100 MB.
        every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
        marked = re.sub(r"\w", "\x01", every).encode("utf-32-le", "surrogatepass")
        table = np.frombuffer(marked, dtype=np.uint32) == 1
        table[1] = False  # U+0001 itself is no word character
        _WORD_CHARS.append(table)
    return _WORD_CHARS[0]


@_jit
def _fnv(points, lo, hi):
    h = _FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(points[i])) * _FNV_PRIME
    return h


@_jit
def _token_table(points, starts):
    """Open-addressing table of token ids by the FNV hash of their code points, at most half full."""
    n = starts.shape[0] - 1
    size = 16
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    mask = size - 1
    for t in range(n):
        slot = np.int64(_fnv(points, starts[t], starts[t + 1]) >> np.uint64(20)) & mask
        while table[slot] != -1:
            slot = (slot + 1) & mask
        table[slot] = t
    return table


@_jit
def _tokenize(points, is_word, table, token_points, token_starts, unknown, out):
    """Ids of the \\w+ runs of `points` (`unknown` outside the vocabulary) and -1 for each newline, into `out`; their number."""
    mask = table.shape[0] - 1
    n = points.shape[0]
    m = 0
    i = 0
    while i < n:
        c = points[i]
        if c == 10:
            out[m] = -1
            m += 1
            i += 1
            continue
        if not is_word[c]:
            i += 1
            continue
        j = i
        while j < n and is_word[points[j]]:
            j += 1
        slot = np.int64(_fnv(points, i, j) >> np.uint64(20)) & mask
        tid = unknown
        while table[slot] != -1:
            t = table[slot]
            a, b = token_starts[t], token_starts[t + 1]
            if b - a == j - i:
                same = True
                for k in range(j - i):
                    if token_points[a + k] != points[i + k]:
                        same = False
                        break
                if same:
                    tid = t
                    break
            slot = (slot + 1) & mask
        out[m] = tid
        m += 1
        i = j
    return m


@_jit
def _lookup(keys, cols, mask, key):
    """The column of an n-gram key in the open-addressing table, or -1."""
    h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    slot = np.int64(h) & mask
    while True:
        k = keys[slot]
        if k == key:
            return cols[slot]
        if k == -1:
            return -1
        slot = (slot + 1) & mask


@_jit
def _project(ids, n_docs, unigram, keys, cols, mask, base, unknown, lo, hi, tf, idf, norm, W, out):
    """For every document (token ids, documents separated by -1): its TF-IDF vector times W, added into `out`.

    The vector is TfidfVectorizer's to the bit: float32 counts, 1 + log from `tf` (a table numpy
    computed), times idf in float32, l2-normalised with a float64 sum of float32 squares; the
    product sums the terms in column order, in float64, as scipy's sparse x dense product does.
    """
    n = ids.shape[0]
    K = W.shape[1]
    # A document of t tokens has up to t * (hi - lo + 1) distinct terms, more than the n ids when it is short.
    room = max(n * (hi - lo + 1), 1)
    found = np.empty(room, dtype=np.int64)
    values = np.empty(room, dtype=np.float32)
    terms = np.empty(room, dtype=np.int64)
    acc = np.zeros(K)
    doc = 0
    start = 0
    for stop in range(n + 1):
        if stop < n and ids[stop] != -1:
            continue
        m = 0
        for i in range(start, stop):
            for size in range(lo, hi + 1):
                if i - start < size - 1:
                    break
                if size == 1:
                    c = unigram[ids[i]]
                else:
                    key = np.int64(0)
                    ok = True
                    for j in range(i - size + 1, i + 1):
                        t = ids[j]
                        if t == unknown:
                            ok = False
                            break
                        key = key * base + t
                    c = _lookup(keys, cols, mask, key * 4 + size) if ok else -1
                if c >= 0:
                    found[m] = c
                    m += 1
        if m > 0:
            sorted_cols = np.sort(found[:m])
            u = 0
            run = 1
            for j in range(1, m + 1):
                if j < m and sorted_cols[j] == sorted_cols[j - 1]:
                    run += 1
                    continue
                col = sorted_cols[j - 1]
                v = tf[run] if run < tf.shape[0] else np.float32(np.log(np.float32(run)) + np.float32(1.0))
                values[u] = np.float32(np.float64(v) * np.float64(idf[col]))
                terms[u] = col
                u += 1
                run = 1
            if norm:
                total = 0.0
                for j in range(u):
                    total += np.float64(np.float32(np.float64(values[j]) * np.float64(values[j])))
                if total != 0.0:
                    total = np.sqrt(total)
                    for j in range(u):
                        values[j] = np.float32(np.float64(values[j]) / total)
            acc[:] = 0.0
            for j in range(u):
                x = np.float64(values[j])
                w = W[terms[j]]
                for k in range(K):
                    acc[k] += x * w[k]
            out[doc, :] = acc
        doc += 1
        start = stop + 1
        if doc == n_docs:
            break
    return out


@_jit
def _top_mean(on, bounds, top_k, out):
    """Per article (rows bounds[a]:bounds[a+1]), the mean of its `top_k` highest values, into each of its rows (float32)."""
    for a in range(bounds.shape[0] - 1):
        lo, hi = bounds[a], bounds[a + 1]
        if hi <= lo:
            continue
        tail = np.sort(on[lo:hi])[-top_k:]
        total = 0.0
        for v in tail:
            total += v
        score = np.float32(total / tail.shape[0])
        for i in range(lo, hi):
            out[i] = score
    return out


class Vocabulary:
    """A fitted word n-gram TfidfVectorizer as integer tables: token ids, unigram columns, an n-gram hash table, tf and idf."""

    def __init__(self, vec):
        ids: dict[str, int] = {}
        for term in vec.vocabulary_:
            for token in term.split(" "):
                ids.setdefault(token, len(ids))
        self.unknown = len(ids)  # the id of a token outside the vocabulary
        self.base = len(ids) + 1
        self.lo, self.hi = vec.ngram_range
        if self.base**self.hi * 4 >= 2**63:
            raise ValueError("n-gram keys would not fit in int64")
        self.unigram = np.full(self.base, -1, dtype=np.int64)
        longer_keys, longer_cols = [], []
        for term, col in vec.vocabulary_.items():
            tokens = term.split(" ")
            if len(tokens) == 1:
                self.unigram[ids[tokens[0]]] = col
                continue
            key = 0
            for token in tokens:
                key = key * self.base + ids[token]
            longer_keys.append(key * 4 + len(tokens))  # the size in the key: a bigram never meets a trigram's slot
            longer_cols.append(col)
        self.keys, self.cols, self.mask = _hash_table(
            np.asarray(longer_keys, np.int64), np.asarray(longer_cols, np.int64)
        )
        tokens = list(ids)  # in id order
        self.token_points = np.frombuffer("".join(tokens).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        self.token_starts = np.concatenate([[0], np.cumsum([len(t) for t in tokens])]).astype(np.int64)
        self.table = _token_table(self.token_points, self.token_starts)
        counts = np.arange(TF_TABLE, dtype=np.float32)
        with np.errstate(divide="ignore"):
            # The same float32 numpy calls as TfidfTransformer.transform on the counts (in place there).
            self.tf = np.log(counts) + 1.0 if vec.sublinear_tf else counts
        n = len(vec.vocabulary_)
        self.idf = np.asarray(vec.idf_, dtype=np.float64) if vec.use_idf else np.ones(n)
        self.norm = vec.norm == "l2"
        self.n_features = n

    def token_ids(self, docs: list[str]) -> np.ndarray:
        """Token ids of all documents, -1 between documents (the tokens and lower-casing of the vectorizer)."""
        if any(
            "\n" in d for d in docs
        ):  # never in normalised paragraphs; elsewhere a newline separates tokens like a space
            docs = [d.replace("\n", " ") for d in docs]
        # Lower-cased as one text: lower() treats a newline like the end of a text (even for a final sigma).
        text = "\n".join(docs).lower()
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        out = np.empty(len(points), dtype=np.int64)
        n = _tokenize(points, word_chars(), self.table, self.token_points, self.token_starts, self.unknown, out)
        return out[:n]

    def project(self, docs: list[str], W: np.ndarray) -> np.ndarray:
        """TF-IDF(docs) @ W, shape (documents, W's columns), equal to scikit-learn's transform then product."""
        out = np.zeros((len(docs), W.shape[1]))
        if not docs:
            return out
        ids = self.token_ids(docs)
        args = (self.unigram, self.keys, self.cols, self.mask, self.base, self.unknown, self.lo, self.hi)
        return _project(ids, len(docs), *args, self.tf, self.idf, self.norm, W, out)


def _hash_table(keys: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Open addressing with linear probing, at most half full; the slot of a key is that of `_lookup`."""
    size = 1 << max(4, int(2 * max(len(keys), 1) - 1).bit_length())
    table_keys = np.full(size, -1, dtype=np.int64)
    table_cols = np.full(size, -1, dtype=np.int64)
    mask = size - 1
    slots = (((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)).astype(np.int64)) & mask
    for key, col, slot in zip(keys.tolist(), cols.tolist(), slots.tolist(), strict=True):
        while table_keys[slot] != -1:
            slot = (slot + 1) & mask
        table_keys[slot], table_cols[slot] = key, col
    return table_keys, table_cols, mask


class LinearHead:
    """A fitted linear classifier with probabilities, split into its weights and the step from decision values to probabilities.

    LogisticRegression (softmax, or the logistic function for two classes) and CalibratedClassifierCV
    with sigmoid calibration of linear estimators (LinearSVC), averaged over its folds as scikit-learn does.
    """

    def __init__(self, clf):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression

        self.classes = clf.classes_
        if type(clf) is LogisticRegression:
            self.kind, self.parts = "logreg", [clf]
        elif type(clf) is CalibratedClassifierCV and all(
            c.method == "sigmoid" and hasattr(c.estimator, "coef_") for c in clf.calibrated_classifiers_
        ):
            self.kind, self.parts = "sigmoid", list(clf.calibrated_classifiers_)
        else:
            raise TypeError(f"{type(clf).__name__} is not a linear classifier this path reproduces")
        estimators = [p if self.kind == "logreg" else p.estimator for p in self.parts]
        self.coefs = [np.asarray(e.coef_, dtype=np.float64) for e in estimators]
        self.intercepts = [np.asarray(e.intercept_, dtype=np.float64) for e in estimators]
        self.widths = [c.shape[0] for c in self.coefs]

    def proba(self, decisions: list[np.ndarray]) -> np.ndarray:
        """Probabilities from each part's decision values (rows x that part's coef rows), as the classifier's predict_proba."""
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if self.kind == "logreg":
            d = decisions[0]
            if d.shape[1] == 1:
                p = expit(d[:, 0])
                return np.stack([1 - p, p], axis=1)
            return softmax(d, copy=False)
        mean = np.zeros((len(decisions[0]), len(self.classes)))
        for part, d in zip(self.parts, decisions, strict=True):
            mean += _calibrated(part, d)
        mean /= len(self.parts)
        return mean


def _calibrated(part, predictions: np.ndarray) -> np.ndarray:
    """_CalibratedClassifier.predict_proba (sigmoid) from the decision values of its estimator."""
    n_classes = len(part.classes)
    proba = np.zeros((len(predictions), n_classes))
    pos = np.searchsorted(np.sort(part.classes), part.estimator.classes_)  # LabelEncoder.transform
    for class_idx, this_pred, calibrator in zip(pos, predictions.T, part.calibrators, strict=False):
        proba[:, class_idx + (1 if n_classes == 2 else 0)] = calibrator.predict(this_pred)
    if n_classes == 2:
        proba[:, 0] = 1.0 - proba[:, 1]
    else:
        denominator = np.sum(proba, axis=1)[:, np.newaxis]
        proba = np.divide(proba, denominator, out=np.full_like(proba, 1 / n_classes), where=denominator != 0)
    proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba


def _paragraph_parts(pipe):
    """(the TfidfVectorizer, the classifier) of a paragraph pipeline this path reproduces, else TypeError."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from pipeline.fastvec import qualifies
    from pipeline.model import normalize_all

    if type(pipe) is not Pipeline or [name for name, _ in pipe.steps] != ["normalize", "features", "classify"]:
        raise TypeError("not the normalise / features / classify pipeline")
    norm, vec, clf = (step for _, step in pipe.steps)
    if type(norm) is not FunctionTransformer or norm.func is not normalize_all or norm.kw_args:
        raise TypeError("the first step is not normalize_all")
    if not qualifies(vec) or vec.token_pattern != r"(?u)\b\w+\b" or not vec.lowercase or vec.binary:
        raise TypeError("the features are not one word n-gram TfidfVectorizer this path reproduces")
    if (
        vec.dtype != np.float32
        or vec.norm not in ("l2", None)
        or vec.strip_accents is not None
        or vec.decode_error != "strict"
    ):
        raise TypeError("a TF-IDF option this path does not reproduce")
    return vec, clf


class CompiledModel:
    """A paragraph pipeline or a ContextModel, compiled: `predict_proba_articles` as the model's, same probabilities to 1e-6."""

    def __init__(self, model):
        from pipeline.model import ContextModel

        self.context = isinstance(model, ContextModel)
        pipe = model.paragraph_model_ if self.context else model
        vec, clf = _paragraph_parts(pipe)
        self.vocab = Vocabulary(vec)
        self.first = LinearHead(clf)
        self.classes_ = model.classes_
        V = self.vocab.n_features
        columns = [c.T for c in self.first.coefs]
        if self.context:
            self.second = LinearHead(model.context_clf_)
            self.top_k, self.off = model.top_k, model.off_index_
            self.offsets = [d for k in range(1, model.window + 1) for d in (-k, k)]
            self.title = bool(model.title)
            n_blocks = 2 + len(self.offsets) + self.title  # X, score x X, the neighbours, the title
            n_dense = len(self.classes_) * (1 + len(self.offsets) + self.title) + 1
            for coef in self.second.coefs:
                if coef.shape[1] != n_blocks * V + n_dense:
                    raise TypeError("the second pass does not read the blocks this path builds")
                columns += [coef[:, b * V : (b + 1) * V].T for b in range(n_blocks)]
            self.dense = [c[:, n_blocks * V :] for c in self.second.coefs]
            self.factors = getattr(model, "decision_factors_", None)
        # One matrix for every product with the TF-IDF vector, its columns block after block.
        self.W = np.ascontiguousarray(np.hstack(columns))
        self.first_width = sum(self.first.widths)

    def predict_proba_articles(self, articles: list[list[str]], normalized: bool = False) -> list[np.ndarray]:
        """One probability matrix per article; `normalized` says the paragraphs went through normalize() already."""
        from pipeline.model import apply_factors, normalize_all

        flat = [p for art in articles for p in art]
        bounds = np.cumsum([0] + [len(a) for a in articles])
        if not flat:
            return [np.zeros((0, len(self.classes_))) for _ in articles]
        XW = self.vocab.project(flat if normalized else normalize_all(flat), self.W)
        P = self.first.proba(self._split(XW[:, : self.first_width], self.first.widths, self.first.intercepts))
        if self.context:
            proba = apply_factors(self._second_pass(XW[:, self.first_width :], P, bounds), self.factors)
        else:
            proba = P
        return [proba[bounds[i] : bounds[i + 1]] for i in range(len(articles))]

    @staticmethod
    def _split(XW: np.ndarray, widths: list[int], intercepts: list[np.ndarray]) -> list[np.ndarray]:
        out, at = [], 0
        for w, b in zip(widths, intercepts, strict=True):
            out.append(XW[:, at : at + w] + b)
            at += w
        return out

    def _second_pass(self, XW: np.ndarray, P: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """The second pass's probabilities from the paragraph projections, as ContextModel._blocks then predict_proba."""
        n = len(P)
        on = 1.0 - P[:, self.off]
        score = _top_mean(on, bounds.astype(np.int64), self.top_k, np.zeros(n, dtype=np.float32))
        article = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        neighbours = []
        for offset in self.offsets:
            idx = np.arange(n) + offset
            inside = (idx >= 0) & (idx < n)
            inside[inside] &= article[idx[inside]] == article[inside]
            neighbours.append((np.where(inside, idx, 0), inside))
        title = np.repeat(bounds[:-1], np.diff(bounds))
        # The dense columns as _blocks builds them: float64 probabilities stored as float32.
        dense = [P, score[:, None]] + [P[i] * ins[:, None] for i, ins in neighbours]
        if self.title:
            dense.append(P[title])
        dense = np.hstack(dense).astype(np.float32).astype(np.float64)
        decisions, at = [], 0
        score64 = score.astype(np.float64)[:, None]
        for width, b, D in zip(self.second.widths, self.second.intercepts, self.dense, strict=True):
            blocks = [XW[:, at + k * width : at + (k + 1) * width] for k in range(2 + len(self.offsets) + self.title)]
            at += len(blocks) * width
            d = blocks[0] + score64 * blocks[1]
            for (idx, inside), block in zip(neighbours, blocks[2:], strict=False):
                d += block[idx] * inside[:, None]
            if self.title:
                d += blocks[-1][title]
            decisions.append(d + dense @ D.T + b)
        return self.second.proba(decisions)


def compile_model(model) -> CompiledModel | None:
    """The model compiled for tagging, or None when this path cannot reproduce it (the scikit-learn path then scores)."""
    if not sklearn_supported():
        return None
    try:
        return CompiledModel(model)
    except (TypeError, AttributeError, ValueError, KeyError):
        return None
