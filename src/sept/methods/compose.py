"""A run's method: one prompt learner + regularisers + an optional head, as one module.

Each training step runs *one* text-tower forward for the class prompts and every regulariser's
extra texts (:meth:`ComposedMethod.training_loss`); the loss is the head's loss (or plain
cross-entropy on the similarity logits) plus each regulariser's term. Only the components'
parameters live in this module: the frozen backbone is held by reference, outside
``state_dict``, so ``learned_state()`` is exactly what a checkpoint stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from sept.errors import ConfigError
from sept.methods.base import Head, PromptLearner, Regularizer, Step, TextRequest
from sept.methods.registry import MethodSpec, component_class, parse_method

if TYPE_CHECKING:
    from sept.backbones.base import Backbone


def similarity_logits(audio: torch.Tensor, class_feats: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * cos``: audio [B, D] (normalised here) against class features [C, D] or [B, C, D] -> [B, C]."""
    audio = F.normalize(audio.to(class_feats.dtype), dim=-1)
    if class_feats.dim() == 3:
        return scale * torch.einsum("bd,bcd->bc", audio, class_feats)
    return scale * audio @ class_feats.t()


class ComposedMethod(nn.Module):
    """``learner``, ``regularizers`` (ModuleDict by name) and ``head`` (or None)."""

    def __init__(
        self,
        spec: MethodSpec,
        learner: PromptLearner,
        regularizers: dict[str, Regularizer],
        head: Head | None,
        logit_scale: float,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.learner = learner
        self.regularizers = nn.ModuleDict(regularizers)
        self.head = head
        self.logit_scale = float(logit_scale)
        self.train_classnames: list[str] = []
        self._backbone_ref: list[Backbone] = []

    @property
    def backbone(self) -> Backbone:
        return self._backbone_ref[0]

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        """Create every component's parameters and frozen quantities for ``train_classnames``."""
        self._backbone_ref[:] = [backbone]
        self.train_classnames = list(train_classnames)
        self.learner.setup(backbone, self.train_classnames)
        for reg in self.regularizers.values():
            reg.setup(self.learner, backbone, self.train_classnames)
        if self.head is not None:
            self.head.setup(backbone, self.train_classnames)

    # ---- parameters ----------------------------------------------------------------------------
    def learned_state(self) -> dict[str, torch.Tensor]:
        """Every learned parameter by name (``learner.ctx``, ``head.linear.weight``...), detached."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def load_learned_state(self, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Load ``learned_state()`` tensors; names and shapes must match exactly.

        Anything else raises :class:`~sept.errors.ConfigError` (a ``ValueError``) naming ``source``,
        the missing or unexpected names and any shape that differs; nothing is loaded then.
        """
        own = dict(self.named_parameters())
        missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise ConfigError(
                f"{source} does not match method {self.spec.name!r}: missing {missing or 'none'}, "
                f"unexpected {unexpected or 'none'}"
            )
        wrong = [
            f"{name} has shape {tuple(tensors[name].shape)}, expected {tuple(p.shape)}"
            for name, p in own.items()
            if p.shape != tensors[name].shape
        ]
        if wrong:  # checked for every tensor before any is copied: a refused file changes nothing
            raise ConfigError(f"{source} does not match method {self.spec.name!r}: {'; '.join(wrong)}")
        with torch.no_grad():
            for name, p in own.items():
                p.copy_(tensors[name].to(p.device, p.dtype))

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser groups: prompt (and regulariser) parameters at ``lr``, the head's at ``lr * lr_mult``.

        Each group carries ``lr_mult`` so a schedule can scale the base rate per group.
        """
        groups = []
        base = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("head.")]
        if base:
            groups.append({"params": base, "lr": lr, "lr_mult": 1.0, "name": "prompt"})
        if self.head is not None:
            head = [p for p in self.head.parameters() if p.requires_grad]
            if head:
                mult = float(self.head.lr_mult)
                groups.append({"params": head, "lr": lr * mult, "lr_mult": mult, "name": "head"})
        return groups

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    # ---- training ----------------------------------------------------------------------------
    def training_loss(
        self,
        audio: torch.Tensor,
        labels: torch.Tensor,
        classnames: Sequence[str] | None = None,
        *,
        epoch: int = 0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (``ce`` or the head's name, then each regulariser by name).

        audio: [B, D] features (unnormalised is fine: similarities normalise them); labels: [B] indices
        into ``classnames`` (default: training classes).
        """
        classnames = list(classnames if classnames is not None else self.train_classnames)
        requests = [TextRequest(tuple(classnames), "classes", shift=self.learner.conditional)]
        slots: dict[str, int] = {}
        for name, reg in self.regularizers.items():
            req = reg.extra_texts(classnames, generator)
            if req is not None:
                slots[name] = len(requests)
                requests.append(req)
        raw_text = self.head is not None and self.head.uses_raw_text
        if raw_text:  # one forward: the head takes the raw class features, the rest normalised ones
            raws = self.learner.encode_raw(requests, audio)
            feats = [F.normalize(f, dim=-1) for f in raws]
        else:
            feats = self.learner.encode(requests, audio)
        class_feats = feats[0]
        logits = similarity_logits(audio, class_feats, self.logit_scale)
        step = Step(
            audio=audio,
            labels=labels,
            class_feats=class_feats,
            logits=logits,
            logit_scale=self.logit_scale,
            classnames=classnames,
            extras={name: feats[i] for name, i in slots.items()},
            epoch=epoch,
            generator=generator,
            class_feats_raw=raws[0] if raw_text else None,
        )
        parts: dict[str, torch.Tensor] = {}
        if self.head is not None:
            parts[self.head.name] = self.head.loss(step)
        else:
            parts["ce"] = F.cross_entropy(logits.float(), labels)
        for name, reg in self.regularizers.items():
            parts[name] = reg.loss(step)
        total = torch.stack([p.float() for p in parts.values()]).sum()
        return total, parts

    # ---- inference ---------------------------------------------------------------------------
    def class_features(self, classnames: Sequence[str], audio: torch.Tensor | None = None) -> torch.Tensor:
        """[C, D] (or [B, C, D] for a conditional learner, which needs ``audio``)."""
        return self.learner.class_features(classnames, audio if self.learner.conditional else None)

    def logits(
        self, audio: torch.Tensor, classnames: Sequence[str], class_feats: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Test-time logits [B, C] for audio [B, D] over ``classnames`` (head fused where it applies).

        ``class_feats`` from :meth:`class_features` may be passed to reuse them across batches
        (not for a conditional learner, whose class features depend on the clip).
        """
        if class_feats is None or self.learner.conditional:
            class_feats = self.class_features(classnames, audio)
        sim = similarity_logits(audio, class_feats, self.logit_scale)
        if self.head is not None:
            sim = self.head.logits(audio, class_feats, sim, classnames)
        return sim.float()

    def eval_notes(self, classnames: Sequence[str]) -> list[str]:
        """What a result should state about evaluating on ``classnames`` (fallbacks, ignored head)."""
        notes = self.learner.eval_notes(classnames)
        return notes + (self.head.eval_notes(classnames) if self.head is not None else [])


def build_method(
    method: str | MethodSpec,
    backbone: Backbone,
    train_classnames: Sequence[str],
    *,
    options: dict[str, Any] | None = None,
    logit_scale: float | None = None,
    seed: int = 0,
) -> ComposedMethod:
    """Build and set up ``method`` for ``train_classnames``; parameter init is seeded by ``seed``.

    ``options`` maps component names to their options dataclasses (defaults where absent).
    The global RNG is left as it was. The module is moved to the backbone's device.
    """
    spec = method if isinstance(method, MethodSpec) else parse_method(method)
    options = options or {}

    def make(kind: str, name: str) -> Any:
        cls = component_class(kind, name)
        return cls(options.get(name)) if options.get(name) is not None else cls()

    learner = make("learner", spec.learner)
    regs = {name: make("regularizer", name) for name in spec.regularizers}
    head = make("head", spec.head) if spec.head else None
    scale = float(logit_scale if logit_scale is not None else backbone.default_logit_scale)
    composed = ComposedMethod(spec, learner, regs, head, scale)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        composed.setup(backbone, train_classnames)
    return composed.to(backbone.device)
