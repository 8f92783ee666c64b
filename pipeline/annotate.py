"""Annotation batches: whole articles written out for people to read and label, and their answers read back.

A batch is a readable text file (articles keyed A1, A2 ..., paragraphs numbered) plus a JSON
manifest that maps each key to the article id and the hashes of its paragraphs. An annotator
writes one line per paragraph, `KEY INDEX CODE`, with CODE one of C, V, S, O.
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
from pathlib import Path

from pipeline.text import Article, json_line, paragraph_hash, paragraphs

CODES = {"C": "cooperation", "V": "victim_support", "S": "statistics", "O": "off_topic"}


def plan_batches(articles: list[Article], max_paragraphs: int, seed: int, max_chars: int = 1000) -> list[list[Article]]:
    """Shuffle whole articles (seeded) and pack them into batches of about `max_paragraphs` paragraphs."""
    order = sorted(articles, key=lambda a: a.id)
    random.Random(seed).shuffle(order)
    batches: list[list[Article]] = [[]]
    size = 0
    for art in order:
        n = len(paragraphs(art.text, max_chars))
        if batches[-1] and size + n > max_paragraphs:
            batches.append([])
            size = 0
        batches[-1].append(art)
        size += n
    return [b for b in batches if b]


def render_batch(name: str, articles: list[Article], max_chars: int = 1000) -> tuple[str, dict]:
    """Return the readable batch text and its manifest."""
    lines = [
        f"# batch {name}: {len(articles)} articles. Answer file: {name}.labels.txt, one line per paragraph: KEY INDEX CODE"
    ]
    manifest = {"batch": name, "articles": {}}
    for i, art in enumerate(articles, 1):
        key = f"A{i}"
        paras = paragraphs(art.text, max_chars)  # as import-batch cuts them, so the hashes match
        manifest["articles"][key] = {"id": art.id, "hashes": [paragraph_hash(p) for p in paras]}
        lines.append("")
        lines.append(f"## {key}  ({art.id}, {len(paras)} paragraphs)")
        lines.extend(f"{key} {j}\t{p}" for j, p in enumerate(paras))
    return "\n".join(lines) + "\n", manifest


def write_batches(out_dir: Path, prefix: str, batches: list[list[Article]], max_chars: int = 1000) -> list[Path]:
    """Write each batch as NAME.txt and NAME.manifest.json into `out_dir`."""
    from pipeline.files import atomic_open

    paths = []
    for k, arts in enumerate(batches):
        name = f"{prefix}{k:03d}"
        text, manifest = render_batch(name, arts, max_chars)
        with atomic_open(out_dir / f"{name}.manifest.json") as f:
            f.write(json.dumps(manifest, indent=1).encode("utf-8"))
        with atomic_open(out_dir / f"{name}.txt") as f:
            f.write(text.encode("utf-8"))
        paths.append(out_dir / f"{name}.txt")
    return paths


def make_batches(
    files: tuple[str, ...],
    max_paragraphs: int,
    seed: int,
    count: int | None,
    prefix: str,
    out_dir: Path,
    params_path: Path,
) -> int:
    """`label batches`: whole articles of the corpus files, shuffled and packed into batches for annotators."""
    from pipeline.text import read_corpus

    corpus_dir, max_chars = _params(params_path)
    batches = plan_batches(list(read_corpus(corpus_dir, files)), max_paragraphs, seed, max_chars)[:count]
    paths = write_batches(out_dir, prefix, batches, max_chars)
    n = sum(len(b) for b in batches)
    print(
        f"batches: {len(paths)} batches of {n} articles -> {out_dir} "
        f"(answer each in NAME.labels.txt, then `label import-batch`)"
    )
    return 0


_ANSWER = re.compile(r"^\s*(A\d+)\s+(\d+)\s+([CVSOcvso])\s*$")


def read_answers(answer_path: Path, manifest: dict) -> tuple[list[dict], list[str]]:
    """Parse an answer file against its manifest; return (label rows, problems with line numbers).

    Every paragraph of the batch must be answered exactly once; anything else is a problem,
    and the valid rows are still returned.
    """
    rows, problems, seen = [], [], {}
    arts = manifest["articles"]
    for lineno, line in enumerate(answer_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ANSWER.match(line)
        if not m:
            problems.append(f"{answer_path}:{lineno}: not 'KEY INDEX CODE': {line[:60]!r}")
            continue
        key, idx, code = m.group(1), int(m.group(2)), CODES[m.group(3).upper()]
        if key not in arts or idx >= len(arts[key]["hashes"]):
            problems.append(f"{answer_path}:{lineno}: no paragraph {key} {idx} in this batch")
            continue
        if (key, idx) in seen:
            if seen[(key, idx)] != code:
                problems.append(f"{answer_path}:{lineno}: {key} {idx} answered twice, differently")
            continue
        seen[(key, idx)] = code
        rows.append({"article_id": arts[key]["id"], "paragraph": idx, "hash": arts[key]["hashes"][idx], "label": code})
    missing = [f"{k} {i}" for k, a in arts.items() for i in range(len(a["hashes"])) if (k, i) not in seen]
    if missing:
        problems.append(f"{answer_path}: {len(missing)} paragraph(s) not answered, first: {', '.join(missing[:5])}")
    return rows, problems


# Whole-article terms that put an article in scope; a `general` article with none of them is a
# safe source of off_topic candidates.
TOPIC_TERMS = re.compile(
    r"mua bán người|buôn người|buôn bán người|buôn bán phụ nữ|buôn bán trẻ em|bán người|bị bán|"
    r"di cư|nhập cư|xuất cảnh trái phép|nhập cảnh trái phép|vượt biên|xuất cảnh|nhập cảnh|"
    r"lao động cưỡng bức|nô lệ|cưỡng bức|nạn nhân|mại dâm|đưa người|tị nạn|xuất khẩu lao động|"
    r"bào thai|trafficking|smuggl"
)
MINE_RULE = "rule:general_no_topic_terms"


def _params(params_path: Path) -> tuple[str, int]:
    from pipeline.config import load_params, section

    params = load_params(params_path)
    return section(params, "corpus")["dir"], section(params, "text")["max_paragraph_chars"]


def import_batches(answer_files: list[Path], annotator: str, into: Path, params_path: Path) -> int:
    """Validate answer files against their manifests and the corpus, and merge them into a label file.

    Problems are printed with file and line; valid rows are kept; a second import of the same
    file adds nothing. Returns 1 when anything was reported, else 0.
    """
    from pipeline.labels import Label

    corpus_dir, max_chars = _params(params_path)
    new, problems = [], []
    for path in answer_files:
        manifest_file = path.with_name(path.name.replace(".labels.txt", ".manifest.json"))
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{manifest_file}: cannot read the batch manifest ({e})")
            continue
        rows, bad = read_answers(path, manifest)
        problems += bad
        new += [
            Label(
                r["article_id"],
                r["paragraph"],
                r["hash"],
                r["label"],
                "manual",
                annotator,
                f"{path}:{manifest['batch']}",
            )
            for r in rows
        ]
    return merge_checked(new, into, corpus_dir, max_chars, problems)


def mine_negatives(n: int, per_article: int, seed: int, into: Path, params_path: Path) -> int:
    """Write up to `n` off_topic candidates from `general` articles that mention no topic term."""
    from pipeline.labels import Label, write_label_file
    from pipeline.text import normalize, read_corpus

    corpus_dir, max_chars = _params(params_path)
    rng = random.Random(seed)
    pool = []
    for art in read_corpus(corpus_dir, ("general",)):
        if TOPIC_TERMS.search(normalize(art.text).lower()):
            continue
        paras = paragraphs(art.text, max_chars)
        for i in sorted(rng.sample(range(len(paras)), min(per_article, len(paras)))):
            pool.append(Label(art.id, i, paragraph_hash(paras[i]), "off_topic", MINE_RULE))
    rng.shuffle(pool)
    write_label_file(into, pool[:n])
    print(f"mine: {min(n, len(pool))} {MINE_RULE} candidates (of {len(pool)}) -> {into}")
    return 0


def stats(params_path: Path, labels_dir: Path = Path("data/labels")) -> int:
    """Print label counts per file, method, label and annotator, and agreement on double-labeled paragraphs."""
    from collections import Counter

    from sklearn.metrics import cohen_kappa_score

    from pipeline.config import LABELS
    from pipeline.labels import read_label_file

    main_labels = []
    for path in sorted(labels_dir.glob("*.csv")):
        labs, _ = read_label_file(path)
        main_labels += labs
        print(f"{path}: {len(labs)} rows")
    by = Counter((lab.method, lab.label) for lab in main_labels)
    for (method, label), k in sorted(by.items()):
        print(f"  {method:32s} {label:15s} {k:6d}")
    prefixes = Counter(lab.article_id.split("/")[0] for lab in main_labels if lab.method == "manual")
    print("manual labels by source:", dict(prefixes))
    print("manual labels by annotator:", dict(Counter(lab.annotator for lab in main_labels if lab.method == "manual")))
    second = labels_dir / "agreement" / "second_pass.csv"
    if second.exists():
        other = {lab.key: lab.label for lab in read_label_file(second)[0]}
        first = {lab.key: lab.label for lab in main_labels if lab.key in other}
        # Agreement is between the two independent passes, before disagreements were adjudicated.
        adjudicated = labels_dir / "agreement" / "adjudication.csv"
        if adjudicated.exists():
            with open(adjudicated, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    first[(row["article_id"], int(row["paragraph"]))] = row["first"]
        keys = sorted(first)
        a, b = [first[k] for k in keys], [other[k] for k in keys]
        agree = sum(x == y for x, y in zip(a, b, strict=True))
        print(
            f"agreement on {len(keys)} double-labeled paragraphs: {agree / len(keys):.1%} identical, Cohen's kappa {cohen_kappa_score(a, b):.3f}"
        )
        for lab in LABELS:
            ka = cohen_kappa_score([x == lab for x in a], [x == lab for x in b])
            print(f"  {lab:15s} kappa {ka:.3f} (first {a.count(lab)}, second {b.count(lab)})")
    return 0


def near_duplicate_key(text: str) -> str:
    """Text reduced to lower-case syllables with digits masked: equal keys are exact or near duplicates."""
    from pipeline.text import syllables

    return " ".join(re.sub(r"\d", "0", s) for s in syllables(text))


def margins(proba) -> list[float]:
    """Top probability minus the runner-up: small means the model is unsure."""
    import numpy as np

    top2 = np.sort(proba, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]).tolist()


def pick_uncertain(candidates: list[dict], n: int, per_article: int) -> list[dict]:
    """The `n` least certain candidates, at most `per_article` from one article, sources taken in turn, no duplicates."""
    by_source: dict[str, list[dict]] = {}
    for c in sorted(candidates, key=lambda c: (c["margin"], c["article_id"], c["paragraph"])):
        by_source.setdefault(c["source"], []).append(c)
    chosen, seen_keys, per = [], set(), {}
    queues = [iter(v) for _, v in sorted(by_source.items())]
    while len(chosen) < n and queues:
        for q in list(queues):
            for c in q:
                key = near_duplicate_key(c["text"])
                if key in seen_keys or per.get(c["article_id"], 0) >= per_article:
                    continue
                seen_keys.add(key)
                per[c["article_id"]] = per.get(c["article_id"], 0) + 1
                chosen.append(c)
                break
            else:
                queues.remove(q)
            if len(chosen) >= n:
                break
    return chosen


def queue(n: int, pool: int, per_article: int, seed: int, model_path: Path, out: Path, params_path: Path) -> int:
    """Write the next `n` paragraphs worth labeling: unlabeled corpus articles where the model is least sure."""
    from pipeline.labels import read_label_file
    from pipeline.model import load_model, predict_articles
    from pipeline.text import read_corpus

    corpus_dir, max_chars = _params(params_path)
    labeled = {
        lab.article_id
        for f in Path("data/labels").glob("*.csv")
        for lab in read_label_file(f)[0]
        if lab.method == "manual"
    }
    arts = [a for a in read_corpus(corpus_dir, ("trafficking", "related", "general")) if a.id not in labeled]
    rng = random.Random(seed)
    arts = rng.sample(arts, min(pool, len(arts)))
    paras = [paragraphs(a.text, max_chars) for a in arts]
    model, _ = load_model(model_path)
    candidates = []
    for art, ps, proba in zip(arts, paras, predict_articles(model, paras), strict=True):
        for i, (text, m) in enumerate(zip(ps, margins(proba) if len(ps) else [], strict=True)):
            candidates.append(
                {
                    "article_id": art.id,
                    "paragraph": i,
                    "hash": paragraph_hash(text),
                    "source": art.path,
                    "margin": round(m, 4),
                    "text": text,
                }
            )
    chosen = pick_uncertain(candidates, n, per_article)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for c in chosen:
            f.write(json.dumps({k: v for k, v in c.items() if k != "text"}, ensure_ascii=False) + "\n")
    print(
        f"queue: {len(chosen)} paragraphs from {len({c['article_id'] for c in chosen})} articles "
        f"(of {len(candidates)} scored in {len(arts)} unlabeled articles) -> {out}"
    )
    return 0


def export(queue_file: Path, out: Path, params_path: Path) -> int:
    """Write a queued batch for annotators, with each paragraph's text and its neighbours as context (JSONL or CSV)."""
    import pandas as pd

    from pipeline.files import atomic_open
    from pipeline.labels import safe_cell
    from pipeline.text import read_corpus

    corpus_dir, max_chars = _params(params_path)
    rows = [json.loads(line) for line in queue_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    wanted = {r["article_id"] for r in rows}
    paras = {
        a.id: paragraphs(a.text, max_chars)
        for a in read_corpus(corpus_dir, ("trafficking", "related", "general", "seeds"))
        if a.id in wanted
    }
    out_rows = []
    for r in rows:
        ps, i = paras[r["article_id"]], r["paragraph"]
        out_rows.append(
            {
                "article_id": r["article_id"],
                "paragraph": i,
                "hash": r["hash"],
                "label": "",
                "annotator": "",
                "previous": ps[i - 1] if i > 0 else "",
                "text": ps[i],
                "next": ps[i + 1] if i + 1 < len(ps) else "",
            }
        )
    if out.suffix == ".csv":
        # Text opened in a spreadsheet: a cell starting with = + - @ would run as a formula.
        cells = [{k: safe_cell(v) if isinstance(v, str) else v for k, v in r.items()} for r in out_rows]
        data = pd.DataFrame(cells).to_csv(index=False).encode("utf-8")
    else:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows).encode("utf-8")
    with atomic_open(out) as f:
        f.write(data)
    print(
        f"export: {len(out_rows)} paragraphs with context -> {out} (fill in `label` and `annotator`, then `label import`)"
    )
    return 0


def read_batch_rows(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """Rows of a labeled batch (JSONL or CSV) with their line numbers; malformed lines are problems."""
    rows, problems = [], []
    try:
        if path.suffix == ".csv":
            with open(path, encoding="utf-8-sig", newline="") as f:  # Excel's "CSV UTF-8" starts with a BOM
                rows = [(n, dict(r)) for n, r in enumerate(csv.DictReader(f), 2)]
        else:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json_line(line)
                except ValueError as e:
                    problems.append(f"{path}:{n}: {e}")
                    continue
                if not isinstance(rec, dict):
                    problems.append(f"{path}:{n}: expected a JSON object")
                    continue
                rows.append((n, {k: "" if v is None else str(v) for k, v in rec.items()}))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        problems.append(f"{path}: cannot be read ({e})")
    return rows, problems


def import_file(path: Path, annotator: str, into: Path, params_path: Path) -> int:
    """Validate a labeled batch (JSONL or CSV: article_id, paragraph, hash, label) and merge it into the label set.

    Unknown labels, stale hashes, conflicts and malformed lines are reported with their line
    numbers; valid rows are kept; importing the same batch again changes nothing.
    """
    from pipeline.labels import parse_rows

    corpus_dir, max_chars = _params(params_path)
    numbered, problems = read_batch_rows(path)
    labels = []
    for n, row in numbered:
        if not (row.get("label") or "").strip():
            problems.append(f"{path}:{n}: no label given")
            continue
        row = {**row, "method": "manual", "annotator": row.get("annotator") or annotator}
        good, bad = parse_rows([row], str(path), first_row=n)
        labels += good
        problems += bad
    return merge_checked(labels, into, corpus_dir, max_chars, problems)


def merge_checked(new: list, into: Path, corpus_dir: str, max_chars: int, problems: list[str]) -> int:
    """Merge the labels that still match the corpus into `into`; print every problem; 1 if there were any.

    A stale or conflicting row is reported and left out; the file is rewritten only when rows were added.
    """
    from pipeline.labels import (
        article_paragraphs,
        batch_conflicts,
        merge_into,
        raise_if,
        read_label_file,
        stale,
        write_label_file,
    )
    from pipeline.text import read_corpus

    existing, bad = read_label_file(into) if into.exists() else ([], [])
    if bad:  # rewriting the file would drop those rows: it is fixed by hand first
        raise_if(bad, f"{into} (fix them first; nothing was imported)")
    new, clashes = batch_conflicts(new)
    problems += clashes
    paras = article_paragraphs(read_corpus(corpus_dir), {lab.article_id for lab in new}, max_chars)
    current = []
    for lab in new:
        why = stale(lab, paras)
        problems += [why] if why else []
        current += [] if why else [lab]
    merged, added, conflicts = merge_into(existing, current)
    problems += conflicts
    if added:
        write_label_file(into, merged)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"import: {added} label(s) added to {into} ({len(merged)} in all), {len(problems)} problem(s)")
    return 1 if problems else 0
