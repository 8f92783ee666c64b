"""`make run`'s output filter: stage lines, the seed table, bars and errors on the terminal, every byte in the log."""

import io
import sys
import textwrap

import pytest

from pipeline.quiet import StdoutFilter, run, split_bars

# A stand-in for `dvc repro`: DVC's lines, stage results, library noise on stderr, a progress bar.
FAKE_DVC = textwrap.dedent(
    r"""
    import sys
    print("Running stage 'train':")
    print("> python -m pipeline train")
    print("train: context model on 10 paragraphs in 1.0s -> models/model.joblib")
    print("Updating lock file 'dvc.lock'")
    print("Stage 'split' didn't change, skipping")
    print("Running stage 'tag_seeds':")
    print("> python -m pipeline tag_seeds")
    print("article                                  paras   coop")
    print("seeds/a                                      3      1")
    print("tag_seeds: 3 paragraphs of 1 articles -> data/tagged/seeds.jsonl")
    print("Updating lock file 'dvc.lock'")
    print("To track the changes with git, run:")
    print("\tgit add dvc.lock")
    sys.stdout.flush()
    sys.stderr.write("2026/01/01 INFO mlflow.store: Creating tables\n")
    sys.stderr.write("tokenize:   0%|  | 0/2\rtokenize:  50%|# | 1/2\rtokenize: 100%|##| 2/2\n")
    sys.stderr.write("WARNING mlflow.pyfunc: Passing a Python object\n")
    sys.stderr.write("error: data/labels/manual.csv:3: bad label\n")
    sys.exit(3)
    """
)


def test_terminal_gets_results_bars_and_errors_and_the_log_everything(tmp_path):
    log = tmp_path / "logs" / "run.log"
    out, err = io.StringIO(), io.StringIO()
    code = run(log, [sys.executable, "-c", FAKE_DVC], out, err)
    assert code == 3
    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        "train: context model on 10 paragraphs in 1.0s -> models/model.joblib",
        "split: up to date",
        "article                                  paras   coop",
        "seeds/a                                      3      1",
        "tag_seeds: 3 paragraphs of 1 articles -> data/tagged/seeds.jsonl",
    ]
    assert lines[-1] == f"failed; full output in {log}" and len(lines) == 6
    assert err.getvalue() == (
        "\rtokenize:   0%|  | 0/2\rtokenize:  50%|# | 1/2\rtokenize: 100%|##| 2/2\n"
        "error: data/labels/manual.csv:3: bad label\n"
    )
    kept = log.read_text(encoding="utf-8")
    for noise in ("> python -m pipeline train", "git add dvc.lock", "INFO mlflow.store", "WARNING mlflow.pyfunc"):
        assert noise in kept


def test_a_missing_command_is_one_line(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert run(tmp_path / "run.log", ["no-such-command-here"], out, err) == 127
    assert err.getvalue().startswith("error: no-such-command-here:") and err.getvalue().count("\n") == 1


@pytest.mark.parametrize(
    ("buffer", "pieces", "rest"),
    [
        (b"a\rb\nc", [(b"a", b"\r"), (b"b", b"\n")], b"c"),
        (b"", [], b""),
        (b"\r\n", [(b"", b"\r"), (b"", b"\n")], b""),
    ],
)
def test_split_bars(buffer, pieces, rest):
    assert split_bars(buffer) == (pieces, rest)


def test_filter_follows_the_stage():
    keep = StdoutFilter()
    assert keep("Running stage 'evaluate':") is None
    assert keep("  some detail") is None
    assert keep("ERROR: failed to reproduce 'evaluate'") == "ERROR: failed to reproduce 'evaluate'"
