"""Run a command quietly: progress bars and one line per stage on the terminal, everything in a log file.

`python -m pipeline.quiet LOG -- dvc repro` (what `make run` calls). The terminal gets each stage's
result line (`train: ...`), the seed summary table, progress bars, errors, and last the log's path;
the log gets every byte the command wrote (DVC's notes, MLflow's, pip's).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

STAGE_LINE = re.compile(r"^[a-z_]+: ")
RUNNING = re.compile(r"^Running stage '([\w-]+)':")
SKIPPED = re.compile(r"^Stage '([\w-]+)' didn't change, skipping")
# DVC's lines inside a stage's output: the command it runs and the lock file it writes.
DVC_NOISE = re.compile(r"^(> |Updating lock file|Generating lock file)")
ERROR = re.compile(r"^(error|ERROR)\b")
SHOWN_WHOLE = {"tag_seeds"}  # stages whose whole output is their result (the seed summary table)


class StdoutFilter:
    """Which lines of DVC's standard output reach the terminal; it follows the stage being run."""

    def __init__(self):
        self.stage = None

    def __call__(self, line: str) -> str | None:
        """The line to show (maybe reworded), or None for the log only."""
        if m := RUNNING.match(line):
            self.stage = m.group(1)
            return None
        if m := SKIPPED.match(line):
            return f"{m.group(1)}: up to date"
        if line.startswith(("Updating lock file", "Generating lock file")):
            self.stage = None  # what follows is DVC's advice about git and remotes
            return None
        if ERROR.match(line) or STAGE_LINE.match(line):
            return line
        if self.stage in SHOWN_WHOLE and line.strip() and not DVC_NOISE.match(line):
            return line
        return None


def split_bars(buffer: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Complete pieces of `buffer` with the byte that ended each (b"\\r" or b"\\n"), and the unfinished rest."""
    pieces, start = [], 0
    for i, byte in enumerate(buffer):
        if byte in b"\r\n":
            pieces.append((buffer[start:i], bytes([byte])))
            start = i + 1
    return pieces, buffer[start:]


def _pump_stdout(stream, log, lock, out) -> None:
    keep = StdoutFilter()
    for raw in iter(stream.readline, b""):
        with lock:
            log.write(raw)
            log.flush()
        shown = keep(raw.decode("utf-8", "replace").rstrip("\n"))
        if shown is not None:
            out.write(shown + "\n")
            out.flush()


def _pump_stderr(stream, log, lock, out) -> None:
    """Progress bars (pieces ended by a carriage return) and errors to the terminal; every byte to the log."""
    rest, in_bar = b"", False
    for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
        with lock:
            log.write(chunk)
            log.flush()
        pieces, rest = split_bars(rest + chunk)
        for text, end in pieces:
            line = text.decode("utf-8", "replace")
            if end == b"\r":
                in_bar = bool(line)
                if line:
                    out.write("\r" + line)
            elif in_bar:  # a bar's last state ends with a newline
                out.write(("\r" + line if line else "") + "\n")
                in_bar = False
            elif ERROR.match(line):
                out.write(line + "\n")
        out.flush()


def run(log_path: Path, cmd: list[str], out=None, err=None) -> int:
    """Run `cmd` with its output filtered to the terminal and kept whole in `log_path`; its exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        lock = threading.Lock()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            err.write(f"error: {cmd[0]}: {e.strerror}\n")
            return 127
        threads = [
            threading.Thread(target=_pump_stdout, args=(proc.stdout, log, lock, out)),
            threading.Thread(target=_pump_stderr, args=(proc.stderr, log, lock, err)),
        ]
        for t in threads:
            t.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait()
        for t in threads:
            t.join()
    out.write(f"{'failed' if code else 'done'}; full output in {log_path}\n")
    out.flush()
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m pipeline.quiet LOG -- COMMAND [ARGS...]\n")
        return 2
    return run(Path(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main())
