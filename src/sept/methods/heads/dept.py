"""DePT's decoupled head: channel-wise scale-and-shift plus a linear classifier over training classes.

Following DePT's code (Koorye/DePT, ``trainers/elp_coop.py``): a scale-and-shift (init 1 and 0)
on the audio features and another on the text features feed one linear layer over the training
classes; in training the head sees both the audio features and the class features of the
labels (``cat([t_y, a])`` with labels ``cat([y, y])``). As in that code, the head takes the
encoders' *unnormalised* outputs (``Backbone.embed_audio_inputs_raw`` / ``encode_text_embeds_raw``;
only the similarity logits use normalised features). With ``w = weight``:

- loss: ``(1 - w) * CE(similarity logits) + w * CE(head logits)`` (0.3 / 0.7 by default);
- test on the training classes: logits are fused, ``(1 - w) * sim_logits + w * head_logits``
  (on logits, as DePT's code does, not on probabilities);
- test on any set with a class the head was not trained on: the similarity logits only.

The head's parameters train at ``lr_mult`` (6.5) times the prompt's learning rate.

Recipe (``PRESETS``, DePT's ``train.py`` and ``configs/trainers/ExtrasLinearProbeCoOp/
vit_b16_ep10_bs4_lr35.yaml``): SGD lr 0.0035, batch 4, 10 epochs, cosine after 1 warm-up epoch at
1e-5; with CoOp 16 context vectors initialised randomly (``TRAINER.COOP.N_CTX=16``, ``CTX_INIT=""``);
with KgCoOp ``kg.weight`` 2.0 (``configs/trainers/KgCoOp/vit_b16_ep10_ctxv1_bs4_lr35.yaml``, ``W: 2.0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sept.methods.base import Head, Step
from sept.methods.options import option

if TYPE_CHECKING:
    from sept.backbones.base import Backbone


@dataclass
class DeptOptions:
    weight: float = option(
        0.7, "w: head share of the loss and of the fused test logits (DePT: 0.7)", ge=0, le=1
    )
    lr_mult: float = option(6.5, "learning-rate multiplier of the head (DePT: 6.5)", gt=0)


class ScaleShift(nn.Module):
    """``x * scale + shift`` channel-wise; scale [D] init 1, shift [D] init 0."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class DeptHead(Head):
    """``audio_ss``, ``text_ss``: ScaleShift(D); ``linear``: Linear(D, C_train)."""

    name = "dept"
    Options = DeptOptions
    uses_raw_text = True
    PRESETS = {  # noqa: RUF012 - class-level data
        protocol: {"optim.lr": 0.0035, "optim.batch_size": 4, "optim.epochs": 10}
        for protocol in ("base2new", "xd")
    }
    HOST_PRESETS = {  # noqa: RUF012 - class-level data
        "coop": {p: {"learner.n_ctx": 16, "learner.ctx_init": None} for p in ("base2new", "xd")},
        "kgcoop": {p: {"kg.weight": 2.0} for p in ("base2new", "xd")},
    }

    def __init__(self, options: DeptOptions | None = None) -> None:
        super().__init__(options or DeptOptions())
        self.lr_mult = self.options.lr_mult
        self.train_classnames: list[str] = []

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        super().setup(backbone, train_classnames)
        self.train_classnames = list(train_classnames)
        self._index = {c: i for i, c in enumerate(self.train_classnames)}
        dim = backbone.embed_dim
        self.audio_ss = ScaleShift(dim)
        self.text_ss = ScaleShift(dim)
        self.linear = nn.Linear(dim, len(self.train_classnames))

    def _columns(self, classnames: Sequence[str]) -> list[int] | None:
        cols = [self._index.get(c, -1) for c in classnames]
        return None if min(cols, default=-1) < 0 else cols

    def loss(self, step: Step) -> torch.Tensor:
        cols = self._columns(step.classnames)
        if cols is None:
            raise ValueError("dept: training classes must be the classes the head was built for")
        w = self.options.weight
        sim_loss = F.cross_entropy(step.logits, step.labels)
        feats = step.class_feats_raw if step.class_feats_raw is not None else step.class_feats
        if feats.dim() == 3:  # conditional learner: class features of each clip [B, C, D]
            text = feats[torch.arange(feats.shape[0], device=feats.device), step.labels]
        else:
            text = feats[step.labels]
        head_in = torch.cat([self.text_ss(text), self.audio_ss(step.audio.to(text.dtype))])
        head_labels = torch.as_tensor(cols, device=step.labels.device)[step.labels].repeat(2)
        head_loss = F.cross_entropy(self.linear(head_in), head_labels)
        return (1 - w) * sim_loss + w * head_loss

    def logits(
        self,
        audio: torch.Tensor,
        class_feats: torch.Tensor,
        sim_logits: torch.Tensor,
        classnames: Sequence[str],
    ) -> torch.Tensor:
        cols = self._columns(classnames)
        if cols is None:
            return sim_logits
        w = self.options.weight
        head = self.linear(self.audio_ss(audio.to(self.linear.weight.dtype)))[:, cols]
        return (1 - w) * sim_logits + w * head.to(sim_logits.dtype)

    def eval_notes(self, classnames: Sequence[str]) -> list[str]:
        if self._columns(classnames) is not None:
            return [
                f"dept: head logits fused ({self.options.weight} head + {1 - self.options.weight:g} similarity)"
            ]
        return ["dept: head ignored (classes outside its training classes); similarity logits only"]
