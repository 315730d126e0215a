"""PALM: no prompt tokens; a learnable vector and gate per training class in the joint space.

``t_c = normalise((1 - sigmoid(l_c)) * g(c) + sigmoid(l_c) * u_c)`` with ``g(c)`` the frozen
feature of the bare (readable) class name; no gradient goes through the text tower. ``u`` is
initialised N(0, 0.02) and ``l`` uniform in [0, 1) as in PALM's code. A class it was not
trained on has no ``u_c``: it falls back to ``g(c)`` and :meth:`eval_notes` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sept.methods.base import FrozenTextCache, PromptLearner, TextRequest, prompt_form
from sept.methods.options import option

if TYPE_CHECKING:
    from sept.backbones.base import Backbone


@dataclass
class PalmOptions:
    init_std: float = option(0.02, "std of the N(0, std) initialisation of the per-class vectors", gt=0)


class PalmLearner(PromptLearner):
    """Per-class ``u`` [C_train, D] and gate logits ``gate`` [C_train]."""

    name = "palm"
    Options = PalmOptions
    #: PALM's code (main.py, utils/utils.py): SGD lr 0.05, momentum 0.9, no weight decay, no schedule,
    #: 50 epochs, batch 16, in every protocol
    PRESETS = {  # noqa: RUF012 - class-level data
        "*": {
            "optim.lr": 0.05,
            "optim.weight_decay": 0.0,
            "optim.scheduler": "none",
            "optim.warmup_epochs": 0,
            "optim.epochs": 50,
            "optim.batch_size": 16,
        }
    }

    def __init__(self, options: PalmOptions | None = None) -> None:
        super().__init__(options or PalmOptions())
        self._cache = FrozenTextCache()
        self.train_classnames: list[str] = []

    def class_text(self, name: str, kind: str = "classes") -> str:
        return prompt_form(name, kind)

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        super().setup(backbone, train_classnames)
        self.train_classnames = list(train_classnames)
        self._index = {c: i for i, c in enumerate(self.train_classnames)}
        u = torch.empty(len(self.train_classnames), backbone.embed_dim)
        nn.init.normal_(u, std=self.options.init_std)
        self.u = nn.Parameter(u)
        self.gate = nn.Parameter(torch.rand(len(self.train_classnames)))

    def _frozen(self, texts: Sequence[str], kind: str) -> torch.Tensor:
        feats = self._cache.get(self.backbone, [self.class_text(t, kind) for t in texts])
        return feats.to(self.u.device)

    def encode(
        self, requests: Sequence[TextRequest], audio: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        out = []
        for req in requests:
            g = self._frozen(req.texts, req.kind)
            if req.kind != "classes":
                out.append(g)
                continue
            idx = [self._index.get(c, -1) for c in req.texts]
            known = torch.tensor([i >= 0 for i in idx], device=g.device)
            rows = torch.tensor([max(i, 0) for i in idx], device=g.device)
            lam = torch.sigmoid(self.gate[rows]).unsqueeze(1).to(g.dtype)
            mixed = F.normalize((1 - lam) * g + lam * self.u[rows].to(g.dtype), dim=-1)
            out.append(torch.where(known.unsqueeze(1), mixed, g))
        return out

    def eval_notes(self, classnames: Sequence[str]) -> list[str]:
        unseen = [c for c in classnames if c not in self._index]
        if not unseen:
            return []
        return [
            f"palm: {len(unseen)} of {len(classnames)} classes were not trained on and use the frozen "
            f"class-name feature g(c) (no learned vector): {', '.join(unseen)}"
        ]
