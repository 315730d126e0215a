"""Training on cached features: typed configs, the trainer, saved prompts and checkpoints.

``resolve_config`` (layered config), ``Trainer`` (fit), ``predict_logits`` (evaluation),
``save_prompt`` / ``load_prompt`` (learned parameters + config, safetensors). Imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ConfigError": "sept.methods.options",
    "OptimConfig": "sept.training.config",
    "RunConfig": "sept.training.config",
    "resolve_config": "sept.training.config",
    "Trainer": "sept.training.trainer",
    "TrainResult": "sept.training.trainer",
    "predict_logits": "sept.training.trainer",
    "save_prompt": "sept.training.checkpoint",
    "load_prompt": "sept.training.checkpoint",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sept.training' has no attribute {name!r}")
