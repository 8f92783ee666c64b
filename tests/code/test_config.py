"""The params file: checked before any work, each problem naming its key."""

import pytest


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "C", "big", "train.C = 'big' must be a number"),
        ("train", "C", -1, "train.C = -1 must be between"),
        ("train", "features", "bert", "train.features = 'bert' must be syllable, word or char"),
        ("train", "context", "yes", "train.context = 'yes' must be true or false"),
        ("split", "test_size", 0.9, "split.test_size = 0.9 must be between"),
        ("learning_curve", "fractions", [0, 2], "learning_curve.fractions"),
        ("text", "max_paragraph_chars", 12.5, "must be a whole number"),
    ],
)
def test_bad_params_name_the_key(tmp_path, section, key, value, message):
    import yaml

    from pipeline.config import PARAMS, ParamsError, load_params

    params = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    params[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_params(path)


def test_project_params_are_valid():
    from pipeline.config import PARAMS, load_params

    assert load_params(PARAMS)["train"]["features"]
