"""The project's known errors: each ends a command with its one-line message (exit code 2), never a traceback.

A light module on purpose: the CLI catches these without importing scikit-learn or MLflow.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of the errors the CLI reports as one line."""


class ParamsError(PipelineError):
    """The params file is missing, unreadable, or has a value of the wrong type or range."""


class LabelError(PipelineError):
    """Label rows that cannot be used; the message names each file and row."""


class CorpusError(PipelineError):
    """The corpus or an input file cannot be read; the message names the path (and line)."""


class ModelError(PipelineError):
    """A model file that is missing, corrupted, or does not match its recorded checksum."""


class RunsError(PipelineError):
    """A run, model version or alias that is not there, or a tracking store that cannot be read."""
