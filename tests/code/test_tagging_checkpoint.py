"""Checkpoints of `tag`: part files assembled into the same bytes as direct writing, the journal, refusals, signals."""

import json
import os
import signal

import numpy as np
import pytest

from pipeline.tagging.batch import (
    Interrupted,
    TagRequest,
    Tally,
    _check,
    _failed,
    _outputs_in_place,
    signals_interrupt,
)
from pipeline.tagging.checkpoint import JOURNAL, Checkpoint, job_of, resume_folder
from pipeline.tagging.inputs import parse_unit
from pipeline.tagging.outputs import (
    OutputError,
    PartFile,
    PartWriter,
    RecordWriter,
    encode,
    identity,
    output_format,
    paragraph_columns,
)
from pipeline.tagging.records import paragraph_records
from pipeline.tagging.scoring import TagOptions
from pipeline.text import Article

CLASSES = ["cooperation", "off_topic", "statistics", "victim_support"]
SENTENCES = ["Hai tỉnh ký kết hợp tác.", "Giá lúa tăng nhẹ.", 'Nạn nhân được hỗ trợ, "an toàn".', "Có 12 vụ, tăng 5%."]


def chunks(n_chunks: int = 4) -> list[list[dict]]:
    """Paragraph records in chunks, as workers send them (probabilities made up)."""
    out = []
    for k in range(n_chunks):
        article = Article(id=f"bai-{k}", text="", path=f"tin/{k}.txt")
        proba = np.random.default_rng(k).dirichlet(np.ones(4), size=len(SENTENCES))
        out.append(paragraph_records(article, SENTENCES, proba, CLASSES))
    return out


def _job(tmp_path, **change) -> dict:
    options = TagOptions(model=str(tmp_path / "model.joblib"), **change)
    outputs = [str(tmp_path / "out.jsonl"), None, None]
    return job_of(["tin"], [[str(tmp_path / "a.txt"), "text"]], [], options, outputs, "0" * 64)


@pytest.mark.parametrize("name", ["t.jsonl", "t.csv", "t.parquet", "t.jsonl.gz", "t.csv.gz"])
def test_a_part_cut_back_and_resumed_assembles_to_the_bytes_of_direct_writing(tmp_path, name):
    fmt = output_format(name, None)
    columns = paragraph_columns(True, False)
    encoded = [encode(c, fmt, columns) for c in chunks()]
    direct = tmp_path / "direct" / name
    direct.parent.mkdir()
    with RecordWriter(str(direct), fmt, columns) as writer:
        for chunk in encoded:
            writer.write(chunk)
    part = tmp_path / "out.part"
    first = PartWriter(part, fmt, columns)
    first.write(encoded[0])
    recorded = first.size()
    first.write(encoded[1])  # written, then interrupted before its checkpoint line
    first.close()
    resumed = PartWriter(part, fmt, columns, size=recorded)
    for chunk in encoded[1:]:
        resumed.write(chunk)
    resumed.stage(tmp_path / name).commit()
    assert (tmp_path / name).read_bytes() == direct.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["direct", name, "out.part"])  # the part stays


def test_a_part_shorter_than_its_checkpoint_is_refused(tmp_path):
    (tmp_path / "out.part").write_bytes(b"abc")
    with pytest.raises(OutputError, match="shorter"):
        PartFile(tmp_path / "out.part", size=10)


def test_the_journal_survives_a_line_cut_short(tmp_path):
    job = _job(tmp_path)
    first = Checkpoint.beside(tmp_path / "out.jsonl", job)
    assert first.start(resume=False) == []
    first.record({"out": 10}, {"inputs": 3}, "a.jsonl", [["x", "a.jsonl:1"]])
    first.record({"out": 25}, {"inputs": 6}, "a.jsonl", [["y", "a.jsonl:4"]])
    assert first.close(keep=True)
    journal = resume_folder(tmp_path / "out.jsonl") / JOURNAL
    with open(journal, "ab") as f:
        f.write(b'{"units": 3, "sizes": {"ou')  # a kill -9 in the middle of a line
    again = Checkpoint.beside(tmp_path / "out.jsonl", job)
    done = again.start(resume=True)
    assert [e["units"] for e in done] == [1, 2] and again.units == 2 and again.last == {"inputs": 6}
    again.record({"out": 40}, {"inputs": 9}, "a.jsonl", [])
    again.close(keep=True)
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert [line.get("units") for line in lines] == [None, 1, 2, 3]


def test_resume_of_another_job_is_refused_and_the_checkpoint_kept(tmp_path):
    first = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    first.start(resume=False)
    first.record({"out": 10}, {"inputs": 3}, "a.txt", [])
    first.close(keep=True)
    other = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path, min_confidence=0.5))
    with pytest.raises(OutputError, match="other inputs, options or outputs"):
        other.start(resume=True)
    assert (resume_folder(tmp_path / "out.jsonl") / JOURNAL).is_file()


def test_a_fresh_start_drops_an_old_checkpoint_and_nothing_is_kept_when_no_unit_was_done(tmp_path):
    first = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    first.start(resume=False)
    first.record({"out": 10}, {"inputs": 3}, "a.txt", [])
    first.close(keep=True)
    fresh = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    assert fresh.start(resume=False) == [] and fresh.dropped == 1
    assert not fresh.close(keep=True)  # no unit done: nothing worth keeping
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(tmp_path):
    first = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    first.start(resume=False)
    second = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    with pytest.raises(OutputError, match="another `tag` run"):
        second.start(resume=False)
    first.close(keep=False)
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_cannot_resume_works_in_a_private_folder(tmp_path):
    one, two = Checkpoint.beside(tmp_path / "s.csv", None), Checkpoint.beside(tmp_path / "s.csv", None)
    assert one.folder != two.folder and one.start(resume=False) == []
    one.record({"out": 1}, {}, "-", [])
    assert not one.close(keep=True) and not two.close(keep=True)
    assert list(tmp_path.iterdir()) == []


class Result:
    """The parts of a UnitResult that Tally reads."""

    def __init__(self, path, ids, errors=(), warnings=()):
        self.path, self.ids, self.errors, self.warnings = path, ids, list(errors), list(warnings)
        self.n_inputs, self.summaries, self.n_paragraphs = len(ids) + len(self.errors), [], 0


def test_repeated_ids_warn_within_a_file_and_across_a_resume(capsys):
    tally = Tally()
    tally.add(Result("a.jsonl", [("1", "a.jsonl:1"), ("2", "a.jsonl:2")]))
    tally.add(Result("a.jsonl", [("1", "a.jsonl:3")]))
    tally.add(Result("b.jsonl", [("1", "b.jsonl:1")]))  # another file may number its records from 1 too
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: a.jsonl:3: id '1' was already used at a.jsonl:1; both records are tagged"]
    assert tally.warned == 1 and tally.inputs == 4
    resumed = Tally()
    resumed.restore([{"tally": tally.state(), "path": "c.jsonl", "ids": [["k", "c.jsonl:7"]]}])
    resumed.add(Result("c.jsonl", [("k", "c.jsonl:9")]))
    assert "c.jsonl:9: id 'k' was already used at c.jsonl:7" in capsys.readouterr().err
    assert resumed.inputs == 5 and resumed.warned == 2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"resume": True}, "--resume needs -o FILE"),
        ({"resume": True, "output": "o.jsonl", "engine": "spark"}, "local engine only"),
        ({"resume": True, "output": "o.jsonl", "paths": ["-"]}, "cannot read standard input again"),
        ({"max_article_mb": 0}, "must be a number more than 0, not 0"),
        ({"max_article_mb": float("nan")}, "must be a number more than 0, not nan"),
        ({"max_article_mb": float("inf")}, "must be a number more than 0, not inf"),
        ({"explain": -1}, "--explain must be 0 .* not -1"),
        ({"min_confidence": 5.0}, "--min-confidence must be a probability from 0 to 1, not 5"),
        ({"min_confidence": -0.1}, "--min-confidence must be a probability from 0 to 1, not -0.1"),
        ({"jobs": -3}, "--jobs must be 1 or more, not -3"),
        ({"jobs": 0}, "--jobs must be 1 or more, not 0"),
    ],
    ids=["no output file", "spark", "stdin", "no size", "nan", "inf", "explain", "p>1", "p<0", "jobs<0", "jobs=0"],
)
def test_options_that_cannot_work_are_refused_before_any_work(change, reason):
    req = TagRequest(**{"paths": ["tin"], **change})
    sources = [("-", "stdin")] if req.paths == ["-"] else [("tin/a.txt", "text")]
    with pytest.raises(OutputError, match=reason):
        _check(req, sources)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_raises_interrupted_once_and_handlers_are_restored(name):
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, signals_interrupt():
        os.kill(os.getpid(), signum)  # the handler runs as soon as the interpreter resumes
        pytest.fail("the signal did not interrupt")
    assert caught.value.signum == signum
    assert signal.getsignal(signum) == before


def test_a_signal_after_the_last_rename_is_not_taken_for_an_unfinished_run(tmp_path):
    out = tmp_path / "tags.jsonl"
    out.write_text("old\n", encoding="utf-8")
    req = TagRequest(paths=["tin"], output=str(out))
    state = {"started": True}
    assert not _outputs_in_place(req, state)  # still tagging
    state["before"] = identity(out)
    assert not _outputs_in_place(req, state)  # putting files in place, the records not yet
    (tmp_path / "new").write_text("new\n", encoding="utf-8")
    os.replace(tmp_path / "new", out)
    assert _outputs_in_place(req, state)


def test_a_checkpoint_not_yet_opened_is_left_alone_unless_it_is_private(tmp_path, capsys):
    old = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    old.start(resume=False)
    old.record({"out": 1}, {"inputs": 1}, "a.txt", [])
    old.close(keep=True)
    req = TagRequest(paths=["tin"], output=str(tmp_path / "out.jsonl"))
    again = Checkpoint.beside(tmp_path / "out.jsonl", _job(tmp_path))
    assert _failed(Interrupted(signal.SIGTERM), req, again, {}) == 143  # stopped before start(): not its to drop
    assert (resume_folder(tmp_path / "out.jsonl") / JOURNAL).is_file()
    private = Checkpoint.beside(tmp_path / "s.csv", None)
    assert _failed(Interrupted(signal.SIGINT), req, private, {}) == 130
    assert not private.folder.exists()
    assert capsys.readouterr().err.count("interrupted by") == 2


def _journal_one_unit(tmp_path, job):
    """A resumable run that did the first unit of a.jsonl and was interrupted."""
    from pipeline.tagging.inputs import units

    first = next(units([(str(tmp_path / "a.jsonl"), "jsonl")], False))
    checkpoint = Checkpoint.beside(tmp_path / "out.jsonl", job)
    checkpoint.start(resume=False)
    checkpoint.record({"out": 0}, {"inputs": 1}, first.path, [], parse_unit(first, False).digest)
    checkpoint.close(keep=True)


def test_resume_refuses_an_input_edited_to_the_same_size_and_modification_time(tmp_path):
    from pipeline.tagging.inputs import units

    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "1", "text": "Hai nước ký kết hợp tác."}\n', encoding="utf-8")
    options = TagOptions(model=str(tmp_path / "model.joblib"))

    def job():
        return job_of(["a.jsonl"], [[str(src), "jsonl"]], [], options, [str(tmp_path / "out.jsonl"), None, None], "ab")

    _journal_one_unit(tmp_path, job())
    st = os.stat(src)
    src.write_text(src.read_text(encoding="utf-8").replace("Hai", "Ba "), encoding="utf-8")  # same size
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert job() == Checkpoint.beside(tmp_path / "out.jsonl", job()).job  # size and time alone would accept it
    resumed = Checkpoint.beside(tmp_path / "out.jsonl", job())
    resumed.start(resume=True)
    with pytest.raises(OutputError, match=f"{src}: changed since the interrupted run"):
        list(resumed.skip_done(units([(str(src), "jsonl")], False), options.max_bytes))


def test_resume_refuses_another_model_behind_the_same_name(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "1", "text": "Câu."}\n', encoding="utf-8")
    options = TagOptions(model="models:/topics@champion")
    outputs = [str(tmp_path / "out.jsonl"), None, None]
    _journal_one_unit(
        tmp_path, job_of(["a.jsonl"], [[str(tmp_path / "a.jsonl"), "jsonl"]], [], options, outputs, "1" * 64)
    )
    moved = job_of(
        ["a.jsonl"], [[str(tmp_path / "a.jsonl"), "jsonl"]], [], options, outputs, "2" * 64
    )  # the alias moved
    with pytest.raises(OutputError, match="other inputs, options or outputs"):
        Checkpoint.beside(tmp_path / "out.jsonl", moved).start(resume=True)
