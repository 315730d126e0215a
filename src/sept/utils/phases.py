"""Wall time spent in named phases of this process's work (``train``, ``eval``), for sweep records.

The protocols wrap their training and evaluation in :func:`phase`; the sweep's cell runner reads
and resets the totals around each cell (:func:`take_phases`), so a sweep can say how much of its
wall time went to training and evaluation and how much to everything else. One cell runs at a
time per process, so plain per-process totals suffice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

_TOTALS: dict[str, float] = {}


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the wall seconds of the ``with`` body to the process's total for ``name``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _TOTALS[name] = _TOTALS.get(name, 0.0) + time.perf_counter() - start


def take_phases() -> dict[str, float]:
    """The totals since the last call (seconds per phase name), then reset them."""
    out = dict(_TOTALS)
    _TOTALS.clear()
    return out
