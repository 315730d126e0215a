"""Stable content and settings hashes used as cache keys."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

#: bytes read at a time by :func:`hash_file`
HASH_CHUNK_BYTES = 1 << 20


def _digest() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


def hash_bytes(data: bytes) -> str:
    """Hex digest (32 chars) of raw bytes."""
    digest = _digest()
    digest.update(data)
    return digest.hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """:func:`hash_bytes` of a file's content, read in chunks (memory does not grow with the file)."""
    digest = _digest()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def hash_json(obj: Any) -> str:
    """Hex digest (32 chars) of a JSON-serialisable object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hash_bytes(text.encode("utf-8"))
