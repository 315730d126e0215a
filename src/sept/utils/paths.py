"""Where sept keeps what it downloads or computes once (model unpacks, feature caches)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SEPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/sept``, else ``~/.cache/sept``."""
    if os.environ.get("SEPT_CACHE_DIR"):
        return Path(os.environ["SEPT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sept"


def safe_name(part: str) -> str:
    """One path component from a free-form name: other characters than ``A-Za-z0-9._+-`` become ``_``."""
    import re

    return re.sub(r"[^A-Za-z0-9._+-]+", "_", part).strip("._") or "_"
