"""What every protocol shares: features with labels, train-save-evaluate, the run header, settings.

Run folders, their files and the results schema belong to :mod:`sept.runs`; which clips and
classes a protocol reads, to :mod:`sept.protocols.needs`. Methods see the readable class names of
the dataset (``dataset.readable_name``: "dog_bark" -> "dog bark"), which is also what a saved
prompt records; results key per-class metrics by the raw class names.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sept.data.clips import Clip
from sept.data.sampling import MAX_SEED
from sept.errors import ConfigError, DataError
from sept.runs.layout import CHECKPOINT_FILE, PROMPT_FILE
from sept.utils.phases import phase

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset, Fold, Split
    from sept.features.extract import FeatureSet
    from sept.methods.compose import ComposedMethod
    from sept.neighbors.resolve import ResolvedNeighbors
    from sept.runs.identity import VariantSpec
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)


@dataclass
class FeatureOptions:
    """How clips are embedded (see :func:`sept.features.extract_features`)."""

    cache_dir: str | os.PathLike[str] | None = None
    use_cache: bool = True
    batch_size: int = 32
    workers: int | None = None
    on_bad_audio: str = "skip"
    progress: bool = False

    def extract(self, backbone: Backbone, clips: Sequence[Clip]) -> FeatureSet:
        """:func:`~sept.features.extract.extract_features` of ``clips`` with these options, unnormalised
        (``raw``: methods normalise for cosine; DePT's head takes them as they are)."""
        from sept.features.extract import extract_features

        return extract_features(
            backbone,
            list(clips),
            self.cache_dir,
            use_cache=self.use_cache,
            batch_size=self.batch_size,
            workers=self.workers,
            on_bad_audio=self.on_bad_audio,  # type: ignore[arg-type]
            progress=self.progress,
            raw=True,
        )


class FeatureStore:
    """The backbone's unnormalised audio features of clips (``extract_features(raw=True)``), kept in memory (per clip) on top of the on-disk feature cache,
    so the seeds, folds and methods of one invocation embed each clip at most once."""

    def __init__(self, backbone: Backbone, options: FeatureOptions | None = None) -> None:
        self.backbone = backbone
        self.options = options or FeatureOptions()
        self._feats: dict[Clip, torch.Tensor] = {}
        self._bad: dict[Clip, str] = {}

    def get(self, clips: Sequence[Clip]) -> FeatureSet:
        """A :class:`~sept.features.extract.FeatureSet` of ``clips`` (undecodable ones skipped)."""
        from sept.features.extract import FeatureSet

        todo = list(dict.fromkeys(c for c in clips if c not in self._feats and c not in self._bad))
        if todo:
            fs = self.options.extract(self.backbone, todo)
            self._feats.update(zip(fs.clips, fs.features, strict=True))
            self._bad.update(dict(fs.skipped))
        kept = [c for c in clips if c in self._feats]
        skipped = [(c, self._bad[c]) for c in clips if c in self._bad]
        dim = self.backbone.embed_dim
        feats = torch.stack([self._feats[c] for c in kept]) if kept else torch.zeros(0, dim)
        return FeatureSet(feats, kept, skipped)


@dataclass
class LabelledSet:
    """Features [N, D] (the backbone's, unnormalised) and labels [N] of clips over ``classnames`` (raw)
    with their ``readable`` forms."""

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

    with phase("train"):
        method = config.build_method(backbone, train_readable)
    info: dict[str, Any] = {"classes": train_readable, "trainable": method.trainable}
    if method.trainable:
        if train is None:
            raise ValueError("a trainable method needs training data")
        start = time.perf_counter()
        with phase("train"):
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

    with phase("eval"):
        logits = predict_logits(
            method,
            data.features,
            data.readable,
            batch_size=config.eval_batch_size,
            precision=config.precision,
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
    neighbors: ResolvedNeighbors | None,
    groups: Mapping[str, Sequence[str]],
    precision: str = "fp32",
) -> dict[str, Any] | None:
    """Semantic-structure retention of the trained prompt over every class of ``groups``
    (see :mod:`sept.analysis.structure`) with the run's neighbour set, in the run's ``precision``;
    None without a set."""
    from sept.analysis.structure import run_structure

    if neighbors is None:
        return None
    with phase("eval"):
        return run_structure(directory, method, neighbors, dict(groups), precision)


def run_neighbors(config: RunConfig, classes: Sequence[str], dataset: str) -> ResolvedNeighbors | None:
    """The neighbour set of a run (:func:`sept.neighbors.resolve.resolve_neighbors` on its classes).

    A ``+sept`` run must have one (its ``sept.neighbors`` then names the set resolved, so the saved
    config says which); for other methods it is the set the semantic-structure analysis uses, or
    None when no set covers the classes.
    """
    from sept.neighbors.errors import MissingNeighborsError
    from sept.neighbors.resolve import resolve_neighbors

    sept = config.regularizers.get("sept")
    if sept is not None:
        resolved = resolve_neighbors(classes, sept.neighbors, dataset)
        sept.neighbors = resolved.name
        return resolved
    try:
        return resolve_neighbors(classes, None, dataset)
    except MissingNeighborsError:
        return None


def run_header(
    protocol: str,
    dataset: Dataset,
    fold: Fold,
    config: RunConfig,
    variant: Mapping[str, Any],
    shots: int,
    seed: int,
    backbone: Backbone,
    method: ComposedMethod,
    neighbors: ResolvedNeighbors | None,
) -> dict[str, Any]:
    """The keys every run's results start with (:mod:`sept.runs.schema`)."""
    from sept.runs.identity import dataset_id

    return {
        "protocol": protocol,
        "dataset": dataset.name,
        "dataset_id": dataset_id(dataset),
        "fold": fold,
        "method": config.method,
        "variant": dict(variant),
        "shots": shots,
        "seed": seed,
        "backbone": backbone.name,
        "backbone_identity": backbone.identity,
        "logit_scale": method.logit_scale,
        "config": config.to_dict(),
        "neighbor_set": neighbors.record() if neighbors is not None else None,
        "warnings": [],
    }


@dataclass
class ProtocolSettings:
    """Inputs every protocol takes besides the data.

    ``config_file``, ``settings`` and ``overrides`` are the config layers of
    :func:`sept.training.config.resolve_config`. ``overrides`` are aimed: each applies to the
    methods that have its component (a key no method has is an error, see
    :func:`check_overrides_apply`); ``method_overrides`` must apply to the method. ``variant``
    names the run's variant (a grid's ``coop+sept@lam2``); ``force`` retrains finished runs.
    """

    run_root: Path
    shots: int = 16
    seeds: Sequence[int] = (0, 1, 2)
    folds: Sequence[Fold] | None = None
    config_file: str | os.PathLike[str] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Iterable[str] = ()
    method_overrides: Iterable[str] = ()
    variant: VariantSpec | None = None
    with_replacement: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        self.run_root = Path(self.run_root)
        if self.run_root.exists() and not self.run_root.is_dir():
            raise ConfigError(f"run root {str(self.run_root)!r} is a file, not a folder")
        if self.shots < 1:
            raise ConfigError(f"shots must be >= 1, got {self.shots}")
        if not list(self.seeds) or min(self.seeds) < 0 or max(self.seeds) > MAX_SEED:
            raise ConfigError(
                f"seeds must be a non-empty list of integers >= 0 and <= {MAX_SEED}, got {list(self.seeds)}"
            )
        self.overrides = list(self.overrides)
        self.method_overrides = list(self.method_overrides)

    def config(self, method: str, protocol: str, seed: int, backbone: str) -> RunConfig:
        """The resolved config of one run (the run's seed and the backbone's name recorded in it)."""
        from sept.training.config import resolve_config

        settings = {"backbone": backbone, **self.settings, "seed": seed}
        config = resolve_config(
            method,
            protocol,
            config_file=self.config_file,
            settings=settings,
            overrides=self.method_overrides,
            aimed=self.overrides,
        )
        if config.seed != seed:
            raise ConfigError(
                f"the seed of a run comes from the seed list ({seed}); do not set 'seed' in a config"
            )
        return config

    def variant_of(self, method: str, protocol: str, backbone: str) -> dict[str, Any]:
        """The run's variant record {name, label, options, family, reference} (:mod:`sept.runs.identity`)."""
        from sept.runs.identity import describe_variant
        from sept.training.config import resolve_config

        seed = next(iter(self.seeds))
        config = self.config(method, protocol, seed, backbone)
        reference = resolve_config(method, protocol, settings={"backbone": backbone, "seed": seed})
        return describe_variant(config, reference, self.variant)

    def folds_of(self, dataset_folds: Sequence[int]) -> list[Fold]:
        """The folds to run: the given ones, else every fold (or the single split)."""
        if self.folds:
            return list(self.folds)
        return list(dataset_folds) or [None]


def check_overrides_apply(overrides: Iterable[str], methods: Sequence[str]) -> None:
    """Each aimed ``key=value`` must name an option of at least one of ``methods`` (ConfigError)."""
    from sept.training.config import override_applies, parse_override

    for text in overrides:
        key, _ = parse_override(text)
        if not any(override_applies(m, key) for m in methods):
            raise ConfigError(
                f"--set {text!r}: none of the methods {', '.join(methods)} has an option {key!r}"
            )
