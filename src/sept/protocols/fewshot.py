"""Few-shot, all classes (PALM's protocol): K shots per class, test on the full test split.

For each fold and seed: draw (or reuse) the manifest of K shots per class, train, evaluate on
every test clip among all classes. Results: accuracy, macro-F1, per-class accuracy, confusion.
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
from sept.protocols.runs import ProtocolRun, run_each, train_on_shots

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset

PROTOCOL = "fewshot"


def run_fewshot(
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """One result dict per (fold, seed); finished runs are read back, not retrained."""
    store = store or FeatureStore(backbone)

    def body(run: ProtocolRun) -> dict[str, Any]:
        split = run.split
        trained, info = train_on_shots(run, backbone, store, settings, split)
        metrics = evaluate(trained, labelled_set(store, split.test, split, "test"), run.config)
        return {
            **run.header(settings, backbone, trained),
            "train": info,
            "test": metrics,
            "summary": {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]},
            "semantic_structure": structure_of_run(
                run.directory, trained, run.neighbors, {"all": list(split.readable)}, run.config.precision
            ),
        }

    return run_each(PROTOCOL, backbone, dataset, method, settings, body)
