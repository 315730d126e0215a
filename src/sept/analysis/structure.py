"""Semantic structure of the text side, before and after tuning (the paper's Figure 1).

For classes c (readable names) and their neighbour phrases p (a shipped or user neighbour set):

    S_frozen[c, p] = cos( g("the sound of {c}."), g("the sound of {p}.") )   frozen text tower
    S_tuned[c, p]  = cos( t_c, q_p )        through the trained prompt (no per-clip shift)

*Retention* is the Pearson correlation of the two matrices (1: the tuned prompt keeps the frozen
model's class-neighbour geometry). ``intra`` is the mean cosine of a class to its own neighbours,
``inter`` to other classes' neighbours; their gap measures how clustered the classes are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sept.utils.atomic import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from sept.methods.compose import ComposedMethod
    from sept.neighbors.resolve import ResolvedNeighbors

log = logging.getLogger(__name__)

FROZEN_TEMPLATE = "the sound of {}."
MATRICES_FILE = "semantic_structure.safetensors"
NAMES_FILE = "semantic_structure.json"


@dataclass
class StructureMatrices:
    """classes [C] (readable), phrases [P], owner [P] (class index), frozen/tuned [C, P] cosines,
    and the L2-normalised features they come from (``features``: frozen/tuned class [C, D] and
    phrase [P, D] features, kept for the report's figures)."""

    classes: list[str]
    phrases: list[str]
    owner: torch.Tensor
    frozen: torch.Tensor
    tuned: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def panel(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(class features [C, D], phrase features [P, D]) of ``frozen`` or ``tuned``, as float32."""
        return self.features[f"{which}_classes"].float(), self.features[f"{which}_phrases"].float()


def structure_matrices(
    method: ComposedMethod,
    classes: Sequence[str],
    neighbors: dict[str, list[str]],
    precision: str = "fp32",
) -> StructureMatrices:
    """Frozen and tuned class-to-neighbour cosine matrices [C, P] for ``classes``, both sides in the
    run's arithmetic ``precision`` (:func:`sept.training.trainer.autocast_dtype`)."""
    from sept.training.trainer import autocast

    backbone = method.backbone
    phrases = [p for c in classes for p in neighbors[c]]
    owner = torch.tensor([i for i, c in enumerate(classes) for _ in neighbors[c]], dtype=torch.long)
    fill = FROZEN_TEMPLATE.replace
    with torch.inference_mode(), autocast(precision, backbone.device):
        fc = backbone.embed_text([fill("{}", c) for c in classes]).float().cpu()
        fp = backbone.embed_text([fill("{}", p) for p in phrases]).float().cpu()
        tc = method.learner.class_features(list(classes)).float().cpu()
        tp = method.learner.encode_texts(phrases).float().cpu()
    features = {"frozen_classes": fc, "frozen_phrases": fp, "tuned_classes": tc, "tuned_phrases": tp}
    return StructureMatrices(list(classes), phrases, owner, fc @ fp.T, tc @ tp.T, features)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else 0.0


def summarize(m: StructureMatrices, rows: Sequence[int] | None = None) -> dict[str, float]:
    """Retention and intra/inter cosines, over all classes or the class indices ``rows``."""
    idx = torch.tensor(list(rows) if rows is not None else range(len(m.classes)), dtype=torch.long)
    own = (m.owner.unsqueeze(0) == idx.unsqueeze(1)).float()  # [R, P]
    out: dict[str, float] = {"retention": round(_pearson(m.frozen[idx], m.tuned[idx]), 6)}
    for name, s in (("frozen", m.frozen[idx]), ("tuned", m.tuned[idx])):
        intra = float((s * own).sum() / own.sum())
        inter = float((s * (1 - own)).sum() / (1 - own).sum()) if (1 - own).sum() > 0 else float("nan")
        out[f"intra_cos_{name}"] = round(intra, 6)
        out[f"inter_cos_{name}"] = round(inter, 6)
    return out


def save_matrices(directory: str | os.PathLike[str], m: StructureMatrices) -> None:
    """Write the matrices and features (safetensors; features as float16) and the names (JSON)
    into a run folder, atomically."""
    from safetensors.torch import save_file

    tensors = {"owner": m.owner, "frozen": m.frozen.contiguous(), "tuned": m.tuned.contiguous()}
    tensors.update({k: v.half().contiguous() for k, v in m.features.items()})
    with atomic_path(Path(directory) / MATRICES_FILE) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(Path(directory) / NAMES_FILE, {"classes": m.classes, "phrases": m.phrases})


def load_matrices(directory: str | os.PathLike[str]) -> StructureMatrices:
    """Read what :func:`save_matrices` wrote."""
    import json

    from safetensors.torch import load_file

    t = load_file(str(Path(directory) / MATRICES_FILE))
    names = json.loads((Path(directory) / NAMES_FILE).read_text(encoding="utf-8"))
    features = {k: v for k, v in t.items() if k.endswith(("_classes", "_phrases"))}
    return StructureMatrices(
        names["classes"], names["phrases"], t["owner"], t["frozen"], t["tuned"], features
    )


def run_structure(
    directory: Path,
    method: ComposedMethod,
    neighbors: ResolvedNeighbors,
    groups: dict[str, Sequence[str]],
    precision: str = "fp32",
) -> dict[str, Any] | None:
    """Compute, save and summarise the structure of a trained run over every class of ``groups``
    (e.g. {"base": [...], "new": [...]}: one summary per group and one over all) in the run's
    ``precision``."""
    classes = [c for members in groups.values() for c in members]
    m = structure_matrices(method, classes, {c: neighbors.by_class[c] for c in classes}, precision)
    save_matrices(directory, m)
    out: dict[str, Any] = {"neighbor_set": neighbors.record(), "all": summarize(m)}
    for name, members in groups.items():
        rows = [m.classes.index(c) for c in members]
        out[name] = summarize(m, rows)
    return out
