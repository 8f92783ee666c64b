"""The work folder of a `tag` run: its part files, and the journal that lets `--resume` carry on after an interruption.

A run that writes files builds them in a work folder beside its first file output and puts them
in place only when every input is done (outputs.assemble), so an interrupted run leaves no output
and no temporary file behind it: only this folder, and only when the run can be resumed.

A run can be resumed when it writes its records to a file (-o), with the local engine, and does
not read standard input. Its folder, `.NAME.tag-resume` beside the output, holds the part files
and `journal.jsonl`: first the job (inputs with their sizes and modification times, options,
the model file's sha256, outputs), then one line per unit of work done, in input order, with the
size of every part file, the counts so far, the ids of the unit's records and a hash of the bytes
it read. `--resume` checks that the job is the same, cuts every part back to the sizes of the
last complete line, reads the units done again to check their hashes (an edit that kept the size
and the modification time is caught), skips them and carries on, so the finished files are the
bytes an uninterrupted run writes. While a run holds the
folder it is locked, so a second run writing the same output stops with a message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.tagging.inputs import Unit, printable, unit_digest
from pipeline.tagging.outputs import OutputError

JOURNAL = "journal.jsonl"
RESUME_SUFFIX = ".tag-resume"
VERSION = 2


def _stamp(path: str) -> list[int] | None:
    """Size and modification time of a file: a changed input is a different job."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def job_of(paths: list[str], sources: list, missing: list[str], options, outputs: list, model_sha: str | None) -> dict:
    """What a resumed run must share with the interrupted one: inputs as found, options, the model's sha256, outputs."""
    job = {
        "version": VERSION,
        "paths": paths,
        "inputs": [[path, kind, _stamp(path)] for path, kind in sources],
        "missing": missing,
        "options": dataclasses.asdict(options),
        "model": [_stamp(options.model), model_sha],
        "outputs": outputs,
    }
    return json.loads(json.dumps(job))  # tuples as lists, as they come back from the journal


def resume_folder(output: str | Path) -> Path:
    """The checkpoint folder of a resumable run writing `output`."""
    output = Path(output)
    return output.parent / f".{output.name}{RESUME_SUFFIX}"


def _read_journal(path: Path) -> tuple[dict | None, list[dict], int]:
    """(job, unit lines, bytes up to the end of the last complete line); a line cut short by a kill is left out."""
    data = path.read_bytes()
    job, entries, end = None, [], 0
    for line in data.split(b"\n")[:-1]:  # the piece after the last newline is incomplete
        try:
            value = json.loads(line)
        except ValueError:
            break
        if job is None:
            if not isinstance(value, dict) or "job" not in value:
                break
            job = value["job"]
        else:
            entries.append(value)
        end += len(line) + 1
    return job, entries, end


class Checkpoint:
    """A run's work folder: `part(name)` paths, and for a resumable run the journal of completed units."""

    def __init__(self, folder: Path, job: dict | None):
        self.folder, self.job = folder, job
        self.units = 0  # units of work completed, carried over when resuming
        self.last: dict = {}  # the counts of the last unit recorded
        self.sizes: dict = {}  # part sizes after the last unit recorded by the interrupted run, to cut back to
        self.dropped = 0  # units of an older interrupted run that a fresh start threw away
        self.found = False  # whether --resume found a checkpoint to carry on from
        self.digests: list[str] = []  # the content hash of each unit the interrupted run did
        self._journal: int | None = None
        self._lock: int | None = None

    @property
    def resumable(self) -> bool:
        """Whether the journal is kept, so the run can be resumed."""
        return self.job is not None

    @classmethod
    def beside(cls, first_output: str | Path, job: dict | None) -> Checkpoint:
        """The work folder beside a run's first file output: fixed for a resumable run, a new private one otherwise."""
        first_output = Path(first_output)
        try:
            if job is not None:
                folder = resume_folder(first_output)
                folder.mkdir(exist_ok=True)
            else:
                folder = Path(tempfile.mkdtemp(prefix=f".{first_output.name}.tag-", dir=first_output.parent))
        except OSError as e:
            raise OutputError(f"{first_output}: cannot be written ({e.strerror or e})") from None
        return cls(folder, job)

    def part(self, name: str) -> Path:
        """The part file of one output (out, summary, rows, sections)."""
        return self.folder / f"{name}.part"

    def _take_lock(self) -> None:
        """Lock the folder for this run; OutputError when another run holds it."""
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock, as before checkpoints
            return
        self._lock = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            self._lock = None
            raise OutputError(f"{self.folder}: another `tag` run is writing the same output") from None

    def start(self, resume: bool) -> list[dict]:
        """Open the folder for this run: the journal lines of the units already done (none unless resuming)."""
        if not self.resumable:
            return []
        self._take_lock()
        path = self.folder / JOURNAL
        job, entries, end = _read_journal(path) if path.is_file() else (None, [], 0)
        if resume and job is not None:
            if job != self.job:
                self._release()  # the folder stays as it is: it belongs to the interrupted run
                raise OutputError(
                    f"{self.folder}: the interrupted run had other inputs, options or outputs "
                    "(or an input changed since): run without --resume to start over"
                )
            self.found = True
            self.units = entries[-1]["units"] if entries else 0
            self.last = entries[-1]["tally"] if entries else {}
            self.sizes = entries[-1]["sizes"] if entries else {}
            self.digests = [e.get("digest", "") for e in entries]
            with open(path, "r+b") as f:
                f.truncate(end)  # drop a line cut short, so the next one starts on its own line
            self._journal = os.open(path, os.O_WRONLY | os.O_APPEND)
            return entries
        self.dropped = entries[-1]["units"] if entries else 0
        for child in self.folder.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        self._journal = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._write({"job": self.job})
        return []

    def _write(self, value: dict) -> None:
        # One write() per line: a signal cannot split it; a kill -9 can, and the reader skips that line.
        try:
            os.write(self._journal, (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as e:  # a full disk
            raise OutputError(f"{self.folder / JOURNAL}: cannot be written ({e.strerror or e})") from None

    def record(self, sizes: dict, tally: dict, path: str, ids: list, digest: str = "") -> None:
        """One more unit done: the part sizes after it, the counts so far, its records' ids and the hash of what it read."""
        if self._journal is None:
            return
        self.units += 1
        self.last = tally
        self._write({"units": self.units, "sizes": sizes, "tally": tally, "path": path, "ids": ids, "digest": digest})

    def skip_done(self, units: Iterable[Unit], max_bytes: int) -> Iterator[Unit]:
        """The units after those already done, each done one checked first against the hash the interrupted run recorded."""
        units = iter(units)
        for expected in self.digests:
            unit = next(units, None)
            if unit is None or unit_digest(unit, max_bytes) != expected:
                where = printable(unit.path) if unit is not None else "an input"
                raise OutputError(
                    f"{where}: changed since the interrupted run (its content differs from what was tagged): "
                    "run without --resume to start over"
                )
        yield from units

    def close(self, keep: bool) -> bool:
        """End the run's use of the folder: kept (for --resume) or removed. Returns whether it was kept."""
        keep = keep and self.resumable and self.units > 0
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)
        self._release()
        return keep

    def _release(self) -> None:
        """Let go of the folder's lock."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
