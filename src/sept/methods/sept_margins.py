"""SEPT's margins, from the frozen text tower (no prompt), computed once and cached on disk.

``m[i, p] = (1/T) * sum_t || g(tau_t(c_i)) - g(tau_t(phrase_p)) ||_2`` over T templates, for every
training class i and every neighbour phrase p (of any class). Shape [C, P].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from sept.utils.hashing import hash_json
from sept.utils.paths import cache_root

if TYPE_CHECKING:
    from sept.backbones.base import Backbone

#: T = 5 hand-written templates (docs/METHOD.md)
DEFAULT_MARGIN_TEMPLATES = (
    "the sound of {}.",
    "a recording of {}.",
    "this is the sound of {}.",
    "{} can be heard.",
    "an audio clip of {}.",
)


def compute_margins(
    backbone: Backbone, classes: Sequence[str], phrases: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """[C, P] mean over templates of L2 distances between normalised frozen features (fp32, also
    when called under autocast: the cached margins do not depend on a run's precision)."""
    total = torch.zeros(len(classes), len(phrases))
    for t in templates:
        texts = [t.replace("{}", c) for c in classes] + [t.replace("{}", p) for p in phrases]
        with torch.autocast(backbone.device.type, enabled=False):
            feats = backbone.embed_text(texts).float().cpu()  # [C + P, D], normalised, no grad
        total += torch.cdist(feats[: len(classes)], feats[len(classes) :])
    return total / len(templates)


def frozen_margins(
    backbone: Backbone, classes: Sequence[str], phrases: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """:func:`compute_margins`, read from ``<cache root>/sept-margins`` when computed before."""
    from sept.utils.tensor_cache import cached_tensor

    key = hash_json(
        {
            "backbone": backbone.identity,
            "classes": list(classes),
            "phrases": list(phrases),
            "templates": list(templates),
        }
    )
    path = cache_root() / "sept-margins" / f"{key}.safetensors"
    return cached_tensor(
        path,
        "margin",
        (len(classes), len(phrases)),
        lambda: compute_margins(backbone, classes, phrases, templates),
    )
