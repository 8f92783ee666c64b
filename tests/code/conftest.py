"""The code tier runs on text and fixtures written for the tests: no corpus beside the project, no model trained on its labels."""

import pytest

_REAL_DATA = ("corpus_dir", "labels", "small_corpus", "trained_model", "model_file")


def _refused(name: str):
    @pytest.fixture(name=name)
    def fixture():
        raise AssertionError(
            f"tests/code does not use `{name}` (real corpus or a model trained on the labels): "
            "such a test belongs in tests/model or with the slow tests"
        )

    return fixture


for _name in _REAL_DATA:
    globals()[f"_refuse_{_name}"] = _refused(_name)
