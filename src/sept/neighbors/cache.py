"""On-disk cache of model answers, so that rerunning a generation sends no request.

One JSON file per request under the cache folder, named by a hash of the key (endpoint, model,
messages, temperature ...); the file also stores the key, checked on read. API keys are never part
of a key or a file. Writes are atomic; an unreadable entry counts as a miss.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from sept.utils.atomic import atomic_write_json
from sept.utils.hashing import hash_json

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SEPT_CACHE_DIR/neighbors`` or ``~/.cache/sept/neighbors``."""
    base = os.environ.get("SEPT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "sept")
    return Path(base) / "neighbors"


class AnswerCache:
    """``get(key)`` / ``put(key, answer)`` over JSON files in ``folder`` (``None``: caching off)."""

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.misses = 0

    def _path(self, key: dict[str, Any]) -> Path:
        assert self.folder is not None
        return self.folder / f"{hash_json(key)}.json"

    def get(self, key: dict[str, Any]) -> str | None:
        """The cached answer text for ``key``, or None."""
        if self.folder is None:
            return None
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or not UTF-8
            log.warning("ignoring unreadable cache entry %s: %s", path, exc)
            self.misses += 1
            return None
        stored = json.loads(json.dumps(key))  # the key as it round-trips through JSON
        if (
            not isinstance(entry, dict)
            or entry.get("key") != stored
            or not isinstance(entry.get("answer"), str)
        ):
            self.misses += 1
            return None
        self.hits += 1
        return entry["answer"]

    def put(self, key: dict[str, Any], answer: str) -> None:
        if self.folder is not None:
            atomic_write_json(self._path(key), {"key": key, "answer": answer})
