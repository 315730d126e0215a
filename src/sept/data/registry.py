"""Datasets by name: ``list_datasets()``, ``dataset_info(name)`` and ``get_dataset(name, root)``.

The registry is data: the 11 benchmark datasets (``MahiA/<Name>`` on the Hugging Face Hub, see
docs/BENCHMARK.md) and two small real sets whose root the user gives (``us8k-mini``, ``fsdd``).
A dataset's folder is ``root`` when given, else ``$SEPT_DATA_ROOT/<Name>``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sept.data.dataset import Dataset, FoldColumnDataset, GroupHoldoutDataset, TrainTestDataset, load_dataset
from sept.errors import DataError, UnknownNameError

#: environment variable naming the folder that holds one sub-folder per dataset
DATA_ROOT_ENV = "SEPT_DATA_ROOT"


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a named dataset.

    ``layout``: "mahia" (train/test CSVs, per fold under csv_files/), "fold-column" (one table
    with a fold per clip) or "group-holdout" (one table; the last groups in sorted order are test).
    ``folds``: number of folds (0: a single train/test split). ``classnames``: the expected
    sorted class names, as the source writes them.
    """

    name: str
    task: str
    classnames: tuple[str, ...]
    folds: int
    layout: Literal["mahia", "fold-column", "group-holdout"] = "mahia"
    hub_repo: str | None = None
    zipped: bool = False
    default_fold: int | None = None
    readable_overrides: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    benchmark: bool = True

    @property
    def split_description(self) -> str:
        return f"{self.folds} folds" if self.folds else "train/test"


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


_ESC50 = _names(
    "airplane, breathing, brushing teeth, can opening, car horn, cat, chainsaw, chirping birds, church bells, "
    "clapping, clock alarm, clock tick, coughing, cow, crackling fire, crickets, crow, crying baby, dog, "
    "door wood creaks, door wood knock, drinking sipping, engine, fireworks, footsteps, frog, glass breaking, "
    "hand saw, helicopter, hen, insects, keyboard typing, laughing, mouse click, pig, pouring water, rain, "
    "rooster, sea waves, sheep, siren, sneezing, snoring, thunderstorm, toilet flush, train, vacuum cleaner, "
    "washing machine, water drops, wind"
)
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _hub(name: str, task: str, classnames: str | tuple[str, ...], folds: int, **kw: Any) -> DatasetInfo:
    names = _names(classnames) if isinstance(classnames, str) else classnames
    return DatasetInfo(name, task, names, folds, hub_repo=f"MahiA/{name}", **kw)


_REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _hub("Beijing-Opera", "percussion instrument", "bangu, daluo, naobo, xiaoluo", 5),
        _hub("CREMA-D", "speech emotion", "anger, disgust, fear, happy, neutral, sad", 0),
        _hub("ESC50", "environmental sound", _ESC50, 5),
        _hub(
            "ESC50-Actions",
            "human action sounds",
            "breathing, brushing teeth, clapping, coughing, crying baby, drinking sipping, footsteps, laughing, "
            "sneezing, snoring",
            5,
        ),
        _hub(
            "GT-Music-Genre",
            "music genre",
            "blues, classical, country, disco, hiphop, jazz, metal, pop, reggae, rock",
            0,
            readable_overrides={"hiphop": "hip hop"},
        ),
        _hub(
            "NS-Instruments",
            "instrument family",
            "bass, brass, flute, guitar, keyboard, mallet, organ, reed, string, vocal",
            0,
            zipped=True,
        ),
        _hub("RAVDESS", "speech emotion", "angry, calm, disgust, fearful, happy, neutral, sad, surprised", 0),
        _hub("SESA", "surveillance sounds", "casual, explosion, gunshot, siren", 0),
        _hub(
            "TUT2017",
            "acoustic scene",
            "beach, bus, cafe/restaurant, car, city_center, forest_path, grocery_store, home, library, "
            "metro_station, office, park, residential_area, train, tram",
            4,
        ),
        _hub(
            "UrbanSound8K",
            "urban sound",
            "air conditioner, car horn, children playing, dog bark, drilling, engine idling, gun shot, jackhammer, "
            "siren, street music",
            10,
        ),
        _hub(
            "VocalSound",
            "vocal sound",
            "Cough, Laughter, Sigh, Sneeze, Sniff, Throat clearing",
            0,
            zipped=True,
        ),
        DatasetInfo(
            "us8k-mini",
            "urban sound (UrbanSound8K folds 1-2 subset)",
            _names(
                "air_conditioner, car_horn, children_playing, dog_bark, drilling, engine_idling, gun_shot, "
                "jackhammer, siren, street_music"
            ),
            2,
            layout="fold-column",
            default_fold=2,  # the benchmark default: train on fold 1, test on fold 2
            options={"table": "metadata.csv"},
            benchmark=False,
        ),
        DatasetInfo(
            "fsdd",
            "spoken digits (FSDD, speaker-disjoint)",
            tuple(str(d) for d in range(10)),
            0,
            layout="group-holdout",
            readable_overrides={str(d): word for d, word in enumerate(_DIGITS)},
            options={
                "table": "metadata.csv",
                "class_column": "digit",
                "fold_column": "speaker",
                "n_test_groups": 2,
            },
            benchmark=False,
        ),
    )
}

#: the 11 datasets of the SEPT benchmark, in the order of docs/BENCHMARK.md
BENCHMARK_DATASETS: tuple[str, ...] = tuple(n for n, i in _REGISTRY.items() if i.benchmark)


#: loaders of datasets registered with their own layout: name -> loader(info, folder)
_LOADERS: dict[str, Callable[[DatasetInfo, Path], Dataset]] = {}


def register_dataset(
    info: DatasetInfo,
    loader: Callable[[DatasetInfo, Path], Dataset] | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Make ``info.name`` a dataset name (``get_dataset``, ``--dataset NAME``, sweeps).

    Without ``loader`` the folder is read by ``info.layout`` ("fold-column" with
    ``options={"table": "meta.csv"}``, "mahia", "group-holdout"); with it, ``loader(info, folder)``
    returns the :class:`~sept.data.dataset.Dataset`. Register with ``benchmark=False`` in ``info``
    unless the set belongs to the SEPT benchmark. A name already registered raises
    :class:`ValueError` unless ``overwrite``.
    """
    if info.layout not in ("mahia", "fold-column", "group-holdout"):
        raise ValueError(f"dataset {info.name!r}: unknown layout {info.layout!r}")
    if loader is None and info.layout != "mahia" and "table" not in info.options:
        raise ValueError(
            f"dataset {info.name!r}: layout {info.layout!r} needs options={{'table': 'file.csv'}}"
        )
    taken = [n for n in _REGISTRY if n.lower() == info.name.lower()]
    if taken and not overwrite:
        raise ValueError(f"dataset {taken[0]!r} is already registered (overwrite=True replaces it)")
    for name in taken:
        _REGISTRY.pop(name)
        _LOADERS.pop(name, None)
    _REGISTRY[info.name] = info
    if loader is not None:
        _LOADERS[info.name] = loader


def list_datasets(pattern: str = "*", *, benchmark: bool | None = None) -> list[str]:
    """Registered dataset names matching a glob ``pattern`` (case-insensitive), sorted.

    ``benchmark=True``: only the 11 benchmark datasets; ``False``: only the others; None: all.
    """
    from sept.plugins import load_plugins

    load_plugins()
    names = [n for n, info in _REGISTRY.items() if benchmark is None or info.benchmark == benchmark]
    return sorted((n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())), key=str.lower)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (exact, or case-insensitive when unambiguous)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    from sept.plugins import load_plugins

    load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    folded = [n for n in _REGISTRY if n.lower() == name.lower()]
    if len(folded) == 1:
        return _REGISTRY[folded[0]]
    raise UnknownNameError("dataset", name, list_datasets())


def is_registered(name: str) -> bool:
    try:
        dataset_info(name)
    except UnknownNameError:
        return False
    return True


def default_root(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``root`` if given, else ``$SEPT_DATA_ROOT/<Name>``; raises :class:`DataError` when neither is set."""
    if root is not None:
        return Path(root).expanduser()
    info = dataset_info(name)
    base = os.environ.get(DATA_ROOT_ENV)
    if not base:
        hint = f"; download it with `sept data download {info.name} --root DIR`" if info.hub_repo else ""
        raise DataError(
            f"no folder given for dataset {info.name!r}: pass --root DIR or set ${DATA_ROOT_ENV}{hint}"
        )
    return Path(base).expanduser() / info.name


def get_dataset(name: str, root: str | os.PathLike[str] | None = None) -> Dataset:
    """The registered dataset ``name`` read from ``root`` (see :func:`default_root`)."""
    info = dataset_info(name)
    folder = default_root(info.name, root)
    if info.name in _LOADERS:
        return _LOADERS[info.name](info, folder)
    common: dict[str, Any] = {"readable_overrides": info.readable_overrides, "info": info}
    if info.layout == "mahia":
        return TrainTestDataset.mahia(info.name, folder, info.folds, default_fold=info.default_fold, **common)
    opts = dict(info.options)
    table = folder / opts.pop("table")
    if info.layout == "fold-column":
        return FoldColumnDataset(info.name, folder, table, default_fold=info.default_fold, **opts, **common)
    if info.layout == "group-holdout":
        return GroupHoldoutDataset(info.name, folder, table, **opts, **common)
    raise AssertionError(f"unknown layout {info.layout!r}")  # pragma: no cover


def open_dataset(
    name_or_path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    test: str | os.PathLike[str] | None = None,
    name: str | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
    manifest_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """A registered dataset by name, or a user's CSV / folder per class (see :func:`sept.data.dataset.load_dataset`).

    For a registered name ``root`` is its folder; for a path, ``root`` is the folder the CSV paths
    are relative to, ``test`` an optional test CSV or folder, ``name`` its display name (default:
    the file's stem), and ``test_fraction`` / ``split_seed`` / ``manifest_dir`` a held-out split
    instead of a test list.
    """
    text = os.fspath(name_or_path)
    if is_registered(text):
        for flag, value in (("--test", test), ("--test-fraction", test_fraction)):
            if value is not None:
                raise DataError(
                    f"dataset {text!r} is registered: its test list comes from its layout, drop {flag}"
                )
        return get_dataset(text, root)
    if Path(text).exists():
        return load_dataset(
            text,
            test=test,
            root=root,
            name=name,
            test_fraction=test_fraction,
            split_seed=split_seed,
            manifest_dir=manifest_dir,
        )
    raise UnknownNameError("dataset", text, [*list_datasets(), "(or a path to a CSV or a folder per class)"])
