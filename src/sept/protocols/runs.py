"""The (fold, seed) loop every protocol shares.

For each fold and seed: resolve the run's config, its identity (:mod:`sept.runs.identity`: the
dataset id and the method variant) and its neighbour set (:mod:`sept.neighbors.resolve`); read
back a finished run (never retrain it; a damaged one is trained again), otherwise prepare the run
folder, let the protocol train and evaluate it (``body``) and write the results atomically
(:mod:`sept.runs.store`). :func:`train_on_shots` is the common training step: draw (or reuse) the
K-shot manifest and train the method on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.protocols.common import (
    FeatureStore,
    ProtocolSettings,
    labelled_set,
    run_header,
    run_neighbors,
    train_run,
)
from sept.protocols.needs import (
    run_split,
    train_manifest,
    training_prompt_names,
    with_class_names,
)
from sept.runs.identity import dataset_id
from sept.runs.layout import RunKey, run_dir
from sept.runs.store import finished_results, prepare_run_dir, write_results

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset, Split
    from sept.methods.compose import ComposedMethod
    from sept.neighbors.resolve import ResolvedNeighbors
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolRun:
    """One (fold, seed) run of a protocol: the fold's split, the seed, its config, variant and folder."""

    protocol: str
    dataset: Dataset
    split: Split
    seed: int
    config: RunConfig
    directory: Path
    variant: dict[str, Any] = field(default_factory=dict)
    neighbors: ResolvedNeighbors | None = None

    def header(
        self, settings: ProtocolSettings, backbone: Backbone, method: ComposedMethod
    ) -> dict[str, Any]:
        """The keys every run's results start with (protocol, dataset, fold, method, variant, seed, ...)."""
        return run_header(
            self.protocol,
            self.dataset,
            self.split.fold,
            self.config,
            self.variant,
            settings.shots,
            self.seed,
            backbone,
            method,
            self.neighbors,
        )


def run_each(
    protocol: str,
    backbone: Backbone,
    dataset: Dataset,
    method: str,
    settings: ProtocolSettings,
    body: Callable[[ProtocolRun], dict[str, Any]],
    *,
    revisit: Callable[[dict[str, Any], RunConfig, Path], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Results of ``body`` for every fold and seed of ``settings``, in that order.

    A finished run (same config) is read back, passed through ``revisit`` when given (cross-dataset
    uses it to add new targets), and not retrained; ``settings.force`` reruns it.
    """
    out = []
    variant = settings.variant_of(method, protocol, backbone.name)
    for fold in settings.folds_of(dataset.folds):
        fold_split = run_split(dataset, fold)
        for seed in settings.seeds:
            config = settings.config(method, protocol, seed, backbone.name)
            split = with_class_names(fold_split, config)
            classes = training_prompt_names(protocol, split, config)
            neighbors = run_neighbors(config, classes, dataset.name)
            key = RunKey(protocol, dataset_id(dataset), fold, variant["name"], settings.shots, seed)
            directory = run_dir(settings.run_root, key)
            neighbor_hash = (
                neighbors.hash if neighbors is not None and "sept" in config.regularizers else None
            )
            done = finished_results(directory, config, settings.force, neighbor_hash)
            if done is not None:
                log.info("finished already: %s", directory)
                out.append(revisit(done.data, config, directory) if revisit else done.data)
                continue
            record = neighbors.record() if neighbor_hash is not None and neighbors is not None else None
            prepare_run_dir(directory, config, settings.force, record)
            run = ProtocolRun(protocol, dataset, split, seed, config, directory, variant, neighbors)
            results = body(run)
            write_results(directory, results)
            out.append(results)
    return out


def train_on_shots(
    run: ProtocolRun,
    backbone: Backbone,
    store: FeatureStore,
    settings: ProtocolSettings,
    train_split: Split,
) -> tuple[ComposedMethod, dict[str, Any]]:
    """Build the method for ``train_split``'s classes and train it on K shots of them.

    The K-shot manifest is drawn once per (dataset, fold, K, seed, subset) and reused by every
    method; a method that does not train is only built. Returns the method and its training
    summary (with the manifest's path).
    """
    from sept.data.manifest import manifest_clips

    train = None
    manifest_path = None
    if run.config.spec.trains:
        manifest, manifest_path = train_manifest(
            run.protocol,
            run.split,
            shots=settings.shots,
            seed=run.seed,
            run_root=settings.run_root,
            with_replacement=settings.with_replacement,
        )
        train = labelled_set(store, manifest_clips(manifest, run.split), train_split, "train")
    trained, info = train_run(run.directory, run.config, backbone, train, list(train_split.readable))
    info["manifest"] = str(manifest_path) if manifest_path else None
    return trained, info
