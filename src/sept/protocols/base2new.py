"""Base-to-new generalisation (CoOp/CoCoOp's protocol, adopted by SEPT).

Sort the class names; base = the first ceil(n/2), new = the rest. Train on K shots of the base
classes only. Base = accuracy on the base-class test clips among the base classes; New =
accuracy on the new-class test clips among the new classes, with the class prompts rebuilt from
the new names by the same trained prompt; H = 2 * Base * New / (Base + New).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sept.errors import DataError
from sept.protocols.common import (
    FeatureStore,
    ProtocolSettings,
    evaluate,
    labelled_set,
    structure_of_run,
)
from sept.protocols.runs import ProtocolRun, run_each, train_on_shots

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset

PROTOCOL = "base2new"


def run_base2new(
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """One result dict per (fold, seed) with ``base``, ``new`` and ``summary`` {base, new, h}."""
    from sept.data.sampling import base_new_split
    from sept.evaluation.metrics import harmonic_mean

    store = store or FeatureStore(backbone)

    def body(run: ProtocolRun) -> dict[str, Any]:
        base, new = base_new_split(run.split.classnames)
        if not new:
            raise DataError(
                f"dataset {dataset.name!r} has {len(base)} class(es): base-to-new needs at least 2"
            )
        base_split, new_split = run.split.restrict(base), run.split.restrict(new)
        trained, info = train_on_shots(run, backbone, store, settings, base_split, subset="base")
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
                run.config,
                dataset.name,
                {"base": list(base_split.readable), "new": list(new_split.readable)},
            ),
        }

    return run_each(PROTOCOL, backbone, dataset, method, settings, body)
