"""Silence the per-load progress bars of Hugging Face libraries (sept shows its own)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar inside the block; restore its state after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
