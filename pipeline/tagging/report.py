"""The HTML report: one self-contained page, the summary table at the top, then each article's paragraphs coloured by label.

Workers render each article's section; the main process appends sections and table rows to
part files in the run's work folder and joins them at the end, so a large run does not hold the
page in memory, and an interrupted run can be resumed.
"""

from __future__ import annotations

import shutil
from html import escape

from pipeline.config import LABELS
from pipeline.files import Staged, discard_on_error
from pipeline.tagging.outputs import PartFile
from pipeline.tagging.records import UNCERTAIN

COLOURS = {
    "cooperation": "#cfe3ff",
    "victim_support": "#d6f5d6",
    "statistics": "#ffe9b8",
    "off_topic": "#f2f2f2",
    UNCERTAIN: "#f7d4e4",
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; line-height: 1.45; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
td:first-child { word-break: break-all; }  /* long ids and paths wrap inside the page */
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.legend span, p.para { border-radius: 4px; padding: 0.15em 0.4em; }
p.para { margin: 0.3em 0; }
.terms { color: #555; font-size: 0.85em; }
section { border-top: 2px solid #bbb; margin-top: 2em; }
.on { font-weight: bold; color: #0a5; }
""" + "".join(f".l-{lab} {{ background: {c}; }}\n" for lab, c in COLOURS.items())


def _tooltip(rec: dict) -> str:
    probs = " · ".join(f"{lab} {p:.2f}" for lab, p in rec["probabilities"].items())
    return f"{rec['label']} ({rec['probability']:.2f}) — {probs}"


def article_section(summary: dict, records: list[dict]) -> str:
    """One article: its heading and summary line, then its paragraphs coloured by label, probabilities on hover."""
    aid = escape(str(summary["article_id"]))
    title = (summary.get("fields") or {}).get("title")
    head = f'<h2 id="a-{aid}">{escape(str(title)) if title else aid}</h2>'
    meta = f"<p>{aid} · {escape(summary['source_path'])} · {summary['paragraphs']} paragraphs, "
    meta += f"{summary['on_topic_share']:.0%} on-topic{' · <span class=on>on-topic article</span>' if summary['on_topic'] else ''}</p>"
    paras = []
    for rec in records:
        terms = rec.get("terms")
        extra = f" <span class=terms>[{escape(', '.join(t for t, _ in terms))}]</span>" if terms else ""
        text = escape(rec.get("text", f"paragraph {rec['paragraph']}"))
        paras.append(f'<p class="para l-{rec["label"]}" title="{escape(_tooltip(rec))}">{text}{extra}</p>')
    return f"<section>{head}{meta}{''.join(paras)}</section>\n"


def table_row(summary: dict) -> str:
    """One row of the summary table, linking to the article's section."""
    aid = escape(str(summary["article_id"]))
    counts = "".join(f"<td>{summary['counts'].get(lab, 0)}</td>" for lab in (*LABELS, UNCERTAIN))
    flag = "<span class=on>yes</span>" if summary["on_topic"] else ""
    return (
        f'<tr><td><a href="#a-{aid}">{aid}</a></td><td>{summary["paragraphs"]}</td>{counts}'
        f"<td>{summary['on_topic_share']:.0%}</td><td>{flag}</td></tr>\n"
    )


class ReportWriter:
    """Appends table rows and article sections to two part files; `finish` writes the page atomically."""

    def __init__(self, path: str, title: str, rows: PartFile, sections: PartFile, n_articles=0, n_on_topic=0):
        self.path, self.title = path, title
        self.rows, self.sections = rows, sections
        self.n_articles, self.n_on_topic = n_articles, n_on_topic  # carried over when a run resumes

    def add(self, summaries: list[dict], sections: list[str]) -> None:
        """Append the articles of one unit, in order."""
        self.rows.write("".join(table_row(s) for s in summaries).encode("utf-8"))
        self.sections.write("".join(sections).encode("utf-8"))
        self.n_articles += len(summaries)
        self.n_on_topic += sum(bool(s["on_topic"]) for s in summaries)

    def finish(self) -> Staged:
        """Build the whole page beside its path (legend, summary table, then every article); `commit()` puts it in place."""
        legend = " ".join(f"<span class=l-{lab}>{lab}</span>" for lab in COLOURS)
        columns = ("article", "paragraphs", *LABELS, UNCERTAIN, "on-topic share", "on-topic")
        header = "".join(f"<th>{h}</th>" for h in columns)
        head = (
            f'<!DOCTYPE html>\n<html lang="vi"><head><meta charset="utf-8"><title>{escape(self.title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n<h1>{escape(self.title)}</h1>\n"
            f"<p>{self.n_articles} articles, {self.n_on_topic} on-topic. Hover a paragraph for its probabilities.</p>\n"
            f"<p class=legend>{legend}</p>\n<table><tr>{header}</tr>\n"
        )
        self.close()
        staged = Staged(self.path)
        with discard_on_error(staged) as f:
            f.write(head.encode("utf-8"))
            for part, closing in ((self.rows, "</table>\n"), (self.sections, "</body></html>\n")):
                with open(part.path, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
                f.write(closing.encode("utf-8"))
        return staged

    def sizes(self) -> tuple[int, int]:
        """Bytes of table rows and of sections so far, for the checkpoint."""
        return self.rows.size(), self.sections.size()

    def close(self) -> None:
        """Close the part files (they stay in the work folder)."""
        self.rows.close()
        self.sections.close()
