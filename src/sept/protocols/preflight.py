"""Check a protocol's inputs before any compute: folds, lists, shots, configs, neighbour sets.

Lists: what loading a split refuses (missing columns, empty fields, paths escaping the root, and
:func:`sept.data.guards.check_split`: a path listed twice, test files that are train files) and a
test class without train clips.

A run goes fold by fold, so without this a fold number that does not exist, a malformed test list,
a class with too few train clips or a missing neighbour set would stop it only after the earlier
folds were embedded and trained. :func:`preflight` reads the lists (no audio is opened, no model
is loaded, nothing is written) and raises :class:`~sept.errors.DataError` or
:class:`~sept.errors.ConfigError` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sept.backbones.registry import DEFAULT_BACKBONE
from sept.data.guards import check_test_classes
from sept.errors import DataError

if TYPE_CHECKING:
    from sept.data.dataset import Dataset
    from sept.protocols.common import ProtocolSettings
    from sept.training.config import RunConfig


def preflight(
    protocol: str,
    dataset: Dataset,
    methods: Sequence[str],
    settings: ProtocolSettings,
    targets: Sequence[Dataset] | None = None,
) -> None:
    """Raise on the first input that would stop ``protocol`` part-way (see the module doc)."""
    from sept.data.sampling import sample_few_shot
    from sept.protocols.common import run_neighbors
    from sept.protocols.needs import run_split, training_classes, training_prompt_names

    configs = {(m, s): _config(m, protocol, s, settings) for m in methods for s in settings.seeds}
    for fold in settings.folds_of(dataset.folds):
        split = run_split(dataset, fold)  # an unknown fold, a malformed list, duplicates, a train/test leak
        check_test_classes(split)
        classes = training_classes(protocol, split)  # base-to-new needs two classes on each side
        if any(c.spec.trains for c in configs.values()):  # a class with fewer clips than --shots
            try:
                sample_few_shot(
                    split.train,
                    classes,
                    settings.shots,
                    0,
                    key=(split.dataset, split.fold),
                    with_replacement=settings.with_replacement,
                )
            except DataError as exc:
                where = f"dataset {dataset.name!r}" + (f" fold {fold}" if fold is not None else "")
                raise DataError(f"{where}, train list {split.train_source}: {exc}") from None
        for config in configs.values():  # a +sept run needs a set covering its training classes
            if "sept" in config.regularizers:
                run_neighbors(config, training_prompt_names(protocol, split, config), dataset.name)
    from sept.protocols.needs import target_folds

    for target in targets or ():  # a CSV target with folds must name its test fold
        for fold in target_folds(target):
            check_test_classes(target.split(fold))


def _config(method: str, protocol: str, seed: int, settings: ProtocolSettings) -> RunConfig:
    """The config of one run, as the run resolves it (no backbone needed)."""
    return settings.config(method, protocol, seed, settings.settings.get("backbone") or DEFAULT_BACKBONE)
