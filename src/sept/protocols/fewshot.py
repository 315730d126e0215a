"""Few-shot, all classes (PALM's protocol): K shots per class, test on the full test split.

For each fold and seed: draw (or reuse) the manifest of K shots per class, train, evaluate on
every test clip among all classes. Results: accuracy, macro-F1, per-class accuracy, confusion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sept.protocols.common import (
    FeatureStore,
    ProtocolSettings,
    evaluate,
    finished_results,
    labelled_set,
    prepare_run_dir,
    run_dir,
    run_header,
    structure_of_run,
    train_run,
    write_results,
)

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset

log = logging.getLogger(__name__)

PROTOCOL = "fewshot"


def run_fewshot(
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """One result dict per (fold, seed); finished runs are read back, not retrained."""
    from sept.data.manifest import few_shot_manifest, manifest_clips

    store = store or FeatureStore(backbone)
    out = []
    for fold in settings.folds_of(dataset.folds):
        split = None
        for seed in settings.seeds:
            config = settings.config(method, PROTOCOL, seed, backbone, dataset.name)
            directory = run_dir(
                settings.run_root, PROTOCOL, dataset.name, fold, config.method, settings.shots, seed
            )
            done = finished_results(directory, config, settings.force)
            if done is not None:
                log.info("finished already: %s", directory)
                out.append(done)
                continue
            split = split or dataset.split(fold)
            prepare_run_dir(directory, config, settings.force)
            train = None
            manifest_path = None
            if config.spec.trains:
                manifest, manifest_path = few_shot_manifest(
                    split,
                    shots=settings.shots,
                    seed=seed,
                    run_root=settings.run_root,
                    subset="all",
                    with_replacement=settings.with_replacement,
                )
                train = labelled_set(store, manifest_clips(manifest, split), split, "train")
            trained, info = train_run(directory, config, backbone, train, list(split.readable))
            info["manifest"] = str(manifest_path) if manifest_path else None
            test = labelled_set(store, split.test, split, "test")
            metrics = evaluate(trained, test, config)
            results = {
                **run_header(
                    PROTOCOL, dataset.name, split.fold, config, settings.shots, seed, backbone, trained
                ),
                "train": info,
                "test": metrics,
                "summary": {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]},
                "semantic_structure": structure_of_run(
                    directory, trained, config, dataset.name, {"all": list(split.readable)}
                ),
            }
            write_results(directory, results)
            out.append(results)
    return out
