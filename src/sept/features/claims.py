"""Claims on cache entries, so two processes (or threads) never compute the same entry twice.

A claim is an exclusive ``flock`` on ``<claims folder>/<key>``: the operating system drops it when
its holder exits or is killed, so a claim never outlives its process. The holder computes the
entry, writes it, then releases the claim (removing the file); another process that finds the
entry claimed waits for the claim and then reads the entry instead of computing it (see
:func:`sept.features.extract.extract_features`, which only waits while it holds no claim of its
own, so two processes never wait for each other).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class Claim:
    """A held claim; :meth:`release` it (removing its file) once the entry is written."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def __del__(self) -> None:  # a claim dropped without release (an error path) frees its lock
        self.release()

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):  # remove the file only if it is still ours
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)
        os.close(self._fd)  # drops the lock
        self._fd = -1


def claim(path: str | os.PathLike[str], wait: bool) -> Claim | None:
    """Take the claim at ``path``: None when another holder has it and ``wait`` is False; with
    ``wait`` block until it is free."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return Claim(path, fd)
