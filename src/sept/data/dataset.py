"""A dataset as named splits: train and test clips per fold, sorted class names and readable names.

Three layouts cover the benchmark and user data:

- :class:`TrainTestDataset`: a train list and a test list per fold (the ``MahiA/<Name>`` layout:
  ``train.csv``/``test.csv``, or ``csv_files/train_{k}.csv``/``test_{k}.csv`` for fold k), or any
  pair of CSVs / class folders a user gives;
- :class:`FoldColumnDataset`: one table with a ``fold`` per clip; fold k tests on fold k and trains
  on the others (a fold column of ``train``/``test`` values gives a single split);
- :class:`GroupHoldoutDataset`: one table with a group per clip (a speaker); the last groups in
  sorted order are the test set, so no group is on both sides;
- :class:`AudioFolderDataset`: ``train/`` and ``test/`` sub-folders, each a folder per class;
- :class:`HeldOutDataset`: one list of clips with a stratified fraction of each class held out
  for test, drawn once and written to a manifest.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sept.data.clips import Clip, is_audiofolder, read_clip_csv, scan_audiofolder, scan_class_folders
from sept.data.guards import check_clips, check_split
from sept.data.names import readable_name
from sept.errors import DataError

#: a fold number, or None for a dataset with a single train/test split
Fold = int | None


@dataclass(frozen=True)
class Split:
    """The train and test clips of one fold (``fold=None``: the single train/test split).

    ``classnames`` are the sorted train class names; a clip's label is the index of its class
    name there (:meth:`labels`). ``readable`` gives the prompt form of each class name, aligned.
    ``train_root`` / ``test_root`` are the folders the relpaths are relative to.
    """

    dataset: str
    fold: Fold
    train: tuple[Clip, ...]
    test: tuple[Clip, ...]
    classnames: tuple[str, ...]
    readable: tuple[str, ...]
    train_source: str
    test_source: str
    train_root: Path
    test_root: Path

    def label(self, classname: str) -> int:
        """Index of ``classname`` in :attr:`classnames`; a class absent from train raises :class:`DataError`."""
        try:
            return self.classnames.index(classname)
        except ValueError:
            raise DataError(
                f"dataset {self.dataset!r} fold {self.fold}: class {classname!r} is not among the train classes "
                f"({', '.join(self.classnames)}); run `sept data check` on it"
            ) from None

    def labels(self, clips: Iterable[Clip]) -> list[int]:
        """Labels [N] of ``clips`` (indices into :attr:`classnames`)."""
        index = {c: i for i, c in enumerate(self.classnames)}
        out = []
        for clip in clips:
            if clip.classname not in index:
                self.label(clip.classname)  # raises with the full message
            out.append(index[clip.classname])
        return out

    def restrict(self, classes: Iterable[str]) -> Split:
        """The same split keeping only ``classes`` (relabelled by their sorted order), e.g. base or new classes."""
        keep = sorted(set(classes))
        unknown = [c for c in keep if c not in self.classnames]
        if unknown:
            raise DataError(
                f"dataset {self.dataset!r} fold {self.fold}: unknown class(es) {', '.join(map(repr, unknown))}; "
                f"classes: {', '.join(self.classnames)}"
            )
        names = dict(zip(self.classnames, self.readable, strict=True))
        wanted = set(keep)
        return replace(
            self,
            train=tuple(c for c in self.train if c.classname in wanted),
            test=tuple(c for c in self.test if c.classname in wanted),
            classnames=tuple(keep),
            readable=tuple(names[c] for c in keep),
        )


class Dataset(ABC):
    """A named dataset: :meth:`split` gives the train/test clips of a fold.

    ``folds`` lists the fold numbers (empty: one train/test split); ``split(None)`` means the
    default fold. ``readable_overrides`` maps raw class names to prompt forms where the generic
    rule (:func:`sept.data.names.readable_name`) is not enough. ``absolute_paths`` lets CSV rows
    name absolute paths outside ``root`` (a user's own lists; not a downloaded dataset's).
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        *,
        default_fold: Fold = None,
        readable_overrides: Mapping[str, str] | None = None,
        info: Any = None,
        absolute_paths: bool = False,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self._default_fold = default_fold
        self.readable_overrides = dict(readable_overrides or {})
        self.info = info  # the registry's DatasetInfo for named datasets, else None
        self.absolute_paths = absolute_paths  # CSV rows may name absolute paths (a user's own lists)
        #: as a cross-dataset target: the folds whose test lists it is evaluated on (None: the rule
        #: of sept.protocols.needs.target_folds)
        self.target_folds: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r}, folds={list(self.folds)})"

    @property
    @abstractmethod
    def folds(self) -> tuple[int, ...]:
        """Fold numbers, sorted; empty for a single train/test split."""

    @property
    def default_fold(self) -> Fold:
        """The fold used when none is named (None for a single split)."""
        if not self.folds:
            return None
        return self._default_fold if self._default_fold is not None else self.folds[0]

    def resolve_fold(self, fold: Fold) -> Fold:
        """Validate ``fold``; None becomes :attr:`default_fold`."""
        if fold is None:
            return self.default_fold
        if not self.folds:
            raise DataError(f"dataset {self.name!r} has a single train/test split; it has no fold {fold}")
        if fold not in self.folds:
            raise DataError(
                f"dataset {self.name!r} has no fold {fold}; folds: {', '.join(map(str, self.folds))}"
            )
        return fold

    @abstractmethod
    def _load(self, fold: Fold, strict: bool) -> tuple[list[Clip], list[Clip], str, str, Path, Path]:
        """(train, test, train_source, test_source, train_root, test_root) of a resolved fold."""

    def split(self, fold: Fold = None, *, strict: bool = True) -> Split:
        """Train and test clips of ``fold`` (None: the default fold or the single split).

        ``strict=False`` keeps rows whose path escapes the dataset root (``sept data check``
        reports them); normal loading rejects them, and what :func:`sept.data.guards.check_split`
        refuses (duplicates, test files that are train files), with :class:`DataError`.
        """
        fold = self.resolve_fold(fold)
        train, test, train_source, test_source, train_root, test_root = self._load(fold, strict)
        where = f"dataset {self.name!r}" + (f" fold {fold}" if fold is not None else "")
        if not train:
            raise DataError(f"{where}: the train list {train_source} is empty")
        if not test:
            raise DataError(f"{where}: the test list {test_source} is empty")
        classnames = tuple(sorted({c.classname for c in train}))
        split = Split(
            dataset=self.name,
            fold=fold,
            train=tuple(train),
            test=tuple(test),
            classnames=classnames,
            readable=tuple(self.readable_name(c) for c in classnames),
            train_source=train_source,
            test_source=test_source,
            train_root=train_root,
            test_root=test_root,
        )
        if strict:  # duplicates, test files that are train files
            check_split(split)
        return split

    def splits(self, *, strict: bool = True) -> list[Split]:
        """One split per fold (or the single split)."""
        return [self.split(f, strict=strict) for f in (self.folds or (None,))]

    def classnames(self, fold: Fold = None) -> list[str]:
        """Sorted train class names of ``fold``."""
        return list(self.split(fold).classnames)

    def readable_name(self, raw: str) -> str:
        """Prompt form of a raw class name ("city_center" -> "city center")."""
        return readable_name(raw, self.readable_overrides)

    def readable(self, raw: str) -> str:
        """Alias of :meth:`readable_name`."""
        return self.readable_name(raw)

    def readable_names(self, fold: Fold = None) -> list[str]:
        """Prompt forms of :meth:`classnames`, aligned."""
        return [self.readable_name(c) for c in self.classnames(fold)]


def _load_source(source: Path, root: Path, strict: bool, what: str, absolute: bool = False) -> list[Clip]:
    if source.is_file():
        return read_clip_csv(source, root, allow_escaping=not strict, allow_absolute=absolute)
    if source.is_dir():
        return scan_class_folders(source)
    raise DataError(
        f"{what} {str(source)!r} does not exist (expected a CSV path,classname or a folder per class)"
    )


class TrainTestDataset(Dataset):
    """A train list and a test list per fold: CSVs (``path,classname``) or folders per class.

    ``sources`` maps each fold (None for a single split) to its (train, test) sources; CSV paths
    are relative to ``root``. :meth:`mahia` builds the ``MahiA/<Name>`` layout.
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        sources: Mapping[Fold, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
        **kwargs: Any,
    ) -> None:
        super().__init__(name, root, **kwargs)
        if not sources:
            raise DataError(f"dataset {name!r}: no train/test sources given")
        if None in sources and len(sources) > 1:
            raise DataError(f"dataset {name!r}: give either folds or a single split, not both")
        self.sources = {f: (Path(tr), Path(te)) for f, (tr, te) in sources.items()}

    @classmethod
    def mahia(
        cls, name: str, root: str | os.PathLike[str], n_folds: int = 0, **kwargs: Any
    ) -> TrainTestDataset:
        """The ``MahiA/<Name>`` layout: ``train.csv``/``test.csv``, or for ``n_folds`` > 0
        ``csv_files/train_{k}.csv``/``csv_files/test_{k}.csv`` for k = 1..n_folds."""
        root = Path(root)
        if n_folds:
            sources: dict[Fold, tuple[Path, Path]] = {
                k: (root / "csv_files" / f"train_{k}.csv", root / "csv_files" / f"test_{k}.csv")
                for k in range(1, n_folds + 1)
            }
        else:
            sources = {None: (root / "train.csv", root / "test.csv")}
        return cls(name, root, sources, **kwargs)

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted(f for f in self.sources if f is not None))

    def _base(self, source: Path) -> Path:
        return source if source.is_dir() else self.root

    def _load(self, fold: Fold, strict: bool) -> tuple[list[Clip], list[Clip], str, str, Path, Path]:
        if not self.root.is_dir():
            raise DataError(
                f"dataset {self.name!r}: folder {str(self.root)!r} does not exist"
                + (f"; download it with `sept data download {self.name} --root DIR`" if self.info else "")
            )
        train_src, test_src = self.sources[fold]
        what = f"dataset {self.name!r}:"
        train = _load_source(
            train_src, self._base(train_src), strict, f"{what} train list", self.absolute_paths
        )
        test = _load_source(test_src, self._base(test_src), strict, f"{what} test list", self.absolute_paths)
        return train, test, str(train_src), str(test_src), self._base(train_src), self._base(test_src)


class _TableDataset(Dataset):
    """A dataset read from one CSV table (cached per strictness)."""

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        table: str | os.PathLike[str],
        *,
        class_column: str = "classname",
        fold_column: str = "fold",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, root, **kwargs)
        self.table = Path(table)
        self.class_column = class_column
        self.fold_column = fold_column
        self._cache: dict[bool, list[Clip]] = {}

    def clips(self, strict: bool = True) -> list[Clip]:
        """Every clip of the table, in file order."""
        if strict not in self._cache:
            if not self.table.is_file():
                raise DataError(f"dataset {self.name!r}: table {str(self.table)!r} does not exist")
            clips = read_clip_csv(
                self.table,
                self.root,
                class_column=self.class_column,
                fold_column=self.fold_column,
                allow_escaping=not strict,
                allow_absolute=self.absolute_paths,
            )
            no_fold = [c.relpath for c in clips if c.fold is None]
            if no_fold:
                raise DataError(
                    f"dataset {self.name!r}: {len(no_fold)} row(s) of {str(self.table)!r} have no "
                    f"{self.fold_column!r} value (first: {no_fold[0]!r})"
                )
            self._cache[strict] = clips
        return self._cache[strict]


def _fold_number(value: str, table: Path, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(
            f"table {str(table)!r}: column {column!r} holds {value!r}; folds must be integers "
            "(or the values train/test for a single split)"
        ) from None


class FoldColumnDataset(_TableDataset):
    """One table with a fold per clip: fold k tests on the clips of fold k and trains on the others.

    A fold column holding only ``train`` and ``test`` gives a single split instead.
    """

    def _values(self) -> set[str]:
        return {c.fold for c in self.clips() if c.fold is not None}

    def _is_train_test(self) -> bool:
        return {v.lower() for v in self._values()} <= {"train", "test"}

    @property
    def folds(self) -> tuple[int, ...]:
        if self._is_train_test():
            return ()
        return tuple(sorted({_fold_number(v, self.table, self.fold_column) for v in self._values()}))

    def _load(self, fold: Fold, strict: bool) -> tuple[list[Clip], list[Clip], str, str, Path, Path]:
        clips = self.clips(strict)
        col = f"{self.table}[{self.fold_column}]"
        if fold is None:  # train/test values
            train = [c for c in clips if c.fold.lower() == "train"]
            test = [c for c in clips if c.fold.lower() == "test"]
            return train, test, f"{col} == train", f"{col} == test", self.root, self.root
        train = [c for c in clips if _fold_number(c.fold, self.table, self.fold_column) != fold]
        test = [c for c in clips if _fold_number(c.fold, self.table, self.fold_column) == fold]
        others = ",".join(str(f) for f in self.folds if f != fold)
        return train, test, f"{col} in {{{others}}}", f"{col} == {fold}", self.root, self.root


class GroupHoldoutDataset(_TableDataset):
    """One table with a group per clip (``fold_column``, e.g. a speaker): the last ``n_test_groups``
    groups in sorted order form the test set, the others the train set (no group on both sides)."""

    def __init__(self, *args: Any, n_test_groups: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if n_test_groups < 1:
            raise DataError(f"dataset {self.name!r}: n_test_groups must be >= 1, got {n_test_groups}")
        self.n_test_groups = n_test_groups

    @property
    def folds(self) -> tuple[int, ...]:
        return ()

    def groups(self) -> tuple[list[str], list[str]]:
        """(train groups, test groups), sorted."""
        groups = sorted({c.fold for c in self.clips() if c.fold is not None})
        if len(groups) <= self.n_test_groups:
            raise DataError(
                f"dataset {self.name!r}: {len(groups)} {self.fold_column!r} group(s) in {str(self.table)!r}; "
                f"need more than the {self.n_test_groups} held out for test"
            )
        return groups[: -self.n_test_groups], groups[-self.n_test_groups :]

    def _load(self, fold: Fold, strict: bool) -> tuple[list[Clip], list[Clip], str, str, Path, Path]:
        train_groups, test_groups = self.groups()
        held = set(test_groups)
        clips = self.clips(strict)
        train = [c for c in clips if c.fold not in held]
        test = [c for c in clips if c.fold in held]
        col = f"{self.table}[{self.fold_column}]"
        return (
            train,
            test,
            f"{col} in {{{','.join(train_groups)}}}",
            f"{col} in {{{','.join(test_groups)}}}",
            self.root,
            self.root,
        )


class AudioFolderDataset(Dataset):
    """The audiofolder layout: ``root/train/<classname>/...`` and ``root/test/<classname>/...``
    (one train/test split; relpaths relative to ``root``, e.g. ``train/dog/1.wav``)."""

    @property
    def folds(self) -> tuple[int, ...]:
        return ()

    def _load(self, fold: Fold, strict: bool) -> tuple[list[Clip], list[Clip], str, str, Path, Path]:
        clips = scan_audiofolder(self.root)
        train = [c for c in clips if c.fold == "train"]
        test = [c for c in clips if c.fold == "test"]
        return train, test, str(self.root / "train"), str(self.root / "test"), self.root, self.root


class HeldOutDataset(Dataset):
    """All clips of a CSV ``path,classname`` or a folder per class, with a stratified
    ``test_fraction`` of each class held out for test (one train/test split).

    The split is drawn with ``split_seed`` (:func:`sept.data.sampling.stratified_split`); with
    ``manifest_dir`` (``<run_root>/manifests`` for ``sept run``) it is drawn once, written to a
    manifest and reused by every later load (see :func:`sept.data.manifest.held_out_split`).
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        source: str | os.PathLike[str],
        *,
        test_fraction: float,
        split_seed: int = 0,
        manifest_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, root, **kwargs)
        if not 0 < test_fraction < 1:
            raise DataError(f"dataset {name!r}: test fraction must be between 0 and 1, got {test_fraction}")
        if split_seed < 0:
            raise DataError(f"dataset {name!r}: split seed must be >= 0, got {split_seed}")
        self.source = Path(source)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.manifest_dir = Path(manifest_dir) if manifest_dir is not None else None

    @property
    def folds(self) -> tuple[int, ...]:
        return ()

    def _load(self, fold: Fold, strict: bool) -> tuple[list[Clip], list[Clip], str, str, Path, Path]:
        from sept.data.manifest import held_out_split

        base = self.source if self.source.is_dir() else self.root
        clips = _load_source(
            self.source, base, strict, f"dataset {self.name!r}: clip list", self.absolute_paths
        )
        if strict:  # a file listed twice could land on both sides
            check_clips(clips, str(self.source), f"dataset {self.name!r}")
        train, test = held_out_split(
            clips,
            dataset=self.name,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            manifest_dir=self.manifest_dir if strict else None,
        )
        what = f"{self.source} (test fraction {self.test_fraction:g}, split seed {self.split_seed})"
        return train, test, f"{what}: train", f"{what}: test", base, base


def _has_column(csv_path: Path, column: str) -> bool:
    import csv

    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    return column in [h.strip() for h in header]


def load_dataset(
    source: str | os.PathLike[str],
    *,
    test: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    name: str | None = None,
    default_fold: Fold = None,
    readable_overrides: Mapping[str, str] | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
    manifest_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """A user's dataset: a CSV ``path,classname[,fold]``, a folder per class, or an audiofolder.

    - ``test`` (a CSV or a folder per class): one train/test split;
    - a folder with ``train/`` and ``test/`` sub-folders, each a folder per class (the
      audiofolder layout): one train/test split;
    - ``test_fraction`` F (with ``split_seed``): a stratified F of each class held out for test,
      written once under ``manifest_dir`` and reused (:class:`HeldOutDataset`);
    - otherwise the CSV needs a ``fold`` column (integers: fold k tests on fold k; or ``train``/``test``).

    CSV paths are relative to ``root`` (default: the train CSV's folder) or absolute. ``name``
    defaults to the source's stem.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(
            f"dataset source {str(source)!r} does not exist (a CSV path,classname[,fold] or a folder)"
        )
    base = Path(root) if root is not None else (source if source.is_dir() else source.parent)
    name = name or (source.name if source.is_dir() else source.stem)
    opts: dict[str, Any] = {"readable_overrides": readable_overrides, "absolute_paths": True}
    layout = (
        "a test list"
        if test is not None
        else "train/ and test/ sub-folders"
        if source.is_dir() and is_audiofolder(source)
        else "a fold column"
        if source.is_file() and _has_column(source, "fold")
        else None
    )
    if test_fraction is not None:
        if layout is not None:
            raise DataError(
                f"dataset source {str(source)!r} already has {layout}; drop the test fraction "
                "(--test-fraction) or give a source without a split"
            )
        return HeldOutDataset(
            name,
            base,
            source,
            test_fraction=test_fraction,
            split_seed=split_seed,
            manifest_dir=manifest_dir,
            **opts,
        )
    if test is not None:
        return TrainTestDataset(name, base, {None: (source, Path(test))}, **opts)
    if layout == "train/ and test/ sub-folders":
        return AudioFolderDataset(name, source, **opts)
    if layout == "a fold column":
        return FoldColumnDataset(name, base, source, default_fold=default_fold, **opts)
    what = (
        "a folder per class has no train/ and test/ sub-folders"
        if source.is_dir()
        else "it has no 'fold' column"
    )
    raise DataError(
        f"dataset source {str(source)!r}: {what} and no test list was given; give a test CSV or folder "
        "(test=..., --test), hold out a stratified fraction of each class (test_fraction=F, --test-fraction F)"
        + (", or use train/ and test/ sub-folders" if source.is_dir() else ", or add a fold column")
    )
