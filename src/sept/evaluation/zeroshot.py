"""Zero-shot classification: class features from hand-written templates, cosine logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sept.backbones.base import Backbone

#: the default zero-shot template (audio analogue of CLIP's "a photo of a {}.")
DEFAULT_TEMPLATES = ("the sound of {}.",)

#: T hand-written templates used for template ensembles and SEPT's margins
ENSEMBLE_TEMPLATES = (
    "the sound of {}.",
    "a recording of {}.",
    "this is the sound of {}.",
    "{} can be heard.",
    "an audio clip of {}.",
)


def fill_template(template: str, name: str) -> str:
    if "{}" not in template:
        raise ValueError(f"template {template!r} has no '{{}}' placeholder for the class name")
    return template.replace("{}", name)


def zeroshot_class_features(
    backbone: Backbone, names: list[str], templates: tuple[str, ...] | list[str]
) -> torch.Tensor:
    """Class features [C, D]: per class, the normalised mean over templates of normalised text features."""
    if not templates:
        raise ValueError("at least one template is needed")
    texts = [fill_template(t, n) for n in names for t in templates]
    feats = backbone.embed_text(texts).reshape(len(names), len(templates), -1)
    return F.normalize(feats.mean(dim=1), dim=-1)


def cosine_logits(audio: torch.Tensor, classes: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * cos`` logits [N, C] for normalised audio [N, D] and class features [C, D]."""
    return scale * audio.to(classes.dtype) @ classes.T


def predict(audio: torch.Tensor, classes: torch.Tensor, scale: float, batch_size: int = 4096) -> torch.Tensor:
    """Predicted class indices [N] for audio features [N, D] and class features [C, D]."""
    preds = [
        cosine_logits(audio[i : i + batch_size], classes, scale).argmax(dim=-1)
        for i in range(0, len(audio), batch_size)
    ]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
