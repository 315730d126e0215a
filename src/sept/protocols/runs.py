"""The (fold, seed) loop every protocol shares.

For each fold and seed: resolve the run's config, read back a finished run (never retrain it),
otherwise prepare the run folder, let the protocol train and evaluate it (``body``), and write
``results.json`` atomically. :func:`train_on_shots` is the common training step: draw (or reuse)
the K-shot manifest and train the method on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.protocols.common import (
    FeatureStore,
    ProtocolSettings,
    finished_results,
    labelled_set,
    prepare_run_dir,
    run_dir,
    run_header,
    train_run,
    write_results,
)

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset, Split
    from sept.methods.compose import ComposedMethod
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolRun:
    """One (fold, seed) run of a protocol: the fold's split, the seed, its config and folder."""

    protocol: str
    dataset: str
    split: Split
    seed: int
    config: RunConfig
    directory: Path

    def header(
        self, settings: ProtocolSettings, backbone: Backbone, method: ComposedMethod
    ) -> dict[str, Any]:
        """The keys every results.json starts with (protocol, dataset, fold, method, seed, ...)."""
        return run_header(
            self.protocol,
            self.dataset,
            self.split.fold,
            self.config,
            settings.shots,
            self.seed,
            backbone,
            method,
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
    for fold in settings.folds_of(dataset.folds):
        split = None
        for seed in settings.seeds:
            config = settings.config(method, protocol, seed, backbone.name, dataset.name)
            directory = run_dir(
                settings.run_root, protocol, dataset.name, fold, config.method, settings.shots, seed
            )
            done = finished_results(directory, config, settings.force)
            if done is not None:
                log.info("finished already: %s", directory)
                out.append(revisit(done, config, directory) if revisit else done)
                continue
            split = split or dataset.split(fold)
            prepare_run_dir(directory, config, settings.force)
            results = body(ProtocolRun(protocol, dataset.name, split, seed, config, directory))
            write_results(directory, results)
            out.append(results)
    return out


def train_on_shots(
    run: ProtocolRun,
    backbone: Backbone,
    store: FeatureStore,
    settings: ProtocolSettings,
    train_split: Split,
    subset: str,
) -> tuple[ComposedMethod, dict[str, Any]]:
    """Build the method for ``train_split``'s classes and train it on K shots of ``subset``.

    The K-shot manifest is drawn once per (dataset, fold, K, seed, subset) and reused by every
    method; a method that does not train is only built. Returns the method and its training
    summary (with the manifest's path).
    """
    from sept.data.manifest import few_shot_manifest, manifest_clips

    train = None
    manifest_path = None
    if run.config.spec.trains:
        manifest, manifest_path = few_shot_manifest(
            run.split,
            shots=settings.shots,
            seed=run.seed,
            run_root=settings.run_root,
            subset=subset,
            with_replacement=settings.with_replacement,
        )
        train = labelled_set(store, manifest_clips(manifest, run.split), train_split, "train")
    trained, info = train_run(run.directory, run.config, backbone, train, list(train_split.readable))
    info["manifest"] = str(manifest_path) if manifest_path else None
    return trained, info
