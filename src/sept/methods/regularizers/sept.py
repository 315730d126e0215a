"""SEPT: the margin-constrained semantic expansion loss (docs/METHOD.md, "SEPT: semantic expansion").

For the C training classes (readable names c_i) and their neighbour phrases p_j^n, flattened into
P (owner j, phrase) pairs, with T hand-written templates tau_t:

    z_i   = normalise(g([prompt; c_i]))        the host's own class features            [C, D]
    q_j^n = normalise(g([prompt; p_j^n]))      neighbours through the same prompt        [P, D]
    m_{i,j,n} = (1/T) sum_t || g(tau_t(c_i)) - g(tau_t(p_j^n)) ||_2
                                               frozen text tower, no prompt; once        [C, P]
    L_intra = mean_{i,n}        relu( ||z_i - q_i^n|| - m_{i,i,n} )     pull toward own neighbours
    L_inter = mean_{i,j!=i,n}   relu( m_{i,j,n} - ||z_i - q_j^n|| )     push from other classes' ones
    L_se    = L_intra + L_inter,        and this regularizer returns  lambda * L_se.

Per step a random subset of the P neighbours is encoded (``per_step`` pairs, or ``per_class`` per
class); the means then run over the sampled pairs, an unbiased estimate of the means over all
pairs (``per_step: 0`` computes them exactly). The neighbours are encoded with the class prompts,
each group padded to its own longest text (one forward unless splitting saves tokens). Nothing changes at inference and no parameter is added.

Options left open by the paper, each documented in :class:`SeptOptions`: plain or squared hinge;
pairs over all training classes or only those in the batch; CoCoOp's per-clip shift on the
neighbours (on by default: for each clip, its shifted class features against the neighbours through
the same shifted prompt, the prompt CoCoOp classifies with; docs/METHOD.md, "CoCoOp and SEPT";
off: both sides through the unshifted context);
ablations ``intra: false``, ``inter: false``, ``margins: none`` (zero intra margin, mean inter margin).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from sept.methods.base import PromptLearner, Regularizer, Step, TextRequest, prompt_form
from sept.methods.options import ConfigError, option
from sept.methods.sept_margins import DEFAULT_MARGIN_TEMPLATES, frozen_margins

if TYPE_CHECKING:
    from sept.backbones.base import Backbone

log = logging.getLogger(__name__)


@dataclass
class SeptOptions:
    weight: float = option(1.0, "lambda: weight of L_se in L = L_host + lambda * L_se", ge=0)
    neighbors: str | None = option(
        None,
        "neighbour set: a shipped dataset name (`sept neighbors list`) or a JSON file; "
        "null: the run's dataset's shipped set, else the first shipped set that covers every training class "
        "(sept.neighbors.resolve; runs record the set used)",
    )
    num_neighbors: int | None = option(None, "use the first N phrases of each class (null: all)", ge=1)
    per_step: int | None = option(
        None,
        "neighbour phrases encoded per step, drawn uniformly from all (class, phrase) pairs; "
        "null: max(4, ceil(C / 8)), which keeps a step within 1.5x a CoOp step (benchmarks/README.md); "
        "0: all of them (the exact loss, slowest)",
        ge=0,
    )
    per_class: int | None = option(
        None, "instead of per_step: K phrases of every class per step (docs/METHOD.md's K)", ge=1
    )
    templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_MARGIN_TEMPLATES),
        metadata={"doc": "the T hand-written templates the margins average over ('{}' = the text)"},
    )
    margins: Literal["frozen", "none"] = option(
        "frozen", "frozen: m from the frozen model; none: zero intra margin, mean inter margin (ablation)"
    )
    intra: bool = option(True, "include L_intra (false: the inter-only ablation)")
    inter: bool = option(True, "include L_inter (false: the intra-only ablation)")
    hinge: Literal["plain", "squared"] = option("plain", "relu(x) or relu(x)^2")
    classes: Literal["all", "batch"] = option(
        "all", "anchor classes i: every training class, or only the classes of the batch's clips"
    )
    shift: bool = option(
        True,
        "CoCoOp: neighbours through each clip's shifted prompt, against that clip's class features "
        "(false: both through the unshifted context; benchmarks/README.md, 'SEPT recipes')",
    )

    def validate(self, section: str) -> None:
        if not self.templates:
            raise ConfigError(f"{section}.templates: at least one template is needed")
        for t in self.templates:
            if t.count("{}") != 1:
                raise ConfigError(f"{section}.templates: {t!r} must contain exactly one '{{}}'")
        if not (self.intra or self.inter):
            raise ConfigError(f"{section}: intra and inter are both off; the loss would be zero")


class SeptRegularizer(Regularizer):
    """lambda * (L_intra + L_inter) on the host's class features and prompted neighbours."""

    name = "sept"
    Options = SeptOptions

    def __init__(self, options: SeptOptions | None = None) -> None:
        super().__init__(options or SeptOptions())
        self.classnames: list[str] = []
        self.phrases: list[str] = []
        self.readable: list[str] = []
        self.owner = torch.zeros(0, dtype=torch.long)  # [P] class index of each phrase
        self.margin = torch.zeros(0, 0)  # [C, P]
        self.neighbor_source = ""

    # ---- setup: neighbours and frozen margins -------------------------------------------------
    def setup(self, learner: PromptLearner, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        super().setup(learner, backbone, train_classnames)
        opts: SeptOptions = self.options
        self.conditional = learner.conditional
        self.classnames = list(train_classnames)
        from sept.neighbors.resolve import resolve_neighbors

        resolved = resolve_neighbors(self.classnames, opts.neighbors)  # sept.neighbors.resolve's rule
        by_class = resolved.by_class
        self.neighbor_source = resolved.neighbor_set.origin
        phrases, owner = [], []
        for i, c in enumerate(self.classnames):
            chosen = by_class[c][: opts.num_neighbors] if opts.num_neighbors else by_class[c]
            phrases += chosen
            owner += [i] * len(chosen)
        self.phrases = phrases
        self.owner = torch.tensor(owner, dtype=torch.long)
        # the margins see exactly the words the prompted pass sees (sept.methods.base.prompt_form)
        readable = [prompt_form(c, "classes") for c in self.classnames]
        self.readable = readable
        margin = frozen_margins(
            backbone, readable, [prompt_form(p, "phrases") for p in phrases], opts.templates
        )
        if opts.margins == "none":
            own = self.owner.unsqueeze(0) == torch.arange(len(readable)).unsqueeze(1)
            mean_inter = margin[~own].mean() if (~own).any() else margin.new_tensor(0.0)
            margin = torch.where(own, torch.zeros_like(margin), mean_inter.expand_as(margin))
        self.margin = margin
        log.info(
            "sept: %d classes, %d neighbour phrases from %s, %d per step",
            len(readable),
            len(phrases),
            self.neighbor_source,
            self.pairs_per_step,
        )

    @property
    def pairs_per_step(self) -> int:
        """How many neighbour phrases one step encodes."""
        opts: SeptOptions = self.options
        total, classes = len(self.phrases), len(self.classnames)
        if opts.per_class is not None:
            return sum(min(opts.per_class, int((self.owner == i).sum())) for i in range(classes))
        if opts.per_step == 0:
            return total
        want = opts.per_step if opts.per_step is not None else max(4, math.ceil(classes / 8))
        return min(want, total)

    def sample(self, generator: torch.Generator | None) -> torch.Tensor:
        """Indices [M] of the neighbour phrases for this step (sorted)."""
        opts: SeptOptions = self.options
        total = len(self.phrases)
        if opts.per_class is not None:
            picks = []
            for i in range(len(self.classnames)):
                own = torch.nonzero(self.owner == i).flatten()
                k = min(opts.per_class, len(own))
                picks.append(own[torch.randperm(len(own), generator=generator)[:k]])
            return torch.cat(picks).sort().values
        m = self.pairs_per_step
        if m >= total:
            return torch.arange(total)
        return torch.randperm(total, generator=generator)[:m].sort().values

    # ---- per step ------------------------------------------------------------------------------
    def extra_texts(self, classnames: Sequence[str], generator: torch.Generator | None) -> TextRequest:
        self._check_classes(classnames)
        self._step_index = self.sample(generator)
        texts = tuple(self.phrases[i] for i in self._step_index.tolist())
        opts: SeptOptions = self.options
        if self.conditional and not opts.shift:
            # the host's class features carry the per-clip shift; SEPT compares the unshifted ones
            # (the class names in the form a class prompt uses, sent as phrases: kept as they are)
            texts = tuple(self.readable) + texts
        return TextRequest(texts, "phrases", shift=self.conditional and opts.shift)

    def _check_classes(self, classnames: Sequence[str]) -> None:
        if list(classnames) != self.classnames:
            raise ValueError(
                f"sept was set up for classes {self.classnames} but the step trains on {list(classnames)}"
            )

    def loss(self, step: Step) -> torch.Tensor:
        opts: SeptOptions = self.options
        extra = step.extras[self.name]
        idx = self._step_index
        num_classes = len(self.classnames)
        if self.conditional and not opts.shift:
            z, q = extra[:num_classes], extra[num_classes:]  # [C, D], [M, D]
        else:
            z, q = step.class_feats, extra  # [C, D] & [M, D], or [B, C, D] & [B, M, D] (shift)
        margin = self.margin.to(q.device, q.dtype)[:, idx.to(self.margin.device)]  # [C, M]
        owner = self.owner[idx].to(q.device)  # [M]
        own = owner.unsqueeze(0) == torch.arange(num_classes, device=q.device).unsqueeze(1)  # [C, M]
        anchors = torch.ones(num_classes, dtype=torch.bool, device=q.device)
        if opts.classes == "batch":
            anchors = torch.zeros_like(anchors)
            anchors[step.labels.to(q.device)] = True
        dist = semantic_distances(z, q)  # [C, M] or [B, C, M]
        total = q.new_zeros(())
        if opts.intra:
            total = total + _hinge_mean(dist - margin, own & anchors.unsqueeze(1), opts.hinge)
        if opts.inter:
            total = total + _hinge_mean(margin - dist, ~own & anchors.unsqueeze(1), opts.hinge)
        return opts.weight * total


def semantic_distances(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """L2 distances between normalised features: z [..., C, D], q [..., M, D] -> [..., C, M].

    ``||z - q|| = sqrt(2 - 2 cos)``, clamped away from 0 so the gradient stays finite.
    """
    cos = z @ q.transpose(-1, -2)
    return torch.sqrt(torch.clamp(2.0 - 2.0 * cos, min=1e-8))


def _hinge_mean(x: torch.Tensor, mask: torch.Tensor, hinge: str) -> torch.Tensor:
    """Mean of relu(x) (or relu(x)^2) over the entries where ``mask`` [C, M] holds (0 if none)."""
    h = F.relu(x)
    if hinge == "squared":
        h = h * h
    mask = mask.expand_as(h)
    count = mask.sum()
    if count == 0:
        return h.sum() * 0.0
    return (h * mask).sum() / count
