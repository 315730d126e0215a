"""Class and neighbour-phrase text features before and after tuning, for the report's figures.

Read from what each run saved when it was trained (:mod:`sept.analysis.structure`): for a
dataset's classes (base then new, readable names) and their neighbour phrases,

- *before*: the frozen text tower on the template ``"the sound of {}."`` (no prompt);
- *after*, for each trained run (e.g. CoOp and CoOp + SEPT, same fold and seed): the trained
  prompt on the class names and the phrases (no per-clip shift).

All features are L2-normalised, so ``classes @ phrases.T`` are cosines. The report loads no
backbone and no prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger(__name__)

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


def text_geometry(runs: Mapping[str, Path], max_phrases: int | None = None) -> TextGeometry:
    """Features of every class and neighbour of the base-to-new run folders ``runs`` {label: folder},
    read from what each run saved at training time (:mod:`sept.analysis.structure`).

    The folders must be runs of one dataset and fold whose structure was measured with the same
    classes and phrases; ``max_phrases`` keeps the first N phrases per class. Raises
    :class:`~sept.errors.DataError` naming a folder that lacks the saved features or disagrees.
    """
    from sept.analysis.structure import MATRICES_FILE, load_matrices
    from sept.errors import DataError
    from sept.runs.layout import results_path
    from sept.runs.schema import read_results

    first_dir = next(iter(runs.values()))
    first = read_results(results_path(first_dir))
    saved = {}
    for label, folder in runs.items():
        if not (folder / MATRICES_FILE).is_file():
            raise DataError(f"run {str(folder)!r} saved no semantic-structure features")
        try:
            saved[label] = load_matrices(folder)
        except Exception as exc:  # safetensors / JSON errors of a damaged file
            raise DataError(f"run {str(folder)!r}: semantic-structure files are damaged: {exc}") from exc
        if not saved[label].features:
            raise DataError(
                f"run {str(folder)!r} saved cosines only (a run of an older sept); rerun it for the figures"
            )
    ref = next(iter(saved.values()))
    for m in saved.values():
        if m.classes != ref.classes or m.phrases != ref.phrases:
            raise DataError(f"runs {list(runs)} measured their structure on different classes or phrases")
    keep = torch.ones(len(ref.phrases), dtype=torch.bool)
    if max_phrases:
        seen: dict[int, int] = {}
        for i, o in enumerate(ref.owner.tolist()):
            seen[o] = seen.get(o, 0) + 1
            keep[i] = seen[o] <= max_phrases
    structure = first.data.get("semantic_structure") or {}
    name = (structure.get("neighbor_set") or {}).get("name") or str(structure.get("neighbor_set") or "?")
    geo = TextGeometry(
        first.dataset,
        list(ref.classes),
        len(first.data.get("base_classes") or []),
        [p for p, k in zip(ref.phrases, keep.tolist(), strict=True) if k],
        ref.owner[keep],
        name,
    )
    fc, fp = ref.panel("frozen")
    geo.panels[BEFORE] = (fc, fp[keep])
    for label, m in saved.items():
        tc, tp = m.panel("tuned")
        geo.panels[label] = (tc, tp[keep])
    return geo
