"""Evaluation protocols on cached features: few-shot (all classes), base-to-new, cross-dataset.

``run_protocol("base2new", backbone, dataset, "coop", settings)`` runs every fold and seed and
returns one result dict per run (each also written to its run folder, see
:mod:`sept.runs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sept.errors import UnknownNameError
from sept.protocols.common import FeatureOptions, FeatureStore, ProtocolSettings
from sept.runs.schema import PROTOCOLS

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset

__all__ = ["PROTOCOLS", "FeatureOptions", "FeatureStore", "ProtocolSettings", "run_protocol"]


def run_protocol(
    protocol: str,
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    *,
    targets: list[Dataset] | None = None,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """Run ``method`` under ``protocol`` on ``dataset`` (the source for ``xd``, with ``targets``)."""
    if protocol == "fewshot":
        from sept.protocols.fewshot import run_fewshot

        return run_fewshot(backbone, dataset, method, settings, store)
    if protocol == "base2new":
        from sept.protocols.base2new import run_base2new

        return run_base2new(backbone, dataset, method, settings, store)
    if protocol == "xd":
        from sept.protocols.xd import run_xd

        return run_xd(backbone, dataset, targets or [], method, settings, store=store)
    raise UnknownNameError("protocol", protocol, list(PROTOCOLS))
