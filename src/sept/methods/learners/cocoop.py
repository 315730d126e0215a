"""CoCoOp: CoOp plus a meta-net that shifts the context per clip.

``pi(a) = Linear(D, D/16) - ReLU - Linear(D/16, E)`` on the normalised audio feature; the context
for clip ``a`` is ``V_m + pi(a)`` for every m, so class features depend on the clip. All B clips x
C classes go through the text tower in one batched forward of B*C prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sept.methods.learners.coop import CoOpLearner, CoOpOptions
from sept.methods.options import option

if TYPE_CHECKING:
    from sept.backbones.base import Backbone


@dataclass
class CoCoOpOptions(CoOpOptions):
    """CoOp's options plus the meta-net width (hidden = D // meta_reduction, at least 1)."""

    meta_reduction: int = option(16, "meta-net hidden width is D // meta_reduction", ge=1)


class CoCoOpLearner(CoOpLearner):
    """Context ``ctx`` [M, E] plus ``meta_net``: [B, D] -> [B, E] added to every vector."""

    name = "cocoop"
    Options = CoCoOpOptions
    conditional = True
    #: CoCoOp's code (configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml): batch 1, 10 epochs
    #: (lr 0.002, cosine, 1 warm-up epoch at 1e-5: the OptimConfig defaults)
    PRESETS = {  # noqa: RUF012 - class-level data
        "base2new": {"optim.batch_size": 1, "optim.epochs": 10},
        "xd": {"optim.batch_size": 1, "optim.epochs": 10},
    }

    def __init__(self, options: CoCoOpOptions | None = None) -> None:
        super().__init__(options or CoCoOpOptions())

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        super().setup(backbone, train_classnames)
        dim = backbone.embed_dim
        hidden = max(1, dim // self.options.meta_reduction)
        self.meta_net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, backbone.token_dim)
        )

    def shifted_context(self, audio: torch.Tensor) -> torch.Tensor:
        """``ctx + pi(normalise(audio))``: [B, M, E] for audio [B, D]."""
        shift = self.meta_net(F.normalize(audio.to(self.ctx.dtype), dim=-1))
        return self.ctx.unsqueeze(0) + shift.unsqueeze(1)
