"""KgCoOp's knowledge-guided regulariser: keep tuned class features near hand-crafted ones.

``L_kg = w * (1 - mean_c cos(t_c, t_c^hand))`` with ``t_c^hand = g(template(readable c))`` the
frozen feature of a hand-written prompt (computed once per run under ``torch.inference_mode()``)
and ``w = 8`` (KgCoOp's default). For a conditional learner (CoCoOp) the mean also runs over the
clips of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from sept.errors import ConfigError
from sept.methods.base import PromptLearner, Regularizer, Step, frozen_text_features, readable_name
from sept.methods.options import option

if TYPE_CHECKING:
    from sept.backbones.base import Backbone


@dataclass
class KgOptions:
    weight: float = option(8.0, "w: weight of the regulariser (KgCoOp: 8.0)", ge=0)
    template: str = option("the sound of a {}.", "hand-crafted prompt; '{}' is the readable class name")

    def validate(self, section: str) -> None:
        if self.template.count("{}") != 1:
            raise ConfigError(f"{section}.template: {self.template!r} must contain exactly one '{{}}'")


class KgRegularizer(Regularizer):
    """Holds ``hand`` [C_train, D], the frozen template features of the training classes."""

    name = "kg"
    Options = KgOptions

    def __init__(self, options: KgOptions | None = None) -> None:
        super().__init__(options or KgOptions())
        self._hand: dict[str, torch.Tensor] = {}

    def setup(self, learner: PromptLearner, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        super().setup(learner, backbone, train_classnames)
        texts = [self.options.template.replace("{}", readable_name(c)) for c in train_classnames]
        feats = frozen_text_features(backbone, texts)
        self._hand = dict(zip(train_classnames, feats, strict=True))

    def hand_features(self, classnames: Sequence[str], device: torch.device) -> torch.Tensor:
        """[C, D] frozen hand-crafted features (computed now for a class not seen in setup)."""
        missing = [c for c in classnames if c not in self._hand]
        if missing:
            texts = [self.options.template.replace("{}", readable_name(c)) for c in missing]
            self._hand.update(zip(missing, frozen_text_features(self.backbone, texts), strict=True))
        return torch.stack([self._hand[c] for c in classnames]).to(device)

    def loss(self, step: Step) -> torch.Tensor:
        feats = step.class_feats
        hand = self.hand_features(step.classnames, feats.device).to(feats.dtype)
        cos = F.cosine_similarity(feats, hand.expand_as(feats), dim=-1, eps=1e-7)
        return self.options.weight * (1.0 - cos.mean())
