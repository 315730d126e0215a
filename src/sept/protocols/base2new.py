"""Base-to-new generalisation (CoOp/CoCoOp's protocol, adopted by SEPT).

Sort the class names; base = the first ceil(n/2), new = the rest. Train on K shots of the base
classes only. Base = accuracy on the base-class test clips among the base classes; New =
accuracy on the new-class test clips among the new classes, with the class prompts rebuilt from
the new names by the same trained prompt; H = 2 * Base * New / (Base + New).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sept.protocols.common import (
    FeatureStore,
    ProtocolSettings,
    evaluate,
    labelled_set,
    structure_of_run,
)
from sept.protocols.needs import base_and_new
from sept.protocols.runs import ProtocolRun, run_each, train_on_shots

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset
    from sept.neighbors.resolve import ResolvedNeighbors

PROTOCOL = "base2new"


def run_base2new(
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """One result dict per (fold, seed) with ``base``, ``new`` and ``summary`` {base, new, h}."""
    from sept.evaluation.metrics import harmonic_mean

    store = store or FeatureStore(backbone)

    def body(run: ProtocolRun) -> dict[str, Any]:
        base, new = base_and_new(run.split)
        base_split, new_split = run.split.restrict(base), run.split.restrict(new)
        trained, info = train_on_shots(run, backbone, store, settings, base_split)
        base_metrics = evaluate(
            trained, labelled_set(store, base_split.test, base_split, "base test"), run.config
        )
        new_metrics = evaluate(
            trained, labelled_set(store, new_split.test, new_split, "new test"), run.config
        )
        h = harmonic_mean(base_metrics["accuracy"], new_metrics["accuracy"])
        return {
            **run.header(settings, backbone, trained),
            "base_classes": base,
            "new_classes": new,
            "train": info,
            "base": base_metrics,
            "new": new_metrics,
            "summary": {"base": base_metrics["accuracy"], "new": new_metrics["accuracy"], "h": h},
            "semantic_structure": structure_of_run(
                run.directory,
                trained,
                _all_neighbors(run, list(base_split.readable) + list(new_split.readable)),
                {"base": list(base_split.readable), "new": list(new_split.readable)},
                run.config.precision,
            ),
        }

    return run_each(PROTOCOL, backbone, dataset, method, settings, body)


def _all_neighbors(run: ProtocolRun, classes: list[str]) -> ResolvedNeighbors | None:
    """The neighbour set of base and new classes for the structure analysis: the run's own set
    when it covers the new classes too, else the set the one rule gives for all of them."""
    from sept.neighbors.errors import MissingNeighborsError
    from sept.neighbors.resolve import resolve_neighbors

    requested = (
        run.neighbors.name if run.neighbors is not None and run.neighbors.origin == "requested" else None
    )
    try:
        return resolve_neighbors(classes, requested, run.dataset.name)
    except MissingNeighborsError:
        return None
