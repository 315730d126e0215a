"""A tensor computed once and kept on disk (safetensors), read back by every later process."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def cached_tensor(
    path: str | os.PathLike[str],
    name: str,
    shape: tuple[int, ...],
    compute: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """The tensor ``name`` of the file ``path`` if it holds one of ``shape`` with finite values, else
    ``compute()`` written there atomically. A file that is unreadable or of another shape is computed
    again (with a warning naming it); a cache that cannot be written is warned about, not fatal."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from sept.utils.atomic import atomic_write

    path = Path(path)
    if path.is_file():
        try:
            kept = load_file(str(path))[name]
            if tuple(kept.shape) == tuple(shape) and torch.isfinite(kept).all():
                return kept
        except (SafetensorError, OSError, KeyError):
            pass
        log.warning("%s in %s is damaged or of another shape; computing it again", name, path)
    value = compute()
    try:
        atomic_write(path, lambda tmp: save_file({name: value.contiguous()}, str(tmp)))
    except OSError as exc:  # a read-only cache: compute it each time
        log.warning("cannot keep %s in %s: %s", name, path, exc)
    return value
