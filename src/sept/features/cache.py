"""On-disk cache of audio features: one ``.npy`` file per (backbone identity, file content).

Layout: ``<root>/<backbone identity>/<key[:2]>/<key>.npy`` where the key hashes the audio file's
bytes, so a renamed file is a hit and an edited file is a miss; the identity (see
:attr:`sept.backbones.Backbone.identity`) changes with the weights and the preprocessing settings.
Entries are written atomically (temporary file + rename) and read with ``allow_pickle=False``;
an unreadable entry (e.g. from a disk fault) counts as a miss and is rewritten.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from sept.utils.atomic import atomic_path, atomic_write_json
from sept.utils.paths import cache_root

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``<cache root>/features`` (see :func:`sept.utils.paths.cache_root`)."""
    return cache_root() / "features"


class FeatureCache:
    """Feature vectors [D] (float32) by content key, for one backbone identity."""

    def __init__(self, root: str | os.PathLike[str], identity: str, settings: dict | None = None) -> None:
        self.dir = Path(root) / identity
        self.dir.mkdir(parents=True, exist_ok=True)
        info = self.dir / "identity.json"
        if settings is not None and not info.exists():
            atomic_write_json(info, {"identity": identity, "settings": settings})

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector [D] or None (missing or unreadable entry)."""
        path = self._path(key)
        try:
            vec = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError) as exc:
            log.warning("ignoring unreadable cache entry %s (%s); it will be recomputed", path, exc)
            return None
        if vec.ndim != 1 or not np.isfinite(vec).all():
            log.warning("ignoring malformed cache entry %s; it will be recomputed", path)
            return None
        return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` [D] atomically (concurrent writers of the same key are safe)."""
        arr = np.ascontiguousarray(vec, dtype=np.float32)
        with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, arr, allow_pickle=False)

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.npy"))
