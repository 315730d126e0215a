"""Per-cell log files and per-cell locks.

Each cell appends what its run logs on the ``sept`` logger (training epochs, warnings, a
failure's traceback) to ``<run folder>/cell.log``. A cell holds an exclusive lock (``fcntl.flock`` through ``filelock``,
released by the kernel if the process dies) on ``<run_root>/.locks/<cell hash>.lock`` while it
runs, so two sweeps sharing a run root never train the same cell at once: the second waits,
then finds the cell finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from sept.utils.hashing import hash_json

LOG_FILE = "cell.log"
LOCK_DIR = ".locks"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


def lock_path(run_root: str | os.PathLike[str], cell_id: str) -> Path:
    """``<run_root>/.locks/<hash of the cell id>.lock``."""
    return Path(run_root) / LOCK_DIR / f"{hash_json(cell_id)[:24]}.lock"


@contextlib.contextmanager
def cell_lock(run_root: str | os.PathLike[str], cell_id: str, poll_seconds: float = 0.5) -> Iterator[None]:
    """Hold the cell's lock for the block; waits (logging once) while another process holds it."""
    from filelock import FileLock, Timeout

    path = lock_path(run_root, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("%s is running in another process; waiting for it", cell_id)
        lock.acquire(poll_interval=poll_seconds)
    try:
        yield
    finally:
        lock.release()


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def cell_log(path: str | os.PathLike[str], cell_id: str, quiet_console: bool = True) -> Iterator[Path]:
    """Append every record (INFO and up) of the ``sept`` logger in the block to ``path``.

    ``quiet_console``: the other handlers (the ``sept`` logger's and the root logger's) only pass
    warnings meanwhile and progress bars are hidden (the sweep prints one line per cell; the
    epochs go to the file). The root logger's level is never changed.
    """
    from sept.utils.verbosity import LOGGER_NAME, progress_bars_disabled

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    quiet = _BelowWarning()
    others = [*logger.handlers, *logging.getLogger().handlers] if quiet_console else []
    for h in others:
        h.addFilter(quiet)
    old_level = logger.level
    if not old_level or old_level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    handler.stream.write(f"==== {stamp} {cell_id} on {socket.gethostname()} pid {os.getpid()}\n")
    handler.flush()
    bars = progress_bars_disabled() if quiet_console else contextlib.nullcontext()
    try:
        with bars:
            yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(old_level)
        for h in others:
            h.removeFilter(quiet)
