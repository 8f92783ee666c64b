"""The saved model compiled for batch tagging: the same probabilities as its scikit-learn path, with no per-token Python work.

`compiled_state` turns the fitted model into plain tables when it is saved (they are part of the
one model file, `pipeline/modelfile.py`; never a side file): the vocabulary becomes integer
tables, and `CompiledModel` stacks every linear weight that reads the paragraph's TF-IDF vector
(the first pass, and each block of the second pass: the paragraph, the paragraph times the article
score, the neighbours, the title) into one dense matrix W. A numba kernel counts each paragraph's n-grams,
weighs them exactly as TfidfVectorizer does (float32, the same rounding) and multiplies the
vector by W at once, so X·W is ONE sparse x dense product; the second pass then shifts those
projections to the neighbours and the title, adds the dense part, and calibrates as scikit-learn
does. The decision rule is `apply_factors` with the model's own `decision_factors_`.

Scoring from the tables imports neither scikit-learn nor the model's module. `compiled_state`
(and `compile_model`, for a model in memory) returns None for a model it cannot reproduce (another
feature kind, another classifier, another scikit-learn version): the caller keeps the scikit-learn path.
"""

from __future__ import annotations

import os
import re

import numba
import numpy as np

from pipeline.context import article_dense, neighbour, offsets

SMALL_SORT = 128  # n-grams of a paragraph sorted by insertion up to this many (a 30-token paragraph has about 60)
TF_TABLE = (
    1 << 13
)  # counts below this take 1 + log(count) from a table numpy filled (a paragraph has at most 5,000 chars)


def _cache_zipped_kernels_by_content() -> None:
    """Have numba keep the kernels of a zipped copy of this module in one folder per source text.

    Spark executors import the package from the zip the driver ships (`spark.code_zip`), which
    every application unpacks in a new folder; numba's own zip locator names its cache folder
    after that path, so it compiled the kernels again in every application on every executor
    (7-8 s per Python worker, measured on the test cluster). Numba is pinned: without the locator
    class the kernels are simply compiled.
    """
    from numba.core import caching

    base = getattr(caching, "ZipCacheLocator", None)
    locators = getattr(getattr(caching, "CacheImpl", None), "_locator_classes", None)
    if base is None or locators is None or any(getattr(c, "by_content", False) for c in locators):
        return

    class ByContent(base):
        by_content = True

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            digest = self.get_source_stamp().hex()[:24]  # sha256 of the module's text in the zip
            self._cache_path = os.path.join(os.path.dirname(self._cache_path), f"pipeline-{digest}")

    locators.insert(locators.index(base), ByContent)


if ".zip" + os.sep in __file__:
    _cache_zipped_kernels_by_content()

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
def _slot(h, mask):
    """The first slot of a 64-bit hash or key in an open-addressing table: its bits mixed by a multiply.

    Every table here (tokens by their FNV hash, n-grams by their key) places and finds with this.
    FNV-1a's own middle bits cluster for the short syllables of Vietnamese (32 probes per token on
    average with bits 20 and up; about one with the multiply).
    """
    return np.int64((np.uint64(h) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask


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
        slot = _slot(_fnv(points, starts[t], starts[t + 1]), mask)
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
        slot = _slot(_fnv(points, i, j), mask)
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
    slot = _slot(key, mask)
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
    product sums the terms in column order, in float64, as scipy's sparse x dense product does
    (W is float32: each float32 x float32 product is exact in float64).
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
            if m <= SMALL_SORT:  # most paragraphs: insertion sort, in place, beats np.sort's set-up
                sorted_cols = found[:m]
                for a in range(1, m):
                    key = sorted_cols[a]
                    b = a - 1
                    while b >= 0 and sorted_cols[b] > key:
                        sorted_cols[b + 1] = sorted_cols[b]
                        b -= 1
                    sorted_cols[b + 1] = key
            else:
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


def warm_up() -> None:
    """Load every kernel tagging calls from numba's cache (about 0.3 s), on tiny arrays of the real calls' types.

    It needs no model: `load_scorer` runs it while another thread decompresses the model file, and
    the workers forked afterwards inherit the loaded kernels instead of each loading them again.
    """
    i64, f32 = np.int64, np.float32
    table, out = np.full(16, -1, dtype=i64), np.empty(2, dtype=i64)
    points = np.frombuffer(bytes(4), dtype=np.uint32)  # read-only, as token_ids' frombuffer: another numba type
    _tokenize(points, word_chars(), table, np.zeros(0, np.uint32), np.zeros(1, i64), 0, out)
    tf, idf = np.zeros(2, dtype=f32), np.zeros(1)
    W, XW = np.zeros((1, 1), dtype=f32), np.zeros((1, 1))
    _project(np.zeros(1, dtype=i64), 1, np.zeros(1, i64), table, table, 15, 2, 1, 1, 2, tf, idf, True, W, XW)
    _top_mean(np.zeros(1), np.array([0, 1], dtype=i64), 3, np.zeros(1, dtype=f32))


class Vocabulary:
    """A fitted word n-gram TfidfVectorizer as integer tables: token ids, unigram columns, an n-gram hash table, tf and idf."""

    FIELDS = (
        "unigram", "keys", "cols", "mask", "base", "unknown", "lo", "hi",
        "token_points", "token_starts", "table", "sublinear", "idf", "norm", "n_features",
    )  # fmt: skip

    def __init__(self, state: dict):
        for name in self.FIELDS:
            setattr(self, name, state[name])
        self.fold_digits = state.get("fold_digits", False)  # absent from files made before digits were folded
        counts = np.arange(TF_TABLE, dtype=np.float32)
        with np.errstate(divide="ignore"):
            # The same float32 numpy calls as TfidfTransformer.transform on the counts (in place there).
            self.tf = np.log(counts) + 1.0 if self.sublinear else counts

    @staticmethod
    def state_of(vec, fold_digits: bool = False) -> dict:
        """The tables of a fitted vectorizer (its Python loop over every term runs here, when the model is saved).

        `fold_digits`: the model reads every digit 1-9 as 0 (`pipeline.model.normalize_all`).
        """
        ids: dict[str, int] = {}
        for term in vec.vocabulary_:
            for token in term.split(" "):
                ids.setdefault(token, len(ids))
        unknown = len(ids)  # the id of a token outside the vocabulary
        base = len(ids) + 1
        lo, hi = vec.ngram_range
        if base**hi * 4 >= 2**63:
            raise ValueError("n-gram keys would not fit in int64")
        unigram = np.full(base, -1, dtype=np.int64)
        longer_keys, longer_cols = [], []
        for term, col in vec.vocabulary_.items():
            tokens = term.split(" ")
            if len(tokens) == 1:
                unigram[ids[tokens[0]]] = col
                continue
            key = 0
            for token in tokens:
                key = key * base + ids[token]
            longer_keys.append(key * 4 + len(tokens))  # the size in the key: a bigram never meets a trigram's slot
            longer_cols.append(col)
        keys, cols, mask = _hash_table(np.asarray(longer_keys, np.int64), np.asarray(longer_cols, np.int64))
        tokens = list(ids)  # in id order
        token_points = np.frombuffer("".join(tokens).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
        token_starts = np.concatenate([[0], np.cumsum([len(t) for t in tokens])]).astype(np.int64)
        n = len(vec.vocabulary_)
        return {
            "unigram": unigram, "keys": keys, "cols": cols, "mask": mask, "base": base, "unknown": unknown,
            "lo": lo, "hi": hi, "token_points": token_points, "token_starts": token_starts,
            "table": _token_table(token_points, token_starts), "sublinear": bool(vec.sublinear_tf),
            "idf": np.asarray(vec.idf_, dtype=np.float64) if vec.use_idf else np.ones(n),
            "norm": vec.norm == "l2", "n_features": n, "fold_digits": bool(fold_digits),
        }  # fmt: skip

    def token_ids(self, docs: list[str]) -> np.ndarray:
        """Token ids of all documents, -1 between documents (the tokens and lower-casing of the vectorizer)."""
        if any(
            "\n" in d for d in docs
        ):  # never in normalised paragraphs; elsewhere a newline separates tokens like a space
            docs = [d.replace("\n", " ") for d in docs]
        # Lower-cased as one text: lower() treats a newline like the end of a text (even for a final sigma).
        text = "\n".join(docs).lower()
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if self.fold_digits:
            # "1" to "9" (49-57) as "0" (48), as str.translate(FOLD_DIGITS); smaller points wrap past 9
            points = np.where(points - np.uint32(49) < 9, np.uint32(48), points)
            points.flags.writeable = False  # the read-only array type the kernel is compiled for
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
    _place(keys, cols, table_keys, table_cols)
    return table_keys, table_cols, size - 1


@_jit
def _place(keys, cols, table_keys, table_cols):
    mask = table_keys.shape[0] - 1
    for i in range(keys.shape[0]):
        slot = _slot(keys[i], mask)
        while table_keys[slot] != -1:
            slot = (slot + 1) & mask
        table_keys[slot], table_cols[slot] = keys[i], cols[i]


class LinearHead:
    """A fitted linear classifier with probabilities, split into its weights and the step from decision values to probabilities.

    LogisticRegression (softmax, or the logistic function for two classes) and CalibratedClassifierCV
    with sigmoid calibration of linear estimators (LinearSVC), averaged over its folds as scikit-learn
    does, in numpy alone: the same operations as scikit-learn's, so the same probabilities to 1e-15.
    """

    def __init__(self, state: dict):
        """The step from decision values to probabilities; the weights themselves go into CompiledModel's W."""
        self.kind, self.classes = state["kind"], state["classes"]
        self.intercepts = [np.asarray(b, dtype=np.float64) for b in state["intercepts"]]
        self.calibration = state["calibration"]  # per part: (class positions, a, b) of its sigmoid calibrators
        self.widths = [c.shape[0] for c in state["coefs"]]

    @staticmethod
    def state_of(clf) -> dict:
        """The weights and calibration of a fitted classifier, TypeError for one this path does not reproduce."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression

        calibration = []
        if type(clf) is LogisticRegression:
            kind, estimators = "logreg", [clf]
        elif type(clf) is CalibratedClassifierCV and all(
            c.method == "sigmoid" and hasattr(c.estimator, "coef_") for c in clf.calibrated_classifiers_
        ):
            kind, estimators = "sigmoid", [p.estimator for p in clf.calibrated_classifiers_]
            for part in clf.calibrated_classifiers_:
                pos = np.searchsorted(np.sort(part.classes), part.estimator.classes_)  # LabelEncoder.transform
                a = np.array([c.a_ for c in part.calibrators], dtype=np.float64)
                b = np.array([c.b_ for c in part.calibrators], dtype=np.float64)
                calibration.append((pos.astype(np.int64), a, b))
        else:
            raise TypeError(f"{type(clf).__name__} is not a linear classifier this path reproduces")
        return {
            "kind": kind,
            "classes": np.asarray(clf.classes_),
            # the estimators' own array objects, so the model file stores them once (modelfile.pack)
            "coefs": [e.coef_ for e in estimators],
            "intercepts": [e.intercept_ for e in estimators],
            "calibration": calibration,
        }

    def proba(self, decisions: list[np.ndarray]) -> np.ndarray:
        """Probabilities from each part's decision values (rows x that part's coef rows), as the classifier's predict_proba."""
        if self.kind == "logreg":
            d = decisions[0]
            if d.shape[1] == 1:
                p = _expit(d[:, 0])
                return np.stack([1 - p, p], axis=1)
            return _softmax(d)
        mean = np.zeros((len(decisions[0]), len(self.classes)))
        for calibration, d in zip(self.calibration, decisions, strict=True):
            mean += _calibrated(len(self.classes), calibration, d)
        mean /= len(self.calibration)
        return mean


def _expit(x: np.ndarray) -> np.ndarray:
    """The logistic function as scipy.special.expit computes it, 1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(X: np.ndarray) -> np.ndarray:
    """sklearn.utils.extmath.softmax(X, copy=False), its steps in its order."""
    X -= X.max(axis=1).reshape((-1, 1))
    np.exp(X, out=X)
    X /= X.sum(axis=1).reshape((-1, 1))
    return X


def _calibrated(n_classes: int, calibration: tuple, predictions: np.ndarray) -> np.ndarray:
    """_CalibratedClassifier.predict_proba (sigmoid) from the decision values of its estimator."""
    pos, a, b = calibration
    proba = np.zeros((len(predictions), n_classes))
    for class_idx, this_pred, a_, b_ in zip(pos, predictions.T, a, b, strict=False):
        # _SigmoidCalibration.predict: expit(-(a * T + b))
        proba[:, class_idx + (1 if n_classes == 2 else 0)] = _expit(-(a_ * this_pred + b_))
    if n_classes == 2:
        proba[:, 0] = 1.0 - proba[:, 1]
    else:
        denominator = np.sum(proba, axis=1)[:, np.newaxis]
        proba = np.divide(proba, denominator, out=np.full_like(proba, 1 / n_classes), where=denominator != 0)
    proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba


def _paragraph_parts(pipe):
    """(the TfidfVectorizer, the classifier, whether digits are folded) of a paragraph pipeline this path reproduces, else TypeError."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from pipeline.fastvec import qualifies
    from pipeline.model import normalize_all

    if type(pipe) is not Pipeline or [name for name, _ in pipe.steps] != ["normalize", "features", "classify"]:
        raise TypeError("not the normalise / features / classify pipeline")
    norm, vec, clf = (step for _, step in pipe.steps)
    if type(norm) is not FunctionTransformer or norm.func is not normalize_all:
        raise TypeError("the first step is not normalize_all")
    kw_args = norm.kw_args or {}
    if kw_args.keys() - {"fold_digits"}:
        raise TypeError("normalize_all with an argument this path does not reproduce")
    if not qualifies(vec) or vec.token_pattern != r"(?u)\b\w+\b" or not vec.lowercase or vec.binary:
        raise TypeError("the features are not one word n-gram TfidfVectorizer this path reproduces")
    if (
        vec.dtype != np.float32
        or vec.norm not in ("l2", None)
        or vec.strip_accents is not None
        or vec.decode_error != "strict"
    ):
        raise TypeError("a TF-IDF option this path does not reproduce")
    return vec, clf, bool(kw_args.get("fold_digits"))


class CompiledModel:
    """A paragraph pipeline or a ContextModel, compiled: `predict_proba_articles` as the model's, same probabilities to 1e-6.

    Made from the plain tables of `compiled_state` (stored in the model file), so scoring imports
    neither scikit-learn nor the model's module.
    """

    def __init__(self, state: dict):
        self.context = state["context"]
        self.classes_ = state["classes"]
        self.vocab = Vocabulary(state["vocab"])
        self.first = LinearHead(state["first"])
        V = self.vocab.n_features
        columns = [c.T for c in state["first"]["coefs"]]
        if self.context:
            self.second = LinearHead(state["second"])
            self.top_k, self.off = state["top_k"], state["off"]
            self.offsets, self.title, self.factors = state["offsets"], state["title"], state["factors"]
            self.window, self.prob_window, self.article_probs = _dense_layout(state)
            n_blocks = _check_blocks(state)
            coefs = state["second"]["coefs"]
            columns += [coef[:, b * V : (b + 1) * V].T for coef in coefs for b in range(n_blocks)]
            self.dense = [np.ascontiguousarray(c[:, n_blocks * V :], dtype=np.float64) for c in coefs]
        # One matrix for every product with the TF-IDF vector, its columns block after block. In float32:
        # a float32 value times a float32 weight is exact in float64, where the kernel sums, so the only
        # rounding is of the weights (probabilities within 4.4e-9 of float64 weights on 41,637 corpus
        # paragraphs, no label changed), and the kernel reads half the bytes.
        self.W = np.empty((V, sum(c.shape[1] for c in columns)), dtype=np.float32)
        at = 0
        for c in columns:
            self.W[:, at : at + c.shape[1]] = c
            at += c.shape[1]
        self.first_width = sum(self.first.widths)

    def predict_proba_articles(self, articles: list[list[str]], normalized: bool = False) -> list[np.ndarray]:
        """One probability matrix per article; `normalized` says the paragraphs went through normalize() already."""
        from pipeline.decision import apply_factors
        from pipeline.text import normalize

        flat = [p for art in articles for p in art]
        bounds = np.cumsum([0] + [len(a) for a in articles])
        if not flat:
            return [np.zeros((0, len(self.classes_))) for _ in articles]
        XW = self.vocab.project(flat if normalized else [normalize(p) for p in flat], self.W)
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
        neighbours = [neighbour(article, offset) for offset in self.offsets]
        title = np.repeat(bounds[:-1], np.diff(bounds))
        # The dense columns as _blocks builds them: float64 probabilities stored as float32.
        dense = [P, score[:, None]] + [P[i] * ins[:, None] for i, ins in neighbours]
        if self.title:
            dense.append(P[title])
        dense += article_dense(P, bounds, article, self.window, self.prob_window, self.article_probs)
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
            # einsum, not `@`: OpenBLAS runs a product this small on threads that spin on the other
            # worker's core (tag 4.6 -> 5.9 s on 2 cores once the article columns made it 25 wide)
            decisions.append(d + np.einsum("ij,kj->ik", dense, D) + b)
        return self.second.proba(decisions)


def _dense_layout(state: dict) -> tuple[int, int, bool]:
    """(window, prob_window, article_probs) of a context model's tables, as `article_dense` takes them.

    The last two are absent from files made before those dense columns existed: off, as then.
    """
    return len(state["offsets"]) // 2, state.get("prob_window", 1), state.get("article_probs", False)


def _check_blocks(state: dict) -> int:
    """The number of blocks of the second pass that read the TF-IDF vector; ValueError when its weights are not laid out so."""
    n_blocks = 2 + len(state["offsets"]) + state["title"]  # X, score x X, the neighbours, the title
    window, prob_window, article_probs = _dense_layout(state)
    n_probs = 1 + len(state["offsets"]) + state["title"] + len(offsets(prob_window, window + 1)) + 2 * article_probs
    n_dense = len(state["classes"]) * n_probs + 1  # the probability blocks and the article score
    if any(c.shape[1] != n_blocks * state["vocab"]["n_features"] + n_dense for c in state["second"]["coefs"]):
        raise ValueError("the second pass does not read the blocks this path builds")
    return n_blocks


def compiled_state(model) -> dict | None:
    """The plain tables `CompiledModel` scores with, from a fitted model, or None when this path cannot reproduce it."""
    from pipeline.fastvec import sklearn_supported
    from pipeline.model import ContextModel

    if not sklearn_supported():
        return None
    try:
        context = isinstance(model, ContextModel)
        vec, clf, fold_digits = _paragraph_parts(model.paragraph_model_ if context else model)
        state = {"context": context, "classes": np.asarray(model.classes_)}
        state |= {"vocab": Vocabulary.state_of(vec, fold_digits), "first": LinearHead.state_of(clf)}
        if context:
            state |= {"second": LinearHead.state_of(model.context_clf_), "top_k": int(model.top_k)}
            state |= {"off": int(model.off_index_), "offsets": offsets(model.window), "title": bool(model.title)}
            state |= {"prob_window": int(model.prob_window), "article_probs": bool(model.article_probs)}
            state["factors"] = getattr(model, "decision_factors_", None)
        if context:
            _check_blocks(state)  # checked now, not when a file is tagged
        return state
    except (TypeError, AttributeError, ValueError, KeyError):
        return None


def compile_model(model) -> CompiledModel | None:
    """A fitted model in memory compiled for tagging, or None when this path cannot reproduce it (the scikit-learn path then scores)."""
    state = compiled_state(model)
    return CompiledModel(state) if state is not None else None
