"""How much sept says: its ``sept`` logger and its progress bars.

As a library, sept configures nothing: its modules log to ``logging.getLogger(__name__)`` (all
under the ``sept`` logger) and never touch the root logger, so with no logging set up only
warnings and errors reach stderr (Python's last-resort handler), and an application's own
``logging`` configuration decides the rest. The ``sept`` command calls :func:`configure_cli`
once: a handler on the ``sept`` logger at WARNING (``-q``: ERROR, ``-v``: INFO with the
per-epoch lines, ``-vv``: DEBUG), third-party request logs (httpx, urllib3, huggingface_hub)
kept at WARNING.

Progress bars (tqdm; shown only on a terminal) are on by default and switched off for the whole
process with :func:`set_progress_bars` (``sept -q`` and ``--no-progress`` do), or for a block
with :func:`progress_bars_disabled` (a sweep's cells log to files instead).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

LOGGER_NAME = "sept"

#: loggers of the libraries sept calls that log every request or file at INFO
THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "urllib3", "huggingface_hub", "filelock", "openai")

_CLI_FORMAT = "%(levelname)s %(name)s: %(message)s"
_progress_enabled = True


def level_for(verbosity: int) -> int:
    """The ``sept`` log level of a CLI verbosity: -1 (``-q``) ERROR, 0 WARNING, 1 (``-v``) INFO, 2 DEBUG."""
    if verbosity < 0:
        return logging.ERROR
    return (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG


class _CliHandler(logging.Handler):
    """What :func:`configure_cli` installs: writes to the current ``sys.stderr`` through
    ``tqdm.write``, so a log line never tears a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_cli(verbosity: int = 0) -> logging.Handler:
    """Log ``sept`` records at :func:`level_for` ``(verbosity)`` to stderr; quiet third-party logs.

    Only the ``sept`` logger gets a handler; the root logger is left as it is. ``verbosity < 0``
    also hides the progress bars. Calling it again replaces the handler it installed before.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(handler)
    level = level_for(verbosity)
    handler = _CliHandler()
    handler.setFormatter(logging.Formatter(_CLI_FORMAT))
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(level)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    set_progress_bars(verbosity >= 0)
    return handler


def set_progress_bars(enabled: bool) -> None:
    """Show (on a terminal) or hide every sept progress bar of this process."""
    global _progress_enabled
    _progress_enabled = bool(enabled)


def progress_bars_enabled() -> bool:
    return _progress_enabled


@contextlib.contextmanager
def progress_bars_disabled() -> Iterator[None]:
    """Hide sept's progress bars inside the block; restore the setting after."""
    was = _progress_enabled
    set_progress_bars(False)
    try:
        yield
    finally:
        set_progress_bars(was)


def progress_bar(total: int | None, desc: str, unit: str, *, enabled: bool = True, **kwargs: Any):  # -> tqdm
    """A tqdm bar, hidden when ``enabled`` is False, when bars are switched off
    (:func:`set_progress_bars`) or when stderr is not a terminal."""
    from tqdm.auto import tqdm

    show = enabled and _progress_enabled
    return tqdm(total=total, desc=desc, unit=unit, disable=None if show else True, **kwargs)


def echo_around(bar: Any, echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo`` that clears ``bar`` (and the other bars) before printing and redraws them after."""

    def say(text: str) -> None:
        with type(bar).external_write_mode():
            echo(text)

    return say
