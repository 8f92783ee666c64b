"""The model: one scikit-learn Pipeline from raw paragraph text to calibrated label probabilities.

Normalisation and tokenisation are steps of the pipeline, so training and tagging cannot drift
apart. The saved file is checked against its recorded sha256 before it is unpickled.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from pipeline import modelfile
from pipeline.context import article_dense, neighbour, offsets
from pipeline.decision import apply_factors, choose_factors
from pipeline.errors import ModelError  # noqa: F401 - its home is pipeline.errors; imported from here too
from pipeline.files import atomic_write_bytes
from pipeline.modelfile import meta_path, sha256_file  # noqa: F401 - their home is pipeline.modelfile; imported from here too
from pipeline.text import normalize

FEATURES = ("syllable", "word", "char")
# \w+ keeps one-letter words ("ở", "là") that scikit-learn's default pattern drops; "_" joins
# the syllables of an underthesea word, so "mua_bán" stays one token.
TOKEN_PATTERN = r"(?u)\b\w+\b"


# Every ASCII digit but 0 read as 0 by the features: "312 nạn nhân" and "518 nạn nhân" share
# their n-grams, so figures of any value count as figures (the `statistics` label needs that).
FOLD_DIGITS = str.maketrans("123456789", "000000000")


def normalize_all(texts, fold_digits: bool = False) -> list[str]:
    """Normalise every text of a batch (the pipeline's first step); `fold_digits` writes every digit 1-9 as 0."""
    if fold_digits:
        return [normalize(t).translate(FOLD_DIGITS) for t in texts]
    return [normalize(t) for t in texts]


def segment_words(text: str) -> str:
    """Join the syllables of each Vietnamese word with "_" (underthesea's CRF segmenter)."""
    from underthesea import word_tokenize  # slow import, only for word-level models

    return word_tokenize(text, format="text")


class WordSegmenter(BaseEstimator, TransformerMixin):
    """Word-segment normalised texts; `cache` maps text to its segmentation during training only.

    The tokenize stage fills the cache once, so retraining with another C does not re-segment.
    `train` clears it before the model is saved, so tagging always segments for real.
    """

    def __init__(self, cache: dict | None = None):
        self.cache = cache

    def fit(self, texts, y=None):
        return self

    def transform(self, texts):
        cache = self.cache or {}
        return [cache.get(t) or segment_words(t) for t in texts]


def _tfidf(params: dict, **kw) -> TfidfVectorizer:
    return TfidfVectorizer(
        lowercase=True, min_df=params["min_df"], sublinear_tf=params["sublinear_tf"], dtype=np.float32, **kw
    )


def build_features(params: dict, word_cache: dict | None = None):
    """The feature extractor named by `params['features']`: blocks joined with '+'."""
    blocks = []
    for kind in params["features"].split("+"):
        if kind == "syllable":
            vec = _tfidf(params, token_pattern=TOKEN_PATTERN, ngram_range=(1, params["ngram_max"]))
            blocks.append(("syllable", vec))
        elif kind == "word":
            vec = _tfidf(params, token_pattern=TOKEN_PATTERN, ngram_range=(1, params["ngram_max"]))
            blocks.append(("word", Pipeline([("segment", WordSegmenter(word_cache)), ("tfidf", vec)])))
        elif kind == "char":
            lo, hi = params["char_ngram"]
            blocks.append(("char", _tfidf(params, analyzer="char_wb", ngram_range=(lo, hi), max_features=300_000)))
        else:
            raise ValueError(f"unknown feature block {kind!r}; expected {' | '.join(FEATURES)} joined with '+'")
    return blocks[0][1] if len(blocks) == 1 else FeatureUnion(blocks)


def build_classifier(params: dict):
    """A linear classifier with probabilities: logistic regression, or LinearSVC with sigmoid calibration."""
    weight = params["class_weight"] or None
    if params["classifier"] == "logreg":
        # newton-cg: on these 100k+ sparse features it reaches a lower loss than lbfgs in a quarter of the time
        return LogisticRegression(
            C=params["C"], class_weight=weight, solver="newton-cg", max_iter=3000, random_state=params["seed"]
        )
    if params["classifier"] == "linearsvc":
        svc = LinearSVC(C=params["C"], class_weight=weight, random_state=params["seed"])
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3)
    raise ValueError(f"unknown classifier {params['classifier']!r}; expected logreg | linearsvc")


def build_model(params: dict, word_cache: dict | None = None) -> Pipeline:
    """The whole model: normalise, extract TF-IDF features, classify."""
    # kw_args only when digits are folded, so a model without it keeps the step of earlier models
    fold = {"fold_digits": True} if params.get("fold_digits") else None
    return Pipeline(
        [
            ("normalize", FunctionTransformer(normalize_all, kw_args=fold)),
            ("features", build_features(params, word_cache)),
            ("classify", build_classifier(params)),
        ]
    )


def drop_caches(model):
    """Empty every WordSegmenter cache so the saved model carries no training text, nor anything of this process."""
    if isinstance(model, ContextModel):
        model.word_cache = None
        drop_caches(model.paragraph_model_)
        return model
    for _, step in _walk(model):
        if isinstance(step, WordSegmenter):
            step.cache = None
        # A fitted vectorizer remembers id(stop_words), a memory address that differs in every process,
        # so two identical trainings would pickle to different bytes; it is only a "checked" marker.
        if hasattr(step, "_stop_words_id"):
            del step._stop_words_id
    return model


def _walk(est, name=""):
    yield name, est
    for attr in ("steps", "transformer_list"):
        for sub_name, sub in getattr(est, attr, []):
            yield from _walk(sub, sub_name)


def load_model(path: Path, meta_file: Path | None = None) -> tuple[Pipeline, dict]:
    """The saved scikit-learn model and its metadata, sha256-checked and unpickled calling only trusted types (`modelfile.load`)."""
    model, _, meta = modelfile.load(path, meta_file)
    return model, meta


def write_json(path: Path, obj) -> None:
    """Write JSON atomically, keys sorted, so reruns give identical bytes."""
    data = (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write_bytes(Path(path), lambda f: f.write(data))


def predict(model: Pipeline, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels and the probability matrix (columns in `model.classes_` order) for a list of texts."""
    if not texts:
        return [], np.zeros((0, len(model.classes_)))
    proba = model.predict_proba(texts)
    classes = model.classes_
    return [classes[i] for i in proba.argmax(axis=1)], proba


def predict_articles(model, articles: list[list[str]]) -> list[np.ndarray]:
    """One probability matrix (paragraphs x `model.classes_`) per article, in one batched call.

    A context model (which reads neighbouring paragraphs) provides `predict_proba_articles`;
    a paragraph-only pipeline scores all paragraphs of all articles together.
    """
    if hasattr(model, "predict_proba_articles"):
        return model.predict_proba_articles(articles)
    flat = [p for art in articles for p in art]
    proba = model.predict_proba(flat) if flat else np.zeros((0, len(model.classes_)))
    bounds = article_bounds(articles)
    return [proba[bounds[i] : bounds[i + 1]] for i in range(len(articles))]


def article_bounds(articles: list[list]) -> np.ndarray:
    """Where each article starts in the flat list of all paragraphs, and where the last one ends (len + 1 values)."""
    return np.cumsum([0] + [len(a) for a in articles])


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def group_rows(article_ids: list, positions: list | None = None) -> list[list[int]]:
    """Row indices grouped into articles: rows sharing an article id, in `positions` order (input order breaks ties).

    A row with no article id (None or NaN) is an article of its own; a missing position sorts last.
    Groups come in the order of their first row.
    """
    by_id: dict = {}
    groups = []
    for i, aid in enumerate(article_ids):
        if _missing(aid):
            groups.append([i])
        elif aid in by_id:
            by_id[aid].append(i)
        else:
            by_id[aid] = [i]
            groups.append(by_id[aid])
    if positions is None:
        return groups
    return [
        sorted(g, key=lambda i: (_missing(positions[i]), 0 if _missing(positions[i]) else positions[i], i))
        for g in groups
    ]


def predict_rows(model, texts: list[str], article_ids: list | None = None, positions: list | None = None) -> np.ndarray:
    """Probabilities for paragraph rows, one per row in input order; rows sharing an article id are one article.

    Rows of one article are scored together (see `group_rows`), so the context model reads their
    neighbours and the article, as whole-article tagging does.
    """
    groups = group_rows(article_ids, positions) if article_ids is not None else [[i] for i in range(len(texts))]
    probas = predict_articles(model, [[texts[i] for i in g] for g in groups])
    out = np.zeros((len(texts), len(model.classes_)))
    for g, proba in zip(groups, probas, strict=True):
        out[g] = proba
    return out


def paragraph_model(model) -> Pipeline:
    """The paragraph-level pipeline inside `model` (the model itself, or a context model's first pass)."""
    return getattr(model, "paragraph_model_", model)


def top_terms(model, texts: list[str], labels: list[str], k: int) -> list[list[tuple[str, float]]]:
    """For each text, the `k` n-grams that pushed it most towards its label (tf-idf value x class weight).

    Read from the paragraph pipeline's linear weights; with a calibrated LinearSVC, the mean
    weight over the calibration folds.
    """
    pipe = paragraph_model(model)
    feats, clf = pipe.named_steps["features"], pipe.named_steps["classify"]
    if hasattr(clf, "calibrated_classifiers_"):
        coef = np.mean([c.estimator.coef_ for c in clf.calibrated_classifiers_], axis=0)
    else:
        coef = clf.coef_
    names = feats.get_feature_names_out()
    X = feats.transform(pipe.named_steps["normalize"].transform(texts)).tocsr()
    row_of = {c: i for i, c in enumerate(clf.classes_)}
    out = []
    for i, label in enumerate(labels):
        row = X.getrow(i)
        contrib = row.data * coef[row_of[label], row.indices]
        order = np.argsort(-contrib)[:k]
        out.append([(str(names[row.indices[j]]), round(float(contrib[j]), 4)) for j in order if contrib[j] > 0])
    return out


def proba_in(classes, fitted, X) -> np.ndarray:
    """`fitted.predict_proba(X)` with columns in `classes` order; a class its training fold lacked gets 0."""
    proba = fitted.predict_proba(X)
    if list(fitted.classes_) == list(classes):
        return proba
    out = np.zeros((proba.shape[0], len(classes)))
    out[:, [list(classes).index(c) for c in fitted.classes_]] = proba
    return out


def article_score(p_on: np.ndarray, top_k: int) -> float:
    """How on-topic an article is: the mean of its `top_k` highest on-topic probabilities."""
    if not len(p_on):
        return 0.0
    return float(np.sort(p_on)[-top_k:].mean())


# The hyperparameters of a paragraph model (`build_model`), named as in params.yaml's train section.
PARAGRAPH_PARAMS = (
    "features",
    "fold_digits",
    "classifier",
    "C",
    "ngram_max",
    "char_ngram",
    "min_df",
    "sublinear_tf",
    "class_weight",
    "seed",
)


def _unpickled(data: bytes):
    """`pickle.loads`, with every string of the objects inside (attribute names and values) interned.

    A pickle shares equal strings only by identity, and which strings are one object depends on
    where they were made: scikit-learn's `__setstate__` keeps the unpickled key strings, and a
    parameter string is the caller's object in this process but a fresh copy from a worker. With
    every string interned, the model's bytes no longer depend on that history, nor on n_jobs.
    """

    def canon(v):
        return sys.intern(v) if type(v) is str else v

    obj = pickle.loads(data)
    seen: set[int] = set()
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, (str, bytes, int, float, np.generic, type)) or o is None:
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            # one dtype object per kind, as in the process that made the arrays (a copy from a worker has its own)
            if o.dtype.fields is None and o.dtype is not np.dtype(o.dtype.str):
                o.dtype = np.dtype(o.dtype.str)
            if o.dtype == object:
                o.flat[:] = [canon(v) for v in o.flat]
        elif isinstance(o, dict):
            o.update({k: canon(v) for k, v in o.items()})
            todo.extend(o.values())
        elif isinstance(o, list):
            o[:] = [canon(v) for v in o]
            todo.extend(o)
        elif isinstance(o, tuple):
            todo.extend(o)
        elif hasattr(o, "__dict__"):
            o.__dict__ = {canon(k): canon(v) for k, v in vars(o).items()}
            todo.extend(vars(o).values())
    return obj


def _fit_classifier(params: dict, X, y: np.ndarray) -> bytes:
    """A classifier (`build_classifier`) fitted on X, pickled by the process that fitted it.

    A model returned by a joblib worker comes back with its large arrays as separate copies where
    one process shares them, which saves to other bytes (same values); see `_unpickled` for the
    other half.
    """
    return pickle.dumps(build_classifier(params).fit(X, y), protocol=pickle.HIGHEST_PROTOCOL)


def _fold_proba(classes, params: dict, X, y: np.ndarray, X_held) -> np.ndarray:
    """Probabilities of the rows `X_held` from a classifier fitted on one fold's rows X."""
    return proba_in(classes, build_classifier(params).fit(X, y), X_held)


def _fit_second(params: dict, Z, y: np.ndarray, groups: np.ndarray, folds: int, oof: bool, n_jobs: int):
    """The second-pass classifier, and (when `oof`) its out-of-fold probabilities of every row of Z.

    A calibrated LinearSVC is calibrated on `folds` folds grouped by article (each fold's SVC scored
    on articles it did not see), and those held-out probabilities are the out-of-fold ones: the
    decision rule costs no extra fit. Its folds run in the workers; the fitted object is made the
    same bytes as a fit in one process (shared `classes`, interned names). Another classifier gets
    its out-of-fold copies fitted on the same folds.
    """
    clf, splitter = build_classifier(params), GroupKFold(n_splits=folds)
    folds = list(splitter.split(Z, y, groups))
    classes = np.unique(y.astype(str))
    out = np.zeros((len(y), len(classes))) if oof else None
    if not isinstance(clf, CalibratedClassifierCV):
        tasks = [delayed(_fit_classifier)(params, Z, y)]
        tasks += [delayed(_fold_proba)(classes, params, Z[tr], y[tr], Z[te]) for tr, te in folds] if oof else []
        fitted, *probas = Parallel(n_jobs=n_jobs)(tasks)
        for (_, te), proba in zip(folds, probas, strict=True):
            out[te] = proba
        return _unpickled(fitted), out
    # metadata routing hands `groups` to the GroupKFold splitter
    with config_context(enable_metadata_routing=True), joblib.parallel_config(n_jobs=n_jobs):
        clf.set_params(cv=splitter).fit(Z, y, groups=groups)
    for cal, (_, te) in zip(clf.calibrated_classifiers_, folds, strict=True):
        if oof:
            out[te] = cal.predict_proba(Z[te])
        cal.classes = clf.classes_  # one array, as a fit in one process leaves it
    return _unpickled(pickle.dumps(clf, protocol=pickle.HIGHEST_PROTOCOL)), out


def _transform(parallel: Parallel, features, texts: list[str]):
    """`features.transform(texts)` as a CSR matrix, in one contiguous chunk of rows per worker."""
    chunks = np.array_split(np.arange(len(texts)), joblib.effective_n_jobs(parallel.n_jobs))
    parts = parallel(delayed(features.transform)([texts[i] for i in c]) for c in chunks if len(c))
    return sparse.vstack(parts).tocsr()


class ContextModel(BaseEstimator, ClassifierMixin):
    """Two passes over an article: a paragraph model, then a model that also reads the article and the neighbours.

    The second pass sees, per paragraph: its TF-IDF block; the same block times the article score
    (so a word can mean more inside a trafficking article); the blocks of the `window` paragraphs
    before and after it and, with `title`, of the article's first line; and the first-pass
    probabilities of all of these, of the paragraphs up to `prob_window` away and, with
    `article_probs`, their mean and maximum over the article. During training the
    first-pass probabilities are out-of-fold (`cv` folds grouped by article), so the second pass never
    learns from probabilities the first pass made on its own training labels.

    One argument per hyperparameter (scikit-learn's convention, so `get_params`, `clone` and a grid
    search reach each): the paragraph model's, named as in params.yaml's train section; the second
    pass's classifier and C; `from_params` maps a whole train section.
    """

    def __init__(
        self,
        features: str = "syllable",
        fold_digits: bool = False,
        classifier: str = "logreg",
        C: float = 10.0,
        ngram_max: int = 2,
        char_ngram: tuple[int, int] = (2, 5),
        min_df: int = 2,
        sublinear_tf: bool = True,
        class_weight: str | None = "balanced",
        seed: int = 42,
        context_classifier: str = "linearsvc",
        context_C: float = 0.3,
        cv: int = 5,
        top_k: int = 3,
        title: bool = False,
        window: int = 1,
        prob_window: int = 1,
        article_probs: bool = False,
        decision: str = "none",
        decision_folds: int = 3,
        decision_tolerance: float = 0.0,
        word_cache: dict | None = None,
    ):
        self.features = features
        self.fold_digits = fold_digits
        self.classifier = classifier
        self.C = C
        self.ngram_max = ngram_max
        self.char_ngram = char_ngram
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.class_weight = class_weight
        self.seed = seed
        self.context_classifier = context_classifier
        self.context_C = context_C
        self.cv = cv
        self.top_k = top_k
        self.title = title
        self.window = window
        self.prob_window = prob_window
        self.article_probs = article_probs
        self.decision = decision
        self.decision_folds = decision_folds
        self.decision_tolerance = decision_tolerance
        self.word_cache = word_cache

    @classmethod
    def from_params(cls, params: dict, word_cache: dict | None = None, **overrides) -> ContextModel:
        """The context model a train section of params.yaml describes; `overrides` replace any argument."""
        args = {name: params[name] for name in (*PARAGRAPH_PARAMS, "context_classifier", "context_C", "top_k")}
        args.update(
            cv=params["context_folds"],
            title=params["context_title"],
            window=params["context_window"],
            prob_window=params["context_prob_window"],
            article_probs=params["context_article_probs"],
            decision=params["decision"],
            decision_folds=params["decision_folds"],
            decision_tolerance=params["decision_tolerance"],
        )
        return cls(**{**args, "word_cache": word_cache, **overrides})

    def paragraph_params(self) -> dict:
        """The first pass's hyperparameters, as `build_model` reads them."""
        return {name: getattr(self, name) for name in PARAGRAPH_PARAMS}

    def second_params(self) -> dict:
        """The second pass's hyperparameters, as `build_classifier` reads them."""
        return {**self.paragraph_params(), "classifier": self.context_classifier, "C": self.context_C}

    # -- features ---------------------------------------------------------------------------
    def _blocks(self, X, P, bounds):
        """Second-pass design matrix from paragraph features X, first-pass probabilities P and article bounds."""
        n = X.shape[0]
        on = 1.0 - P[:, self.off_index_]
        score = np.zeros(n, dtype=np.float32)
        article = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b > a:
                score[a:b] = article_score(on[a:b], self.top_k)
        blocks = [X, sparse.diags(score) @ X]
        dense = [P, score[:, None]]
        for offset in offsets(self.window):
            idx, inside = neighbour(article, offset)
            blocks.append(sparse.diags(inside.astype(np.float32)) @ X[idx])
            dense.append(P[idx] * inside[:, None])
        if self.title:
            title_idx = np.repeat(bounds[:-1], np.diff(bounds))
            blocks.append(X[title_idx])
            dense.append(P[title_idx])
        # models saved before these columns existed have neither attribute
        far, stats = getattr(self, "prob_window", 1), getattr(self, "article_probs", False)
        dense += article_dense(P, bounds, article, self.window, far, stats)
        blocks.append(sparse.csr_matrix(np.hstack(dense).astype(np.float32)))
        return sparse.hstack(blocks).tocsr()

    # -- training ---------------------------------------------------------------------------
    def fit(self, articles: list[list[str]], labels: list[list[str | None]], n_jobs: int = 1):
        """Fit on whole articles; `labels` holds one label or None (unlabeled neighbour) per paragraph.

        `n_jobs` processes fit the independent models of each pass together: the first pass on every
        labeled paragraph with its out-of-fold copies, then the second pass with the decision rule's
        out-of-fold copies. The saved model is the same bytes for any value.
        """
        from pipeline.fastvec import accelerate  # imports pandas, which the model needs only here

        flat = [p for art in articles for p in art]
        y = np.array([lab for labs in labels for lab in labs], dtype=object)
        group = np.repeat(np.arange(len(articles)), [len(a) for a in articles])
        bounds = article_bounds(articles)
        known = np.array([lab is not None for lab in y])
        # the classes every fitted classifier orders its columns by (scikit-learn sorts them)
        classes = np.unique(y[known].astype(str))
        para, yk = self.paragraph_params(), y[known]
        paragraph = build_model(para, self.word_cache)
        steps = paragraph.named_steps
        norm = steps["normalize"].fit_transform(flat)

        with Parallel(n_jobs=n_jobs) as parallel:
            # The features are fitted once, on the labeled paragraphs, and serve the out-of-fold copies
            # too: a vocabulary and idf read from text (never labels), so the folds stay honest about
            # labels while the text is counted once instead of six times.
            labeled, other = np.flatnonzero(known), np.flatnonzero(~known)
            Xk = steps["features"].fit_transform([norm[i] for i in labeled]).tocsr()
            Xk.sort_indices()  # as `transform` leaves them, so these rows equal the tagger's
            # the unlabeled neighbours: counted by tagging's exact array path, three times faster
            fast = accelerate(steps["features"])
            Xo = _transform(parallel, fast, [norm[i] for i in other]) if len(other) else Xk[:0]
            X = sparse.vstack([Xk, Xo]).tocsr()[np.argsort(np.concatenate([labeled, other]))]
            # First pass on every labeled paragraph, and its out-of-fold copies (folds grouped by
            # article) that give every paragraph, labeled or not, its out-of-fold probabilities.
            splits = [
                (tr, ~np.isin(group, list(set(group[known][tr]))))
                for tr, _ in GroupKFold(n_splits=self.cv).split(Xk, yk, group[known])
            ]
            tasks = [delayed(_fit_classifier)(para, Xk, yk)]
            tasks += [delayed(_fold_proba)(classes, para, Xk[tr], yk[tr], X[held]) for tr, held in splits]
            fitted, *probas = parallel(tasks)
            paragraph.steps[-1] = ("classify", _unpickled(fitted))
            self.paragraph_model_ = paragraph
            self.classes_ = paragraph.classes_
            self.off_index_ = list(self.classes_).index("off_topic")
            P = np.zeros((len(flat), len(self.classes_)))
            for (_, held), proba in zip(splits, probas, strict=True):
                P[held] = proba

        Z = self._blocks(X, P, bounds)[known]
        self.context_clf_, oof = _fit_second(
            self.second_params(), Z, yk, group[known], self.decision_folds, self.decision != "none", n_jobs
        )
        self.decision_factors_, self.decision_scores_ = np.ones(len(self.classes_)), {}
        if self.decision != "none":
            self.decision_factors_, self.decision_scores_ = choose_factors(
                yk, oof, self.classes_, self.decision, self.decision_tolerance
            )
        return self

    # -- prediction -------------------------------------------------------------------------
    def _features(self, texts: list[str]):
        steps = self.paragraph_model_.named_steps
        return steps["features"].transform(steps["normalize"].transform(texts)).tocsr()

    def _first_pass(self, X):
        return self.paragraph_model_.named_steps["classify"].predict_proba(X)

    def predict_proba_articles(self, articles: list[list[str]]) -> list[np.ndarray]:
        """One probability matrix per article, columns in `classes_` order."""
        flat = [p for art in articles for p in art]
        bounds = article_bounds(articles)
        if not flat:
            return [np.zeros((0, len(self.classes_))) for _ in articles]
        X = self._features(flat)
        proba = self.context_clf_.predict_proba(self._blocks(X, self._first_pass(X), bounds))
        # Models saved before the decision rule existed have no factors and are left as they were.
        proba = apply_factors(proba, getattr(self, "decision_factors_", None))
        return [proba[bounds[i] : bounds[i + 1]] for i in range(len(articles))]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Each text scored as a one-paragraph article (the article score then comes from the paragraph alone)."""
        texts = list(texts)
        return (
            np.vstack(self.predict_proba_articles([[t] for t in texts])) if texts else np.zeros((0, len(self.classes_)))
        )

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]
