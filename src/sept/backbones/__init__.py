"""Frozen audio-language backbones behind one interface (:class:`Backbone`)."""

from sept.backbones.base import Backbone, TokenBatch
from sept.backbones.registry import DEFAULT_BACKBONE, create_backbone, list_backbones, register_backbone

__all__ = [
    "DEFAULT_BACKBONE",
    "Backbone",
    "TokenBatch",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
