"""What every protocol shares: run folders, features with labels, train-save-evaluate, results.

A run folder is ``<run_root>/<protocol>/<dataset>/fold-<k>/<method>/shots-<K>/seed-<s>/``
(``fold-none`` for a single train/test split) and holds ``config.json`` (the resolved config),
``prompt.safetensors`` (learned parameters only), ``checkpoint.safetensors`` while training
(removed once the run is finished) and ``results.json``. A run whose ``results.json`` exists is
finished and skipped on rerun (``force=True`` trains it again).

Methods see the readable class names of the dataset (``dataset.readable_name``: "dog_bark" ->
"dog bark"), which is also what a saved prompt records; results key per-class metrics by the
raw class names.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sept.data.clips import Clip
from sept.errors import ConfigError, DataError
from sept.utils.atomic import atomic_write_json
from sept.utils.paths import safe_name

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Fold, Split
    from sept.features.extract import FeatureSet
    from sept.methods.compose import ComposedMethod
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.json"
PROMPT_FILE = "prompt.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
RESULTS_FORMAT = "sept-results/1"


def run_dir(
    run_root: str | os.PathLike[str],
    protocol: str,
    dataset: str,
    fold: Fold,
    method: str,
    shots: int,
    seed: int,
) -> Path:
    """``<run_root>/<protocol>/<dataset>/fold-<k>/<method>/shots-<K>/seed-<s>``."""
    fold_dir = "fold-none" if fold is None else f"fold-{fold}"
    return (
        Path(run_root)
        / protocol
        / safe_name(dataset)
        / fold_dir
        / safe_name(method)
        / f"shots-{shots}"
        / f"seed-{seed}"
    )


@dataclass
class FeatureOptions:
    """How clips are embedded (see :func:`sept.features.extract_features`)."""

    cache_dir: str | os.PathLike[str] | None = None
    use_cache: bool = True
    batch_size: int = 32
    workers: int | None = None
    on_bad_audio: str = "skip"
    progress: bool = False


class FeatureStore:
    """Audio features of clips, kept in memory (per clip) on top of the on-disk feature cache,
    so the seeds, folds and methods of one invocation embed each clip at most once."""

    def __init__(self, backbone: Backbone, options: FeatureOptions | None = None) -> None:
        self.backbone = backbone
        self.options = options or FeatureOptions()
        self._feats: dict[Clip, torch.Tensor] = {}
        self._bad: dict[Clip, str] = {}

    def get(self, clips: Sequence[Clip]) -> FeatureSet:
        """A :class:`~sept.features.extract.FeatureSet` of ``clips`` (undecodable ones skipped)."""
        from sept.features.extract import FeatureSet, extract_features

        todo = list(dict.fromkeys(c for c in clips if c not in self._feats and c not in self._bad))
        if todo:
            o = self.options
            fs = extract_features(
                self.backbone,
                todo,
                o.cache_dir,
                use_cache=o.use_cache,
                batch_size=o.batch_size,
                workers=o.workers,
                on_bad_audio=o.on_bad_audio,  # type: ignore[arg-type]
                progress=o.progress,
            )
            self._feats.update(zip(fs.clips, fs.features, strict=True))
            self._bad.update(dict(fs.skipped))
        kept = [c for c in clips if c in self._feats]
        skipped = [(c, self._bad[c]) for c in clips if c in self._bad]
        dim = self.backbone.embed_dim
        feats = torch.stack([self._feats[c] for c in kept]) if kept else torch.zeros(0, dim)
        return FeatureSet(feats, kept, skipped)


@dataclass
class LabelledSet:
    """Features [N, D] and labels [N] of clips over ``classnames`` (raw) with their ``readable`` forms."""

    features: torch.Tensor
    labels: torch.Tensor
    classnames: list[str]
    readable: list[str]
    clips: list[Clip]
    skipped: list[tuple[Clip, str]] = field(default_factory=list)

    def skipped_json(self) -> list[dict[str, str]]:
        return [{"path": str(c.path), "reason": r} for c, r in self.skipped]


def labelled_set(store: FeatureStore, clips: Sequence[Clip], split: Split, what: str) -> LabelledSet:
    """Embed ``clips`` and label them by ``split.classnames``; :class:`DataError` if none is usable."""
    if len(set(split.readable)) != len(split.readable):
        raise DataError(
            f"dataset {split.dataset!r}: two classes share a readable name: {list(split.readable)}"
        )
    fs = store.get(clips)
    if not fs.clips:
        raise DataError(
            f"dataset {split.dataset!r} fold {split.fold}: no usable {what} clip "
            f"({len(fs.skipped)} could not be decoded)"
        )
    labels = torch.tensor(split.labels(fs.clips), dtype=torch.long)
    return LabelledSet(
        fs.features, labels, list(split.classnames), list(split.readable), fs.clips, fs.skipped
    )


# ---- runs --------------------------------------------------------------------------------------
def _check_same_config(path: Path, data: Mapping[str, Any], config: RunConfig) -> None:
    from sept.training.config import RunConfig

    data = {k: v for k, v in data.items() if k != "sept_version"}
    if RunConfig.from_dict(data, source=str(path)).training_hash() != config.training_hash():
        raise ConfigError(
            f"{str(path.parent)!r} holds a run with a different configuration ({path.name}); "
            "use another --run-root, or --force to train it again"
        )


def finished_results(directory: Path, config: RunConfig, force: bool = False) -> dict[str, Any] | None:
    """The results of a finished run in ``directory`` (None: not finished, or ``force``).

    A run folder made with another configuration raises :class:`ConfigError` (its name does
    not show the hyper-parameters): use another run root, or ``force`` to retrain.
    """
    path = directory / RESULTS_FILE
    if force or not path.exists():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    _check_same_config(path, results["config"], config)
    return results


def prepare_run_dir(directory: Path, config: RunConfig, force: bool) -> None:
    """Create the folder and write ``config.json``; with ``force`` clear earlier outputs first.

    An unfinished run of another configuration in the folder raises :class:`ConfigError`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / CONFIG_FILE
    if force:
        for name in (RESULTS_FILE, PROMPT_FILE, CHECKPOINT_FILE):
            (directory / name).unlink(missing_ok=True)
    elif config_path.exists():
        _check_same_config(config_path, json.loads(config_path.read_text(encoding="utf-8")), config)
    atomic_write_json(config_path, _config_json(config))


def _config_json(config: RunConfig) -> dict[str, Any]:
    from sept import __version__

    return {"sept_version": __version__, **config.to_dict()}


def train_run(
    directory: Path,
    config: RunConfig,
    backbone: Backbone,
    train: LabelledSet | None,
    train_readable: list[str],
) -> tuple[ComposedMethod, dict[str, Any]]:
    """Build the method for ``train_readable`` classes, train it on ``train`` (resuming from the
    folder's checkpoint), save ``prompt.safetensors``. Returns the method and a training summary."""
    from sept.training.checkpoint import save_prompt
    from sept.training.trainer import Trainer

    method = config.build_method(backbone, train_readable)
    info: dict[str, Any] = {"classes": train_readable, "trainable": method.trainable}
    if method.trainable:
        if train is None:
            raise ValueError("a trainable method needs training data")
        start = time.perf_counter()
        result = Trainer(method, config, directory / CHECKPOINT_FILE).fit(train.features, train.labels)
        info.update(
            clips=len(train.clips),
            num_skipped=len(train.skipped),
            skipped=train.skipped_json(),
            history=result.history,
            resumed_from_epoch=result.resumed_from,
            seconds=round(time.perf_counter() - start, 3),
            parameters=sum(p.numel() for p in method.learned_state().values()),
        )
    save_prompt(directory / PROMPT_FILE, method, config)
    return method, info


def evaluate(method: ComposedMethod, data: LabelledSet, config: RunConfig) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class accuracy, confusion (raw class names) and notes on ``data``."""
    from sept.evaluation.metrics import classification_metrics
    from sept.training.trainer import predict_logits

    logits = predict_logits(
        method, data.features, data.readable, batch_size=config.eval_batch_size, precision=config.precision
    )
    preds = logits.argmax(dim=1).numpy()
    metrics = classification_metrics(data.labels.numpy(), preds, data.classnames).to_dict()
    metrics["prompt_names"] = dict(zip(data.classnames, data.readable, strict=True))
    metrics["num_skipped"] = len(data.skipped)
    metrics["skipped_files"] = data.skipped_json()
    metrics["notes"] = method.eval_notes(data.readable)
    return metrics


def structure_of_run(
    directory: Path,
    method: ComposedMethod,
    config: RunConfig,
    dataset: str,
    groups: Mapping[str, Sequence[str]],
) -> dict[str, Any] | None:
    """Semantic-structure retention of the trained prompt over every class of ``groups``
    (see :mod:`sept.analysis.structure`); None when no neighbour set covers the classes."""
    from sept.analysis.structure import run_structure

    sept = config.regularizers.get("sept")
    classes = [c for members in groups.values() for c in members]
    return run_structure(
        directory, method, dataset, classes, dict(groups), sept.neighbors if sept is not None else None
    )


def write_results(directory: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically (the run is then finished) and drop the checkpoint.

    ``results`` gains its ``format`` key, so it equals what the file holds.
    """
    results["format"] = RESULTS_FORMAT
    path = atomic_write_json(directory / RESULTS_FILE, results)
    (directory / CHECKPOINT_FILE).unlink(missing_ok=True)
    return path


def run_header(
    protocol: str,
    dataset: str,
    fold: Fold,
    config: RunConfig,
    shots: int,
    seed: int,
    backbone: Backbone,
    method: ComposedMethod,
) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "dataset": dataset,
        "fold": fold,
        "method": config.method,
        "shots": shots,
        "seed": seed,
        "backbone": backbone.name,
        "backbone_identity": backbone.identity,
        "logit_scale": method.logit_scale,
        "config": config.to_dict(),
    }


def _default_neighbor_set(config: RunConfig, dataset: str) -> None:
    """Point a SEPT regularizer without a neighbour set at the set shipped for ``dataset``."""
    sept = config.regularizers.get("sept")
    if sept is None or sept.neighbors is not None:
        return
    from sept.neighbors.store import list_shipped

    shipped = {name.lower(): name for name in list_shipped()}
    if dataset.lower() in shipped:
        sept.neighbors = shipped[dataset.lower()]


@dataclass
class ProtocolSettings:
    """Inputs every protocol takes besides the data.

    ``config_file``, ``settings`` and ``overrides`` are the config layers of
    :func:`sept.training.config.resolve_config`; ``force`` retrains finished runs.
    """

    run_root: Path
    shots: int = 16
    seeds: Sequence[int] = (0, 1, 2)
    folds: Sequence[Fold] | None = None
    config_file: str | os.PathLike[str] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Iterable[str] = ()
    with_replacement: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        self.run_root = Path(self.run_root)
        if self.shots < 1:
            raise ConfigError(f"shots must be >= 1, got {self.shots}")
        if not list(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {list(self.seeds)}")
        self.overrides = list(self.overrides)

    def config(
        self, method: str, protocol: str, seed: int, backbone: str, dataset: str | None = None
    ) -> RunConfig:
        """The resolved config of one run (the run's seed and the backbone's name recorded in it).

        A ``+sept`` run whose config names no neighbour set uses the set shipped for ``dataset``
        (when there is one); the config records which.
        """
        from sept.training.config import resolve_config

        settings = {"backbone": backbone, **self.settings, "seed": seed}
        config = resolve_config(
            method, protocol, config_file=self.config_file, settings=settings, overrides=self.overrides
        )
        if config.seed != seed:
            raise ConfigError(
                f"the seed of a run comes from the seed list ({seed}); do not set 'seed' in a config"
            )
        if dataset is not None:
            _default_neighbor_set(config, dataset)
        return config

    def folds_of(self, dataset_folds: Sequence[int]) -> list[Fold]:
        """The folds to run: the given ones, else every fold (or the single split)."""
        if self.folds:
            return list(self.folds)
        return list(dataset_folds) or [None]
