"""Stable content and settings hashes used as cache keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def hash_bytes(data: bytes) -> str:
    """Hex digest (32 chars) of raw bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_json(obj: Any) -> str:
    """Hex digest (32 chars) of a JSON-serialisable object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hash_bytes(text.encode("utf-8"))
