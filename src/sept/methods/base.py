"""The three kinds of method components and what they exchange.

A run is one :class:`PromptLearner` (owns the learnable prompt and turns texts into features
through the frozen text tower), any number of :class:`Regularizer` s (extra loss terms, e.g.
KgCoOp's) and at most one :class:`Head` (e.g. DePT's linear head). They meet in
:class:`sept.methods.compose.ComposedMethod`, which runs one batched text-tower forward per step
for the class prompts *and* every regularizer's extra texts, then hands both to the losses as a
:class:`Step`.

Shapes: B clips in a batch, C classes, N extra texts, D joint-space dim, E token-embedding dim.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from sept.data.names import readable_name

if TYPE_CHECKING:
    from sept.backbones.base import Backbone

__all__ = [
    "Component",
    "FrozenTextCache",
    "Head",
    "PromptLearner",
    "Regularizer",
    "Step",
    "TextRequest",
    "frozen_text_features",
    "prompt_form",
    "readable_name",
]


@dataclass(frozen=True)
class TextRequest:
    """Texts to encode through the learnable prompt in one batched forward.

    ``texts`` are raw phrases (class names or neighbour phrases); the learner puts each through
    :func:`prompt_form` (class names in their readable form, phrases as written) and its template. ``kind="classes"`` marks class names (PALM keeps per-class
    vectors for its training classes); ``shift`` asks a conditional learner (CoCoOp) to add the
    per-clip meta-net shift, which makes the result [B, N, D] instead of [N, D].
    """

    texts: tuple[str, ...]
    kind: str = "phrases"
    shift: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("classes", "phrases"):
            raise ValueError(f"TextRequest.kind must be 'classes' or 'phrases', got {self.kind!r}")


def prompt_form(text: str, kind: str) -> str:
    """The exact words a text contributes to a prompt: the one rule learners and SEPT's margins share.

    ``kind="classes"``: the readable class name (:func:`sept.data.names.readable_name`);
    ``kind="phrases"``: the phrase as written, runs of whitespace collapsed (a neighbour phrase keeps
    its capitals: "Peking opera singing" stays as it is).
    """
    if kind == "classes":
        return readable_name(text)
    return " ".join(text.split())


@dataclass
class Step:
    """Everything a loss term sees for one training batch.

    audio: [B, D] the backbone's audio features, unnormalised where it exposes them (losses that
    need cosines normalise them); labels: [B] long, indices into ``classnames``;
    class_feats: [C, D] or [B, C, D] (conditional learners) normalised class features;
    class_feats_raw: the same before normalisation (set when the head asks for them, else None);
    logits: [B, C] similarity logits ``logit_scale * cos``; extras: per regularizer name, the
    features of the texts it asked for ([N, D], or [B, N, D] when it asked for the shift);
    generator: seeded per (run seed, epoch) for any random choice a loss term makes.
    """

    audio: torch.Tensor
    labels: torch.Tensor
    class_feats: torch.Tensor
    logits: torch.Tensor
    logit_scale: float
    classnames: list[str]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    epoch: int = 0
    class_feats_raw: torch.Tensor | None = None
    generator: torch.Generator | None = None


class Component(nn.Module, ABC):
    """Common base: a registry name, an options dataclass and a non-registered backbone handle.

    The backbone is kept out of ``state_dict`` (only learned parameters are ever saved).
    """

    #: the name used on the command line and as the config section
    name: ClassVar[str] = ""
    #: dataclass of this component's options, with documented defaults; ``None`` if it has none
    Options: ClassVar[type | None] = None

    def __init__(self, options: Any = None) -> None:
        super().__init__()
        self.options = options
        self._backbone_ref: list[Backbone] = []

    @property
    def backbone(self) -> Backbone:
        if not self._backbone_ref:
            raise RuntimeError(f"{type(self).__name__}.setup(backbone, ...) has not been called")
        return self._backbone_ref[0]

    def _attach(self, backbone: Backbone) -> None:
        self._backbone_ref[:] = [backbone]

    def learned_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


class PromptLearner(Component):
    """Owns the learnable prompt; maps texts (and, if conditional, audio) to class features."""

    #: class features depend on the clip (CoCoOp): ``encode`` needs ``audio`` for shifted requests
    conditional: ClassVar[bool] = False
    #: whether ``setup`` creates learnable parameters (False: nothing to train, e.g. zero-shot)
    has_parameters: ClassVar[bool] = True
    #: reference-code defaults per protocol ("fewshot", "base2new", "xd" or "*"): {"optim.lr": ...}
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        """Create the parameters (dims come from ``backbone``); called once, before training."""
        self._attach(backbone)

    @abstractmethod
    def encode(
        self, requests: Sequence[TextRequest], audio: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Normalised features for each request, computed in one text-tower forward where possible.

        Returns one tensor per request: [N, D], or [B, N, D] for a shifted request of a
        conditional learner (``audio`` [B, D] then required).
        """

    def encode_raw(
        self, requests: Sequence[TextRequest], audio: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Like :meth:`encode`, before the final L2 normalisation where the learner has such features
        (prompted text-tower outputs, :meth:`Backbone.encode_text_embeds_raw`); default: :meth:`encode`."""
        return self.encode(requests, audio)

    def class_text(self, name: str, kind: str = "classes") -> str:
        """The text after the learned context: ``"{prompt_form(name, kind)}."``."""
        return f"{prompt_form(name, kind)}."

    # ---- conveniences ------------------------------------------------------------------------
    def class_features(self, classnames: Sequence[str], audio: torch.Tensor | None = None) -> torch.Tensor:
        """Class features [C, D], or [B, C, D] for a conditional learner given ``audio`` [B, D]."""
        shift = self.conditional and audio is not None
        return self.encode([TextRequest(tuple(classnames), "classes", shift)], audio)[0]

    def encode_texts(
        self, texts: Sequence[str], audio: torch.Tensor | None = None, shift: bool = False
    ) -> torch.Tensor:
        """Arbitrary phrases through the same prompt: [N, D] (or [B, N, D] with ``shift``)."""
        return self.encode([TextRequest(tuple(texts), "phrases", shift and self.conditional)], audio)[0]

    def eval_notes(self, classnames: Sequence[str]) -> list[str]:
        """Anything a result should say about evaluating on ``classnames`` (e.g. a fallback)."""
        return []


class Regularizer(Component):
    """An extra loss term. ``extra_texts`` declares texts to encode in the step's shared forward."""

    def setup(self, learner: PromptLearner, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        """Precompute frozen quantities (under ``torch.inference_mode()``)."""
        self._attach(backbone)

    def extra_texts(self, classnames: Sequence[str], generator: torch.Generator | None) -> TextRequest | None:
        """Texts this regularizer needs encoded through the prompt this step (``None``: none)."""
        return None

    @abstractmethod
    def loss(self, step: Step) -> torch.Tensor:
        """A scalar loss, already weighted (it is added to the total as is)."""


class Head(Component):
    """Replaces the host's classification loss and fuses its own logits at test time."""

    #: learning-rate multiplier of the head's parameters relative to the prompt's
    lr_mult: float = 1.0
    #: whether :meth:`loss` needs ``Step.class_feats_raw`` (the learner's unnormalised class features)
    uses_raw_text: ClassVar[bool] = False
    #: reference-code defaults per protocol (``{"base2new": {"optim.lr": ...}}``), layered after the
    #: learner's and a named combination's presets
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: further presets per host (the method's first name, e.g. ``kgcoop``), layered last
    HOST_PRESETS: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        self._attach(backbone)

    @abstractmethod
    def loss(self, step: Step) -> torch.Tensor:
        """The classification loss (replaces plain cross-entropy on ``step.logits``)."""

    @abstractmethod
    def logits(
        self,
        audio: torch.Tensor,
        class_feats: torch.Tensor,
        sim_logits: torch.Tensor,
        classnames: Sequence[str],
    ) -> torch.Tensor:
        """Test-time logits [B, C] for ``classnames`` from the similarity logits [B, C]."""

    def eval_notes(self, classnames: Sequence[str]) -> list[str]:
        return []


def frozen_text_features(backbone: Backbone, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised frozen-model features [N, D] of plain texts, usable in autograd graphs.

    Computed under ``torch.inference_mode()`` and cloned out of it (inference tensors cannot be
    saved for backward).
    """
    feats = backbone.embed_text(list(texts), batch_size=batch_size)
    return feats.clone().float()


class FrozenTextCache:
    """Frozen features of texts, computed once each (keyed by text) and kept on one device."""

    def __init__(self) -> None:
        self._feats: dict[str, torch.Tensor] = {}

    def get(self, backbone: Backbone, texts: Sequence[str]) -> torch.Tensor:
        """[N, D] features for ``texts`` (missing ones computed in one batch)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._feats))
        if missing:
            feats = frozen_text_features(backbone, missing)
            self._feats.update(zip(missing, feats, strict=True))
        if not texts:
            return torch.zeros(0, backbone.embed_dim, device=backbone.device)
        return torch.stack([self._feats[t] for t in texts])
