"""On-disk cache of audio features: one ``.npy`` file per (backbone identity, file content).

Layout: ``<root>/<backbone identity>/<key[:2]>/<key>.npy`` where the key hashes the audio file's
bytes, so a renamed file is a hit and an edited file is a miss; the identity (see
:attr:`sept.backbones.Backbone.identity`) changes with the weights and the preprocessing settings.
Entries are written atomically (temporary file + rename), so a killed process never leaves a
half-written entry, and read with ``allow_pickle=False``. Each entry is a plain ``.npy`` followed by
a trailer (:data:`CHECKSUM_MAGIC` and the blake2b digest of the ``.npy`` bytes), which ``np.load``
ignores. They are not fsynced one by one (that cost a fifth of the extraction throughput): a cache
is derived data, so after an operating-system crash an entry may be missing, empty or torn, and
every read checks it (the checksum, a valid ``.npy`` header, one finite vector of unit norm and of
the backbone's dimension). An entry that fails a check (torn, edited, or written before entries
carried a checksum) counts as a miss, with a warning, and is recomputed and rewritten.
Before computing an entry a process claims it (:meth:`FeatureCache.claim`), so that a second
process waits for it and reads it instead of computing it again.

With ``with_norm=True`` (what feature extraction uses) an entry of a feature ``v`` [D] is the unit
vector and the norm, ``[v / ||v||, ||v||]`` [D + 1]: the unit part is checked as above, the norm
must be finite and positive, and :meth:`FeatureCache.get` returns ``v`` itself, so the backbone's
unnormalised feature (:meth:`sept.backbones.Backbone.embed_audio_inputs_raw`) is kept without
weakening the checks.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np

from sept.features.claims import Claim, claim
from sept.utils.atomic import atomic_write_bytes, atomic_write_json
from sept.utils.hashing import hash_bytes
from sept.utils.paths import cache_root

log = logging.getLogger(__name__)

#: largest accepted | ||v||^2 - 1 | of a cached vector (features are L2-normalised; float32 rounding
#: stays far below this, a torn or zeroed entry far above)
UNIT_NORM_TOLERANCE = 1e-3
#: marks the checksum trailer after an entry's ``.npy`` bytes (followed by a 16-byte digest)
CHECKSUM_MAGIC = b"SEPTSUM1"
_TRAILER = len(CHECKSUM_MAGIC) + 16


def _checksum(npy: bytes) -> bytes:
    return bytes.fromhex(hash_bytes(npy))


def default_cache_dir() -> Path:
    """``<cache root>/features`` (see :func:`sept.utils.paths.cache_root`)."""
    return cache_root() / "features"


def split_norm(vec: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """(unit vector, norm) of ``vec`` [D] in float32, as a ``with_norm`` entry stores them."""
    vec = np.asarray(vec, dtype=np.float32)
    norm = np.float32(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32), norm


def as_stored(vec: np.ndarray) -> np.ndarray:
    """``vec`` exactly as a ``with_norm`` cache hit returns it (unit * norm), so a fresh computation
    and a later hit give bit-identical features."""
    unit, norm = split_norm(vec)
    return unit * norm


class FeatureCache:
    """Feature vectors [D] (float32) by content key, for one backbone identity.

    ``dim``: the backbone's feature dimension D; an entry of another length is a miss.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        identity: str,
        settings: dict | None = None,
        dim: int | None = None,
        *,
        with_norm: bool = False,
    ) -> None:
        self.with_norm = with_norm
        self.dir = Path(root) / identity
        self.dim = dim
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
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring unreadable cache entry %s (%s); it will be recomputed", path, exc)
            return None
        npy, trailer = raw[:-_TRAILER], raw[-_TRAILER:]
        if len(raw) < _TRAILER or trailer[: len(CHECKSUM_MAGIC)] != CHECKSUM_MAGIC:
            log.warning("ignoring cache entry %s without a checksum; it will be recomputed", path)
            return None
        if _checksum(npy) != trailer[len(CHECKSUM_MAGIC) :]:
            log.warning("ignoring cache entry %s: its checksum does not match; it will be recomputed", path)
            return None
        try:
            buffer = io.BytesIO(npy)
            vec = np.load(buffer, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            log.warning("ignoring unreadable cache entry %s (%s); it will be recomputed", path, exc)
            return None
        ok = vec.ndim == 1 and vec.dtype == np.float32 and bool(np.isfinite(vec).all())
        unit = vec[:-1] if self.with_norm else vec
        ok = ok and unit.size > 0 and (self.dim is None or unit.shape[0] == self.dim)
        ok = ok and abs(float(unit @ unit) - 1.0) <= UNIT_NORM_TOLERANCE
        if ok and self.with_norm:
            ok = float(vec[-1]) > 0  # the norm of the unnormalised feature
        if not ok:
            log.warning(
                "ignoring malformed cache entry %s (%s %s, expected float32 (%s,) of unit norm%s); it will be recomputed",
                path,
                vec.dtype,
                vec.shape,
                self.dim if self.dim is not None else "D",
                " and a positive norm" if self.with_norm else "",
            )
            return None
        return unit * vec[-1] if self.with_norm else vec

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` [D] atomically (concurrent writers of the same key are safe): a unit vector,
        or with ``with_norm`` any vector of positive norm (stored as unit vector and norm)."""
        vec = np.asarray(vec, dtype=np.float32)
        if self.with_norm:
            unit, norm = split_norm(vec)
            vec = np.concatenate([unit, [norm]]).astype(np.float32)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(vec, dtype=np.float32), allow_pickle=False)
        npy = buffer.getvalue()
        atomic_write_bytes(self._path(key), npy + CHECKSUM_MAGIC + _checksum(npy), durable=False)

    def claim(self, key: str, wait: bool = False) -> Claim | None:
        """Claim ``key`` before computing it (see :mod:`sept.features.claims`): None when another
        process (or thread) holds it and ``wait`` is False."""
        return claim(self.dir / "claims" / key, wait)

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.npy"))
