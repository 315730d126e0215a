"""SEPT's margins, from the frozen text tower (no prompt), computed once and cached on disk.

``m[i, p] = (1/T) * sum_t || g(tau_t(c_i)) - g(tau_t(phrase_p)) ||_2`` over T templates, for every
training class i and every neighbour phrase p (of any class). Shape [C, P].
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from sept.utils.hashing import hash_json
from sept.utils.paths import cache_root

if TYPE_CHECKING:
    from sept.backbones.base import Backbone

log = logging.getLogger(__name__)

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
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from sept.utils.atomic import atomic_path

    key = hash_json(
        {
            "backbone": backbone.identity,
            "classes": list(classes),
            "phrases": list(phrases),
            "templates": list(templates),
        }
    )
    path = cache_root() / "sept-margins" / f"{key}.safetensors"
    expected = (len(classes), len(phrases))
    if path.exists():
        try:
            margin = load_file(str(path))["margin"]
            if tuple(margin.shape) == expected and torch.isfinite(margin).all():
                return margin
        except (SafetensorError, OSError, KeyError) as exc:
            log.warning("recomputing SEPT margins: cannot read %s (%s)", path, exc)
    margin = compute_margins(backbone, classes, phrases, templates)
    with atomic_path(path) as tmp:
        save_file({"margin": margin.contiguous()}, str(tmp))
    return margin
