"""Cross-dataset transfer: train on all classes of a source (K shots), evaluate on other datasets.

Each target is evaluated on its test data (:func:`sept.protocols.needs.target_split`: the folds
named for it, else every test fold of a registered dataset) among its full class set with the
learned prompt (class prompts rebuilt from the target's names; a head or per-class vectors only
apply to the source's classes, and the results' notes say so). Classes and audio files a target
shares with the source are reported with its metrics (``overlap``) and logged as a warning. The run
folder is the source's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.errors import DataError
from sept.protocols import needs
from sept.protocols.common import FeatureStore, ProtocolSettings, evaluate, labelled_set
from sept.protocols.needs import run_split
from sept.protocols.runs import ProtocolRun, run_each, train_on_shots
from sept.runs.layout import PROMPT_FILE
from sept.runs.store import write_results

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset, Fold, Split
    from sept.methods.compose import ComposedMethod
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)

PROTOCOL = "xd"


def run_xd(
    backbone: Backbone,
    source: Dataset,
    targets: Sequence[Dataset],
    method: str,
    settings: ProtocolSettings,
    *,
    target_folds: Mapping[str, Fold] | None = None,
    store: FeatureStore | None = None,
) -> list[dict[str, Any]]:
    """One result dict per (source fold, seed) with ``source`` and ``targets`` {name: metrics}."""
    from sept.training.checkpoint import load_prompt

    targets = [t for t in targets if t.name != source.name]
    if not targets:
        raise DataError(
            f"cross-dataset transfer from {source.name!r} needs at least one other target dataset"
        )
    target_folds = dict(target_folds or {})
    store = store or FeatureStore(backbone)
    target_splits: dict[str, Split] = {}
    overlaps: dict[tuple[str, Any, str], dict[str, Any]] = {}

    def target_split(dataset: Dataset) -> Split:
        if dataset.name not in target_splits:
            target_splits[dataset.name] = (
                run_split(dataset, target_folds[dataset.name])
                if dataset.name in target_folds
                else needs.target_split(dataset)
            )
        return target_splits[dataset.name]

    def overlap(split: Split, dataset: Dataset) -> dict[str, Any]:
        key = (split.dataset, split.fold, dataset.name)
        if key not in overlaps:
            found = needs.target_overlap(split, target_split(dataset))
            if found["classes"] or found["files"]:
                log.warning(
                    "xd target %s shares %d class(es) (%s) and %d audio file(s) with source %s: its "
                    "accuracy is not a transfer to unseen data",
                    dataset.name,
                    len(found["classes"]),
                    ", ".join(found["classes"][:8]) or "none",
                    found["files"],
                    source.name,
                )
            overlaps[key] = found
        return overlaps[key]

    def evaluate_targets(
        trained: ComposedMethod, config: RunConfig, names: set[str], split: Split
    ) -> dict[str, Any]:
        metrics = {}
        for t in targets:
            if t.name in names:
                tsplit = needs.with_class_names(target_split(t), config)
                metrics[t.name] = evaluate(trained, labelled_set(store, tsplit.test, tsplit, "test"), config)
                metrics[t.name]["fold"] = tsplit.fold
                metrics[t.name]["test_source"] = tsplit.test_source
                metrics[t.name]["overlap"] = overlap(split, t)
        return metrics

    def body(run: ProtocolRun) -> dict[str, Any]:
        split = run.split
        trained, info = train_on_shots(run, backbone, store, settings, split)
        source_metrics = evaluate(trained, labelled_set(store, split.test, split, "test"), run.config)
        target_metrics = evaluate_targets(trained, run.config, {t.name for t in targets}, split)
        return {
            **run.header(settings, backbone, trained),
            "train": info,
            "source": source_metrics,
            "targets": target_metrics,
            "summary": _summary(source_metrics, target_metrics),
        }

    def add_missing_targets(done: dict[str, Any], config: RunConfig, directory: Path) -> dict[str, Any]:
        """A finished run: evaluate its saved prompt on targets it has no results for yet."""
        missing = {t.name for t in targets} - set(done["targets"])
        if missing:
            log.info("adding targets %s to %s", sorted(missing), directory)
            trained, _ = load_prompt(directory / PROMPT_FILE, backbone)
            split = run_split(source, done.get("fold"))
            done["targets"].update(evaluate_targets(trained, config, missing, split))
            done["summary"] = _summary(done["source"], done["targets"])
            write_results(directory, done)
        return done

    return run_each(PROTOCOL, backbone, source, method, settings, body, revisit=add_missing_targets)


def _summary(source: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    accs = {name: m["accuracy"] for name, m in sorted(targets.items())}
    return {"source": source["accuracy"], "targets": accs, "mean_target": sum(accs.values()) / len(accs)}
