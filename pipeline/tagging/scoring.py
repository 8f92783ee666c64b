"""Scoring: a unit of work becomes paragraph records, article summaries and report sections, in input order.

Both engines call `tag_articles`: the local engine through `process` in its worker processes,
the Spark engine inside its pandas UDF, so the same input gives the same records. Every score
goes through `predict_articles`, so a context model that reads neighbouring paragraphs sees
whole articles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import LABELS
from pipeline.tagging.inputs import MAX_ARTICLE_MB, MB, Parsed, Unit, parse_unit
from pipeline.tagging.records import UNCERTAIN, article_summary, paragraph_records
from pipeline.text import Article, normalize, paragraphs


@dataclass(frozen=True)
class TagOptions:
    """Everything a worker needs besides the model: how to cut, label, encode and summarise."""

    model: str
    fmt: str = "jsonl"
    columns: tuple[str, ...] = ()
    rule: tuple[tuple[str, float], ...] = (("on_topic_min_share", 0.2), ("on_topic_min_paragraphs", 2))
    max_chars: int = 1000
    min_confidence: float = 0.0
    with_text: bool = True
    explain: int = 0
    paragraphs_mode: bool = False
    group_by: str | None = None
    report: bool = False
    max_bytes: int = int(MAX_ARTICLE_MB * MB)


def article_rule(tag: dict) -> tuple[tuple[str, float], ...]:
    """TagOptions.rule from params' `tag` section: when an article counts as on-topic."""
    return tuple((key, tag[key]) for key in ("on_topic_min_share", "on_topic_min_paragraphs"))


@dataclass
class UnitResult:
    """What a worker sends back for one unit: encoded paragraph rows, summaries, report sections, messages, counts."""

    payload: object = None
    summaries: list[dict] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_inputs: int = 0
    n_paragraphs: int = 0
    fatal: str = ""  # the model could not be loaded: nothing can be tagged
    path: str = ""  # the input file the unit came from
    ids: list[tuple[str, str]] = field(default_factory=list)  # (id, where) of its records, to warn of repeated ids
    digest: str = ""  # a hash of what the unit read, for --resume (inputs.unit_digest)


def unit_result(unit: Unit, parsed: Parsed) -> UnitResult:
    """A unit's result before tagging: its messages, counts, and the ids of its records (files have none to repeat)."""
    records = unit.kind in ("jsonl", "rows")
    return UnitResult(
        errors=parsed.errors,
        warnings=parsed.warnings,
        n_inputs=parsed.n_inputs,
        path=unit.path,
        ids=[(a.id, w) for a, w in zip(parsed.articles, parsed.wheres, strict=True)] if records else [],
        digest=parsed.digest,
    )


def load_scorer(model: str, meta_file: Path | None = None, estimator: bool = False, compiled: bool = True) -> Scorer:
    """A Scorer for a model file or an MLflow URI of the configured store (`runs:/...`, `models:/NAME@ALIAS`).

    Either way the file is sha256-checked and unpickled with the trusted-type loader (`modelfile.load`).
    The file's compiled tables alone are loaded (scikit-learn is not even imported) unless the
    scikit-learn model is needed: `estimator` (--explain reads its weights), `compiled=False` (the
    reference path), or a model the compiled path cannot reproduce.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pipeline import modelfile
    from pipeline.runs import check_model_source

    want = estimator or not compiled
    if check_model_source(model) == "mlflow":
        import tempfile

        from pipeline.tagging.compiled import CompiledModel
        from pipeline.tracking import download_model  # MLflow is slow to import; only for URIs

        with tempfile.TemporaryDirectory() as tmp:
            path, meta_file, _ = download_model(model, Path(tmp))
            est, tables, _ = modelfile.load(path, meta_file, model=want)
    else:
        with ThreadPoolExecutor(1) as pool:
            # zlib lets go of the GIL: the file is decompressed while numba is imported (0.2 s each)
            loading = pool.submit(modelfile.load, Path(model), meta_file, model=want)
            from pipeline.tagging.compiled import CompiledModel, warm_up

            if compiled:
                warm_up()
            est, tables, _ = loading.result()
    if est is not None:
        from pipeline.fastvec import accelerate

        est = accelerate(est)  # its TF-IDF counting swapped for the exact fast one
    if not compiled:
        return Scorer(est, compiled=False)
    return Scorer(est, compiled=CompiledModel(tables) if tables is not None else True)


def model_sha256(model: str) -> str | None:
    """The sha256 of the model file a --model names (an MLflow URI is looked up in its store), None when there is none.

    A resumed run must use the very model of the interrupted one: an alias may have moved, a file been replaced.
    """
    from pipeline.modelfile import read_meta, sha256_file
    from pipeline.runs import check_model_source

    if check_model_source(model) == "mlflow":
        import tempfile

        from pipeline.tracking import download_model

        with tempfile.TemporaryDirectory() as tmp:
            model_path, meta_file, _ = download_model(model, Path(tmp))
            return read_meta(model_path, meta_file)["sha256"]
    try:
        return sha256_file(Path(model))
    except OSError:
        return None


class Scorer:
    """A model with a cache: a paragraph (or, for a context model, a whole article) already scored in this process is not scored again."""

    def __init__(self, model=None, cache_size: int = 200_000, compiled=True):
        """`model`: the scikit-learn model, None when only the compiled tables were loaded; `compiled`: a
        CompiledModel, True to compile `model` here (when this path can), False for the scikit-learn path."""
        if compiled is True:
            from pipeline.tagging.compiled import compile_model

            compiled = compile_model(model)
        self.model = model  # the scikit-learn path: --explain reads its weights, and it scores what `compiled` cannot
        self.compiled = compiled or None
        source = model if model is not None else compiled
        self.classes = [str(c) for c in source.classes_]
        # A context model's probabilities depend on the neighbours, so it caches whole articles.
        self.by_article = hasattr(model, "predict_proba_articles") if model is not None else compiled.context
        self.cache: dict = {}
        self.cache_size = cache_size

    def _predict(self, articles: list[list[str]], normalized: bool) -> list[np.ndarray]:
        """predict_articles through the compiled model when there is one (the same probabilities), else scikit-learn."""
        if self.compiled is not None:
            return self.compiled.predict_proba_articles(articles, normalized)
        from pipeline.model import predict_articles

        return predict_articles(self.model, articles)

    def _scores(self, keys: list[bytes], items: list, score) -> dict:
        """Rows by key: cached ones looked up, the others scored by `score(new_items)` and remembered."""
        found = {k: self.cache[k] for k in keys if k in self.cache}
        new = [(k, item) for k, item in zip(keys, items, strict=True) if k not in found]
        if new:
            rows = score([item for _, item in new])
            found.update(zip((k for k, _ in new), rows, strict=True))
            if len(self.cache) + len(new) > self.cache_size:
                self.cache.clear()  # bounded memory; repeats later in the run fill it again
            self.cache.update(zip((k for k, _ in new), rows, strict=True))
        return found

    def probabilities(self, articles: list[list[str]], normalized: bool = False) -> list[np.ndarray]:
        """One probability matrix (paragraphs x classes) per article, scoring only what the cache lacks.

        `normalized` says every paragraph is normalize()d already (as `cut` returns them): the model's
        first step would leave them as they are, so the compiled model skips it.
        """
        if self.by_article:
            keys = [_digest("\n".join(a)) for a in articles]  # paragraphs never contain a newline
            unique = dict(zip(keys, articles, strict=True))
            found = self._scores(list(unique), list(unique.values()), lambda new: self._predict(new, normalized))
            return [found[k] for k in keys]
        # A paragraph model reads paragraphs alone: the distinct new ones are scored as one batch.
        keys = [[_digest(p) for p in a] for a in articles]
        unique = {k: p for ks, a in zip(keys, articles, strict=True) for k, p in zip(ks, a, strict=True)}
        found = self._scores(list(unique), list(unique.values()), lambda new: self._predict([new], normalized)[0])
        empty = np.zeros((0, len(self.classes)))
        return [np.array([found[k] for k in ks]) if ks else empty for ks in keys]


# What article_summary reads of a paragraph record: its label.
LABELED = {lab: {"label": lab} for lab in (*LABELS, UNCERTAIN)}


def _digest(text: str) -> bytes:
    """A 128-bit key for a text: the cache holds keys, not the texts themselves."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def cut(article: Article, options: TagOptions) -> list[str]:
    """The paragraphs of an article; with --paragraphs the record is one paragraph, normalised, never re-split."""
    if options.paragraphs_mode:
        return [normalize(article.text)]
    return paragraphs(article.text, options.max_chars)


def grouped_probabilities(scorer: Scorer, records: list[Article], paras: list[list[str]], field: str) -> list:
    """Paragraph records that share `field` scored together as one article, in `paragraph` order; one row per record."""
    from pipeline.model import group_rows

    def key(value):
        return value if value is None or isinstance(value, str | int | float) else repr(value)

    ids = [key(r.extra.get(field)) for r in records]
    positions = [
        r.extra.get("paragraph") if isinstance(r.extra.get("paragraph"), int | float) else None for r in records
    ]
    groups = group_rows(ids, positions)
    probas = scorer.probabilities([[paras[i][0] for i in g] for g in groups], normalized=True)
    out = [None] * len(records)
    for g, proba in zip(groups, probas, strict=True):
        for k, i in enumerate(g):
            out[i] = proba[k : k + 1]
    return out


def score_articles(scorer: Scorer, articles: list[Article], options: TagOptions) -> tuple[list, list]:
    """(the paragraphs of each article, their probability matrices); --group-by scores records of one article together."""
    paras = [cut(a, options) for a in articles]  # cut() returns normalised paragraphs
    if options.group_by:
        return paras, grouped_probabilities(scorer, articles, paras, options.group_by)
    return paras, scorer.probabilities(paras, normalized=True)


def tag_articles(scorer: Scorer, articles: list[Article], options: TagOptions, scored=None) -> list[list[dict]]:
    """Paragraph records of each article (with the top n-grams under --explain); `scored` is score_articles' result if known."""
    paras, probas = scored or score_articles(scorer, articles, options)
    out = [
        paragraph_records(a, p, pr, scorer.classes, options.min_confidence, options.with_text, options.paragraphs_mode)
        for a, p, pr in zip(articles, paras, probas, strict=True)
    ]
    if options.explain:
        from pipeline.model import top_terms

        flat = [(rec, text) for recs, ps in zip(out, paras, strict=True) for rec, text in zip(recs, ps, strict=True)]
        if flat:
            terms = top_terms(scorer.model, [t for _, t in flat], [r["predicted"] for r, _ in flat], options.explain)
            for (rec, _), t in zip(flat, terms, strict=True):
                rec["terms"] = [[term, weight] for term, weight in t]
    return out


def fast_lines(scorer: Scorer, articles: list[Article], scored, options: TagOptions):
    """(every paragraph's JSON line, ending in a newline; each article's summary), written straight from the
    probabilities (`fastjson`: the same text as the records'), or None where the records are needed."""
    if options.fmt != "jsonl" or options.explain or options.report or options.paragraphs_mode:
        return None
    from pipeline.tagging.fastjson import line_list

    found = line_list(articles, *scored, scorer.classes, options.min_confidence, options.with_text)
    if found is None:
        return None
    lines, labels = found
    rule = dict(options.rule)
    return lines, [
        article_summary(a, [LABELED[lab] for lab in labs], rule) for a, labs in zip(articles, labels, strict=True)
    ]


def process(scorer: Scorer, unit: Unit, options: TagOptions) -> UnitResult:
    """Parse, tag and encode one unit of work."""
    from pipeline.tagging.outputs import encode
    from pipeline.tagging.report import article_section

    parsed = parse_unit(unit, options.paragraphs_mode, options.max_bytes)
    result = unit_result(unit, parsed)
    scored = score_articles(scorer, parsed.articles, options)
    fast = fast_lines(scorer, parsed.articles, scored, options)
    if fast is not None:  # the usual case
        lines, result.summaries = fast
        result.payload, result.n_paragraphs = "".join(lines).encode("utf-8"), len(lines)
        return result
    rule = dict(options.rule)
    per_article = tag_articles(scorer, parsed.articles, options, scored)
    result.summaries = [article_summary(a, recs, rule) for a, recs in zip(parsed.articles, per_article, strict=True)]
    records = [r for recs in per_article for r in recs]
    result.n_paragraphs = len(records)
    result.payload = encode(records, options.fmt, list(options.columns))
    if options.report:
        result.report = [article_section(s, recs) for s, recs in zip(result.summaries, per_article, strict=True)]
    return result
