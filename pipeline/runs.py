"""Runs: the table of training runs, the diff of two runs, and the promotion rule, as pure functions.

A run here is a plain dict (`run_id`, `start_time` in ms, `name`, `params`, `metrics`, `tags`),
built from MLflow in pipeline/tracking.py, so nothing in this module talks to a tracking store.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline.config import LABELS
from pipeline.errors import RunsError  # noqa: F401 - its home is pipeline.errors; imported from here too

if TYPE_CHECKING:  # annotations only: the table and the diff work on plain dicts
    import numpy as np
    import pandas as pd

# Tags that tell which data a run saw: shown beside the params when they differ between runs.
DATA_TAGS = ("data_hash", "n_labels", "test_hash")
HEADLINE = ("macro_f1", "accuracy", "on_topic.precision", "on_topic.recall", "on_topic.f1")
TABLE_METRICS = ("macro_f1", "on_topic.f1", *(f"per_label.{lab}.f1" for lab in LABELS))
PREDICTIONS_ARTIFACT = "evaluation/predictions.csv"
CONFUSION_ARTIFACT = "evaluation/confusion.csv"
REF_COLUMNS = ["article_id", "paragraph", "hash"]
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


# -- naming a run ------------------------------------------------------------------------------


def run_name(exp_name: str, commit: str) -> str:
    """The run's name: the DVC experiment's, else `repro@<commit>` for a plain `dvc repro`."""
    if exp_name:
        return exp_name
    short = commit.split("-")[0][:7] if commit and commit != "unknown" else "nogit"
    return f"repro@{short}" + ("-dirty" if commit.endswith("-dirty") else "")


def prediction_refs(test: pd.DataFrame, pred: list[str], proba: np.ndarray) -> pd.DataFrame:
    """Which label each test paragraph got: references, gold, predicted, its probability; no text."""
    df = test[REF_COLUMNS].copy()
    df["gold"] = test.label.astype(str).to_numpy()
    df["predicted"] = [str(p) for p in pred]
    df["p_predicted"] = proba.max(axis=1).round(4) if len(df) else []
    return df.sort_values(["article_id", "paragraph"]).reset_index(drop=True)


def rows_hash(df, columns: list[str]) -> str:
    """Hash of the rows' `columns` as text, whatever the row order (16 hex digits)."""
    rows = df[columns[0]].astype(str)
    for col in columns[1:]:
        rows = rows + "\t" + df[col].astype(str)
    return hashlib.sha256("\n".join(sorted(rows)).encode("utf-8")).hexdigest()[:16]


def split_hash(refs) -> str:
    """Hash of the test split (references and gold labels), so two runs can tell they scored the same rows."""
    return rows_hash(refs, [*REF_COLUMNS, "gold"])


def unflatten(flat: dict) -> dict:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}`: MLflow's dotted metric names back to the metrics file's layout."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


# -- model references --------------------------------------------------------------------------


def parse_ref(text: str, model_name: str) -> dict:
    """What a command-line model reference names: a run, a registered version, or an alias.

    Accepted: a 32-hex run id, `runs:/ID[/path]`, a version number (`3` or `v3`), `@ALIAS`,
    `models:/NAME/VERSION`, `models:/NAME@ALIAS`.
    """
    s = text.strip()
    if RUN_ID.match(s):
        return {"kind": "run", "run_id": s}
    if s.startswith("runs:/"):
        run_id = s[len("runs:/") :].strip("/").split("/")[0]
        if RUN_ID.match(run_id):
            return {"kind": "run", "run_id": run_id}
    if re.fullmatch(r"v?\d+", s):
        return {"kind": "version", "name": model_name, "version": s.lstrip("v")}
    if re.fullmatch(r"@[\w.-]+", s):
        return {"kind": "alias", "name": model_name, "alias": s[1:]}
    m = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@([\w.-]+))", s)
    if m:
        name, version, alias = m.groups()
        return (
            {"kind": "version", "name": name, "version": version}
            if version
            else {"kind": "alias", "name": name, "alias": alias}
        )
    raise RunsError(
        f"{text!r} is not a run id (32 hex digits), a version number, @ALIAS, runs:/ID, "
        "models:/NAME/VERSION or models:/NAME@ALIAS"
    )


def model_uri(uri: str) -> str:
    """The URI of the logged model: `runs:/ID` alone points at the run, whose model is at `runs:/ID/model`."""
    m = re.fullmatch(r"runs:/([0-9a-f]{32})/?", uri.strip())
    return f"runs:/{m.group(1)}/model" if m else uri.strip()


_RUN_URI = re.compile(r"runs:/[0-9a-f]{32}(/[A-Za-z0-9_.-]+)*/?")
_REGISTRY_URI = re.compile(r"models:/[^/@:\s][^/@:]*(/[0-9]+|@[A-Za-z0-9_-]+)/?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def check_model_source(text: str) -> str:
    """'mlflow' for a run or registry URI of the configured tracking store, 'file' for a local path; RunsError otherwise.

    A model file runs code when it is loaded, so nothing is fetched from elsewhere: an http:,
    s3:, file: or other URI, or a runs:/ or models:/ URI naming another store (models://HOST/...).
    """
    text = str(text).strip()
    if _RUN_URI.fullmatch(text) or _REGISTRY_URI.fullmatch(text):
        return "mlflow"
    if text.startswith(("runs:", "models:")):
        raise RunsError(
            f"{text!r}: not a model of the configured tracking store; give runs:/RUN_ID, "
            "models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    if _SCHEME.match(text):
        raise RunsError(
            f"{text!r}: models are loaded only from a local file or the configured MLflow store "
            "(runs:/..., models:/...), never fetched from a URL (for a file whose name has a colon, write ./NAME)"
        )
    return "file"


def missing_alias(name: str, alias: str, has_versions: bool) -> str:
    """The one line for an alias no version has: which command creates it."""
    if not has_versions:
        return f"{name}: no registered version yet, so no @{alias}; `dvc repro` trains and registers one (the first becomes @champion)"
    return f"{name}: no version has the alias @{alias} yet; `python -m pipeline promote VERSION --alias {alias}` creates it"


# -- the table ---------------------------------------------------------------------------------


def order_by(sort: str | None, ascending: bool = False) -> list[str]:
    """MLflow `order_by` for a metric name (dots allowed), newest first as the tie-break."""
    if not sort:
        return ["attributes.start_time " + ("ASC" if ascending else "DESC")]
    key = sort.removeprefix("metrics.")
    if not re.fullmatch(r"[\w.\-/ ]+", key):
        raise RunsError(f"--sort {sort!r}: expected a metric name such as macro_f1 or per_label.statistics.f1")
    return [f"metrics.`{key}` " + ("ASC" if ascending else "DESC"), "attributes.start_time DESC"]


def varying(runs: list[dict], field: str, keys=None) -> list[str]:
    """The keys of `run[field]` whose values are not the same in every listed run (missing counts as a value)."""
    if len(runs) < 2:
        return []
    all_keys = sorted({k for r in runs for k in r[field]} if keys is None else set(keys))
    return [k for k in all_keys if len({r[field].get(k) for r in runs}) > 1]


def format_time(ms: int | None) -> str:
    """A run's start time (MLflow milliseconds) as local `YYYY-MM-DD HH:MM:SS`."""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


def run_table(runs: list[dict]) -> tuple[list[str], list[dict]]:
    """Columns and rows of the runs table: id, time, name, what differs between the runs, the F1 scores."""
    params = varying(runs, "params")
    tags = varying(runs, "tags", DATA_TAGS)
    columns = ["run_id", "start_time", "name", *params, *(f"tag.{t}" for t in tags), *TABLE_METRICS]
    rows = []
    for r in runs:
        row = {"run_id": r["run_id"], "start_time": format_time(r.get("start_time")), "name": r.get("name") or ""}
        row.update({k: r["params"].get(k) for k in params})
        row.update({f"tag.{t}": r["tags"].get(t) for t in tags})
        row.update({m: r["metrics"].get(m) for m in TABLE_METRICS})
        rows.append(row)
    return columns, rows


def short_header(column: str) -> str:
    """A narrower header for the text table (`per_label.statistics.f1` -> `statistics.f1`)."""
    return column.removeprefix("per_label.").removeprefix("tag.")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_rows(columns: list[str], rows: list[dict], fmt: str = "table") -> str:
    """The table as aligned text, CSV, or JSON (one object per run)."""
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise RunsError(f"unknown format {fmt!r}; expected table, csv or json")
    return aligned([short_header(c) for c in columns], [[_cell(row[c]) for c in columns] for row in rows])


def aligned(header: list[str], cells: list[list[str]]) -> str:
    """Text columns padded to their widest cell; numbers right-aligned."""
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]

    def line(row):
        parts = [c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+(\.\d+)?", text))


# -- comparing two runs ------------------------------------------------------------------------


def _delta(a, b):
    return None if a is None or b is None else round(b - a, 4)


def confusion(preds, labels=LABELS) -> list[list[int]]:
    """Counts of (gold row, predicted column) in the fixed label order."""
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for gold, pred in zip(preds["gold"], preds["predicted"], strict=True):
        if gold in index and pred in index:
            matrix[index[gold]][index[pred]] += 1
    return matrix


def changed_paragraphs(preds_a, preds_b) -> list[dict]:
    """Test paragraphs whose predicted label differs between the two runs, by reference."""
    both = preds_a.merge(preds_b[[*REF_COLUMNS, "predicted"]], on=REF_COLUMNS, how="inner", suffixes=("", "_b"))
    both = both[both.predicted != both.predicted_b]
    return [
        {
            "article_id": str(r.article_id),
            "paragraph": int(r.paragraph),
            "hash": str(r.hash),
            "gold": str(r.gold),
            "a": str(r.predicted),
            "b": str(r.predicted_b),
            "fixed": r.predicted_b == r.gold,
            "broken": r.predicted == r.gold,
        }
        for r in both.sort_values(["article_id", "paragraph"]).itertuples()
    ]


def same_split(a: dict, b: dict) -> bool | None:
    """Whether two runs were scored on the same test split; None when either run does not say."""
    ha, hb = a["tags"].get("test_hash"), b["tags"].get("test_hash")
    return None if not ha or not hb else ha == hb


def compare(a: dict, b: dict, preds_a=None, preds_b=None) -> dict:
    """Everything that differs between runs A and B: params, data, metrics, per-label scores, confusion, paragraphs.

    `preds_*` are the runs' prediction tables (gold, predicted, and references when logged), or None.
    """
    keys = sorted(set(a["params"]) | set(b["params"]))
    params = [{"key": k, "a": a["params"].get(k), "b": b["params"].get(k)} for k in keys]
    data = [{"key": t, "a": a["tags"].get(t), "b": b["tags"].get(t)} for t in (*DATA_TAGS, "git_commit")]
    metrics = [
        {
            "key": m,
            "a": a["metrics"].get(m),
            "b": b["metrics"].get(m),
            "delta": _delta(a["metrics"].get(m), b["metrics"].get(m)),
        }
        for m in HEADLINE
    ]
    per_label = []
    for lab in LABELS:
        row = {"label": lab}
        for stat in ("precision", "recall", "f1", "support"):
            va, vb = a["metrics"].get(f"per_label.{lab}.{stat}"), b["metrics"].get(f"per_label.{lab}.{stat}")
            row[stat] = {"a": va, "b": vb, "delta": _delta(va, vb)}
        per_label.append(row)
    split = same_split(a, b)
    out = {
        "a": _ident(a),
        "b": _ident(b),
        "same_test_split": split,
        "params": params,
        "data": data,
        "metrics": metrics,
        "per_label": per_label,
        "confusion": None,
        "changed": None,
        "notes": [],
    }
    have = preds_a is not None and preds_b is not None
    if have:
        ca, cb = confusion(preds_a), confusion(preds_b)
        out["confusion"] = {"labels": list(LABELS), "a": ca, "b": cb}
        if split:
            out["confusion"]["delta"] = [
                [y - x for x, y in zip(ra, rb, strict=True)] for ra, rb in zip(ca, cb, strict=True)
            ]
    else:
        out["notes"].append("a run has no logged predictions (evaluate did not run for it): no confusion matrix")
    if split is None:
        out["notes"].append("a run has no test_hash tag, so the test splits cannot be matched: no paragraph list")
    elif not split:
        out["notes"].append(
            "the runs were scored on different test splits: metric deltas compare different rows, "
            "and no paragraph list is given"
        )
    elif have and {*REF_COLUMNS} <= set(preds_a.columns) & set(preds_b.columns):
        out["changed"] = changed_paragraphs(preds_a, preds_b)
    elif have:
        out["notes"].append("a run's predictions carry no paragraph references: no paragraph list")
    return out


def _ident(run: dict) -> dict:
    return {"run_id": run["run_id"], "name": run.get("name") or "", "start_time": format_time(run.get("start_time"))}


def _num(value, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _int(value) -> str:
    return "-" if value is None else str(int(value))


def format_compare(diff: dict, all_params: bool = False) -> str:
    """The comparison as text a person reads in a terminal; only the params that differ unless `all_params`."""
    a, b = diff["a"], diff["b"]
    out = [f"A  {a['run_id']}  {a['name']}  {a['start_time']}", f"B  {b['run_id']}  {b['name']}  {b['start_time']}", ""]
    split = {True: "same", False: "DIFFERENT", None: "unknown"}[diff["same_test_split"]]
    out.append(f"test split: {split}")
    differ = [p for p in diff["params"] if p["a"] != p["b"]]
    shown = diff["params"] if all_params else differ
    same = len(diff["params"]) - len(differ)
    out += ["", f"params: {len(differ)} differ, {same} the same" + ("" if all_params else " (--all-params lists them)")]
    if shown:
        cells = [["*" if p["a"] != p["b"] else "", p["key"], _cell(p["a"]), _cell(p["b"])] for p in shown]
        out.append(_indent(aligned(["", "param", "A", "B"], sorted(cells, key=lambda c: c[0] != "*"))))
    out += ["", "data"]
    out.append(
        _indent(
            aligned(
                ["", "tag", "A", "B"],
                [["*" if d["a"] != d["b"] else "", d["key"], _cell(d["a"]), _cell(d["b"])] for d in diff["data"]],
            )
        )
    )
    out += ["", "metrics (delta = B - A)"]
    out.append(
        _indent(
            aligned(
                ["metric", "A", "B", "delta"],
                [[m["key"], _num(m["a"]), _num(m["b"]), _num(m["delta"], True)] for m in diff["metrics"]],
            )
        )
    )
    out += ["", "per label: precision / recall / F1 (delta = B - A)"]
    cells = []
    for row in diff["per_label"]:
        cells.append(
            [row["label"]]
            + [
                f"{_num(row[s]['a'])} -> {_num(row[s]['b'])} ({_num(row[s]['delta'], True)})"
                for s in ("precision", "recall", "f1")
            ]
            + [f"{_int(row['support']['a'])}/{_int(row['support']['b'])}"]
        )
    out.append(_indent(aligned(["label", "precision", "recall", "F1", "support A/B"], cells)))
    conf = diff["confusion"]
    if conf:
        for key, title in (
            ("a", "confusion A (rows gold, columns predicted)"),
            ("b", "confusion B"),
            ("delta", "confusion change B - A"),
        ):
            if key in conf:
                signed = key == "delta"
                out += ["", title]
                cells = [
                    [lab] + [f"{v:+d}" if signed and v else str(v) for v in row]
                    for lab, row in zip(conf["labels"], conf[key], strict=True)
                ]
                out.append(_indent(aligned(["gold \\ pred", *conf["labels"]], cells)))
    if diff["changed"] is not None:
        changed = diff["changed"]
        fixed, broken = sum(c["fixed"] for c in changed), sum(c["broken"] for c in changed)
        out += ["", f"test paragraphs that changed label: {len(changed)} ({fixed} now right, {broken} now wrong)"]
        if changed:
            cells = [
                [
                    c["article_id"],
                    str(c["paragraph"]),
                    c["gold"],
                    c["a"],
                    c["b"],
                    "fixed" if c["fixed"] else "broken" if c["broken"] else "",
                ]
                for c in changed
            ]
            out.append(_indent(aligned(["article", "para", "gold", "A", "B", ""], cells)))
    for note in diff["notes"]:
        out += ["", f"note: {note}"]
    return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# -- promotion ---------------------------------------------------------------------------------


def promotion(candidate: dict, champion: dict | None, alias: str, force: bool, name: str = "model") -> tuple[str, str]:
    """Decide a promotion of registered model `name`: ("promote" | "refuse" | "same", message).

    `candidate` and `champion` have `version`, `run_id`, `macro_f1` and `test_hash` (None when unknown).
    A lower macro-F1 than the champion's on the same test split is refused; so is a comparison that
    cannot be made (no metrics, or another test split), since then nothing shows the new model is not worse.
    """
    c = candidate
    if champion is None:
        return "promote", f"{name}@{alias} -> v{c['version']} (no version had @{alias} before)"
    if str(champion["version"]) == str(c["version"]):
        return "same", f"{name} v{c['version']} is already @{alias}"
    h = champion
    problem = None
    if c["macro_f1"] is None:
        problem = f"{name} v{c['version']} (run {c['run_id']}) has no macro_f1: run `evaluate` for it first"
    elif h["macro_f1"] is None:
        problem = None  # a champion that was never evaluated cannot block its replacement
    elif not c["test_hash"] or c["test_hash"] != h["test_hash"]:
        problem = (
            f"{name} v{c['version']} and the current @{alias} v{h['version']} were scored on different test "
            f"splits ({c['test_hash'] or 'unknown'} vs {h['test_hash'] or 'unknown'}): their macro-F1 "
            f"({c['macro_f1']:.4f} vs {h['macro_f1']:.4f}) cannot be compared"
        )
    elif c["macro_f1"] < h["macro_f1"]:
        problem = (
            f"{name} v{c['version']} has macro-F1 {c['macro_f1']:.4f}, lower than the current @{alias} "
            f"v{h['version']} ({h['macro_f1']:.4f}) on the same test split"
        )
    move = f"{name}@{alias}: v{h['version']} -> v{c['version']}"
    if problem and not force:
        return "refuse", f"refused: {problem}; use --force to promote anyway"
    if problem:
        return "promote", f"{move} (forced: {problem})"
    return "promote", f"{move} (macro-F1 {_num(h['macro_f1'])} -> {_num(c['macro_f1'])})"
