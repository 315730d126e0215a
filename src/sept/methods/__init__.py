"""Prompt-tuning methods: prompt learners, regularisers and heads, composed per run.

``list_methods()`` names them; ``build_method("kgcoop+dept", backbone, classnames)`` builds one.
Torch-dependent names are imported on first use, so ``import sept.methods`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from sept.methods.registry import (
    COMBINATIONS,
    MethodSpec,
    list_components,
    list_methods,
    parse_method,
    register_method_component,
)

_LAZY = {
    "PromptLearner": "sept.methods.base",
    "Regularizer": "sept.methods.base",
    "Head": "sept.methods.base",
    "Step": "sept.methods.base",
    "TextRequest": "sept.methods.base",
    "readable_name": "sept.methods.base",
    "ComposedMethod": "sept.methods.compose",
    "build_method": "sept.methods.compose",
    "similarity_logits": "sept.methods.compose",
}

__all__ = [
    "COMBINATIONS",
    "MethodSpec",
    "list_components",
    "list_methods",
    "parse_method",
    "register_method_component",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sept.methods' has no attribute {name!r}")
