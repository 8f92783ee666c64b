"""Tagging new articles: inputs, scoring, engines (local processes, Spark), outputs and the HTML report.

`python -m pipeline tag` (pipeline/cli.py) runs `batch.run`; the DVC stage `tag_seeds` uses
`records` and `outputs` directly.
"""
