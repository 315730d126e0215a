"""Class and neighbour-phrase text features before and after tuning, for the report's figures.

For a dataset's classes (base then new, readable names) and their neighbour phrases:

- *before*: the frozen text tower on the template ``"the sound of {}."`` (no prompt);
- *after*, for each trained run (e.g. CoOp and CoOp + SEPT, same fold and seed): the saved
  prompt, rebuilt with :func:`sept.training.checkpoint.load_prompt`, encodes the class names and
  the phrases (``learner.class_features`` / ``learner.encode_texts``; no per-clip shift).

All features are L2-normalised, so ``classes @ phrases.T`` are cosines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from sept.backbones.base import Backbone

log = logging.getLogger(__name__)

FROZEN_TEMPLATE = "the sound of {}."
BEFORE = "frozen (before tuning)"


@dataclass
class TextGeometry:
    """classes [C] (readable; the first ``n_base`` are the base classes), phrases [P], owner [P]
    (class index of each phrase), and per panel (``BEFORE``, then each run's method) the class
    features [C, D] and phrase features [P, D]."""

    dataset: str
    classes: list[str]
    n_base: int
    phrases: list[str]
    owner: torch.Tensor
    neighbor_set: str
    panels: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def cosines(self, panel: str) -> torch.Tensor:
        """Class-to-phrase cosines [C, P] of ``panel``."""
        classes, phrases = self.panels[panel]
        return classes @ phrases.T

    def class_to_class(self, panel: str) -> torch.Tensor:
        """[C, C]: entry (i, j) = mean cosine of class i to the phrases of class j."""
        cos = self.cosines(panel)
        onehot = torch.nn.functional.one_hot(self.owner, len(self.classes)).float()  # [P, C]
        return (cos @ onehot) / onehot.sum(0).clamp(min=1)


def _neighbours(
    dataset: str, raw_classes: Sequence[str], requested: str | None
) -> tuple[str, dict[str, list[str]]]:
    """(set name, {raw class: phrases}) from the run's set, the dataset's shipped set, or any shipped set
    that covers every class. Raises :class:`sept.errors.SeptError` when none does."""
    from sept.errors import SeptError
    from sept.neighbors.store import list_shipped, load_neighbors, neighbors_for

    candidates = [requested] if requested else []
    candidates += [n for n in list_shipped() if n.lower() == dataset.lower()]
    candidates += [n for n in list_shipped() if n.lower() != dataset.lower()]
    errors = []
    for name in dict.fromkeys(candidates):
        try:
            return str(name), neighbors_for(list(raw_classes), load_neighbors(name))
        except SeptError as exc:
            errors.append(str(exc))
    raise SeptError(
        f"no neighbour set covers the classes of {dataset!r}: {errors[0] if errors else 'none found'}"
    )


def _encode(
    backbone: Backbone, prompt: Path, classes: list[str], phrases: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    from sept.training.checkpoint import load_prompt

    method, _ = load_prompt(prompt, backbone)
    method.eval()
    with torch.inference_mode():
        c = method.learner.class_features(classes).float().cpu()
        p = method.learner.encode_texts(phrases).float().cpu()
    return c, p


def text_geometry(
    backbone: Backbone, runs: Mapping[str, Path], max_phrases: int | None = None
) -> TextGeometry:
    """Features of every class and neighbour of the base-to-new run folders ``runs`` {label: folder}.

    The folders must be runs of one dataset and fold (their ``results.json`` give the base and
    new classes and the readable names); ``max_phrases`` keeps the first N phrases per class.
    """
    first = json.loads((next(iter(runs.values())) / "results.json").read_text(encoding="utf-8"))
    raw = list(first["base_classes"]) + list(first["new_classes"])
    readable = {**first["base"]["prompt_names"], **first["new"]["prompt_names"]}
    requested = _requested_set(runs)
    name, by_class = _neighbours(first["dataset"], raw, requested)
    phrases: list[str] = []
    owner: list[int] = []
    for i, c in enumerate(raw):
        chosen = by_class[c][:max_phrases] if max_phrases else by_class[c]
        phrases += chosen
        owner += [i] * len(chosen)
    classes = [readable[c] for c in raw]
    geo = TextGeometry(
        first["dataset"], classes, len(first["base_classes"]), phrases, torch.tensor(owner), name
    )
    with torch.inference_mode():
        fc = backbone.embed_text([FROZEN_TEMPLATE.format(c) for c in classes]).float().cpu()
        fp = backbone.embed_text([FROZEN_TEMPLATE.format(p) for p in phrases]).float().cpu()
    geo.panels[BEFORE] = (fc, fp)
    for label, folder in runs.items():
        geo.panels[label] = _encode(backbone, folder / "prompt.safetensors", classes, phrases)
    return geo


def _requested_set(runs: Mapping[str, Path]) -> str | None:
    """The neighbour set a ``+sept`` run trained with (from its results' config), if any."""
    for folder in runs.values():
        data: dict[str, Any] = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        sept = data.get("config", {}).get("regularizers", {}).get("sept")
        if sept and sept.get("neighbors"):
            return str(sept["neighbors"])
    return None
