"""Base-to-new generalisation (CoOp/CoCoOp's protocol, adopted by SEPT).

Sort the class names; base = the first ceil(n/2), new = the rest. Train on K shots of the base
classes only. Base = accuracy on the base-class test clips among the base classes; New =
accuracy on the new-class test clips among the new classes, with the class prompts rebuilt from
the new names by the same trained prompt; H = 2 * Base * New / (Base + New).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sept.errors import DataError
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

PROTOCOL = "base2new"


def run_base2new(
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """One result dict per (fold, seed) with ``base``, ``new`` and ``summary`` {base, new, h}."""
    from sept.data.manifest import few_shot_manifest, manifest_clips
    from sept.data.sampling import base_new_split
    from sept.evaluation.metrics import harmonic_mean

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
            base, new = base_new_split(split.classnames)
            if not new:
                raise DataError(
                    f"dataset {dataset.name!r} has {len(base)} class(es): base-to-new needs at least 2"
                )
            base_split, new_split = split.restrict(base), split.restrict(new)
            prepare_run_dir(directory, config, settings.force)
            train = None
            manifest_path = None
            if config.spec.trains:
                manifest, manifest_path = few_shot_manifest(
                    split,
                    shots=settings.shots,
                    seed=seed,
                    run_root=settings.run_root,
                    subset="base",
                    with_replacement=settings.with_replacement,
                )
                train = labelled_set(store, manifest_clips(manifest, split), base_split, "train")
            trained, info = train_run(directory, config, backbone, train, list(base_split.readable))
            info["manifest"] = str(manifest_path) if manifest_path else None
            base_metrics = evaluate(
                trained, labelled_set(store, base_split.test, base_split, "base test"), config
            )
            new_metrics = evaluate(
                trained, labelled_set(store, new_split.test, new_split, "new test"), config
            )
            h = harmonic_mean(base_metrics["accuracy"], new_metrics["accuracy"])
            results = {
                **run_header(
                    PROTOCOL, dataset.name, split.fold, config, settings.shots, seed, backbone, trained
                ),
                "base_classes": base,
                "new_classes": new,
                "train": info,
                "base": base_metrics,
                "new": new_metrics,
                "summary": {"base": base_metrics["accuracy"], "new": new_metrics["accuracy"], "h": h},
                "semantic_structure": structure_of_run(
                    directory,
                    trained,
                    config,
                    dataset.name,
                    {"base": list(base_split.readable), "new": list(new_split.readable)},
                ),
            }
            write_results(directory, results)
            out.append(results)
    return out
