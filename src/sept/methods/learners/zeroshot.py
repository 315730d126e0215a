"""Zero-shot: hand-written templates through the frozen text tower; nothing trains.

``t_c = normalise(mean_t g(template_t(readable c)))``. Arbitrary phrases go through the same
templates. Features are computed once per text under ``torch.inference_mode()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sept.errors import ConfigError
from sept.evaluation.zeroshot import DEFAULT_TEMPLATES
from sept.methods.base import FrozenTextCache, PromptLearner, TextRequest, prompt_form


@dataclass
class ZeroShotOptions:
    templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_TEMPLATES),
        metadata={
            "doc": "templates with one '{}' for the class name; features averaged (default as `sept eval`)"
        },
    )

    def validate(self, section: str) -> None:
        if not self.templates:
            raise ConfigError(f"{section}.templates must list at least one template")
        for t in self.templates:
            if t.count("{}") != 1:
                raise ConfigError(f"{section}.templates: {t!r} must contain exactly one '{{}}'")


class ZeroShotLearner(PromptLearner):
    """No parameters: class features are the (template-averaged) frozen text features."""

    name = "zeroshot"
    Options = ZeroShotOptions
    has_parameters = False

    def __init__(self, options: ZeroShotOptions | None = None) -> None:
        super().__init__(options or ZeroShotOptions())
        self._cache = FrozenTextCache()

    def class_text(self, name: str, kind: str = "classes") -> str:
        return prompt_form(name, kind)

    def encode(
        self, requests: Sequence[TextRequest], audio: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        out = []
        templates = self.options.templates
        for req in requests:
            words = [self.class_text(t, req.kind) for t in req.texts]
            texts = [tpl.replace("{}", w) for w in words for tpl in templates]
            feats = self._cache.get(self.backbone, texts).reshape(len(words), len(templates), -1)
            out.append(F.normalize(feats.mean(dim=1), dim=-1))
        return out
