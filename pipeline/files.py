"""Files: every file a command writes appears whole or not at all (staged beside its path, then renamed)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError


class OutputError(PipelineError):
    """An output that cannot be written; the message names the path."""


class Staged:
    """A new file built beside `path` (a temporary file) that becomes `path` on `commit()`, or disappears on `discard()`.

    Every file a command writes goes through here (`atomic_open`): readers never see half a file,
    and several outputs can be built first and then put in place one right after the other.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            # mkstemp makes the file private (0600); the output gets the permissions a plain open() would give.
            mask = os.umask(0)
            os.umask(mask)
            os.fchmod(fd, 0o666 & ~mask)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot be written ({e.strerror or e})") from None
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")

    def link_from(self, source: Path) -> bool:
        """Make the temporary file a hard link to `source` (no copy; `source` stays); False when the file system cannot."""
        self.file.close()
        try:
            self.tmp.unlink()
            os.link(source, self.tmp)
        except OSError:
            self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit() or discard()
            return False
        return True

    def commit(self) -> None:
        """Put the file in place (its last bytes are written first: a full disk fails here, with the old file intact)."""
        try:
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise OutputError(f"{self.path}: cannot be written ({e.strerror or e})") from None

    def discard(self) -> None:
        """Remove the temporary file (nothing happens once committed)."""
        with contextlib.suppress(OSError):
            self.file.close()
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def discard_on_error(staged: Staged) -> Iterator:
    """Write into `staged.file`; any failure removes the temporary file (an OSError becomes OutputError)."""
    try:
        yield staged.file
    except OSError as e:
        staged.discard()
        raise OutputError(f"{staged.path}: cannot be written ({e.strerror or e})") from None
    except BaseException:
        staged.discard()
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator:
    """A binary file that appears at `path` only when the block ends without an exception (Staged)."""
    staged = Staged(path)
    with discard_on_error(staged) as f:
        yield f
    staged.commit()


def atomic_write_bytes(path: str | Path, write) -> None:
    """Call `write(file)` on a temporary file next to `path`, then rename it into place (the project's one writer)."""
    with atomic_open(Path(path)) as f:
        write(f)
