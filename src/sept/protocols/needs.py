"""What each protocol needs from a dataset: its split, training classes, shots and test clips.

The protocols, the sweep runner (which embeds every needed clip once before dispatching cells) and
the preflight checks ask this module, so the three never disagree on which clips a run reads.

- the split of a fold is labelled with the dataset's id (:func:`sept.runs.identity.dataset_id`),
  so few-shot manifests of two different user datasets never collide;
- training classes: the base classes (first half of the sorted names) for ``base2new``, every
  class otherwise; K shots of them are drawn once per (dataset, fold, K, seed, subset) into a
  manifest under the run root;
- test clips: the fold's test list; for ``xd`` also each target's test data
  (:func:`target_split`): the test lists of the folds chosen for it (``Dataset.target_folds``: a
  grid target's ``folds: [k]``, ``sept run --target-fold NAME=K``), else every fold's test list of a
  registered dataset (all its test data), or a single-split dataset's test list; a user's dataset
  with several folds must name its test fold (its first fold may be another dataset's training
  pool). :func:`target_overlap` reports classes and files a target shares with the source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sept.errors import DataError

if TYPE_CHECKING:
    from sept.data.clips import Clip
    from sept.data.dataset import Dataset, Fold, Split
    from sept.data.manifest import Manifest
    from sept.training.config import RunConfig


def run_split(dataset: Dataset, fold: Fold) -> Split:
    """The split of ``fold``, labelled with the dataset's id."""
    from sept.runs.identity import dataset_id

    split = dataset.split(fold)
    return dataclasses.replace(split, dataset=dataset_id(dataset))


def with_class_names(split: Split, config: RunConfig) -> Split:
    """``split`` whose prompt names follow ``config.class_names`` (``raw``: the labels as they are)."""
    if getattr(config, "class_names", "readable") == "raw":
        return dataclasses.replace(split, readable=tuple(split.classnames))
    return split


def training_prompt_names(protocol: str, split: Split, config: RunConfig) -> list[str]:
    """The names the prompts give the classes a run trains on (its neighbour set must cover them)."""
    return readable_of(with_class_names(split, config), training_classes(protocol, split))


def training_subset(protocol: str) -> str:
    """The class subset a protocol trains on: ``base`` for base2new, else ``all``."""
    return "base" if protocol == "base2new" else "all"


def base_and_new(split: Split) -> tuple[list[str], list[str]]:
    """Base and new classes of a split (raw names); :class:`DataError` when a side has fewer than 2
    classes (one class scores 100% whatever the model does)."""
    from sept.data.guards import check_base_new
    from sept.data.sampling import base_new_split

    base, new = base_new_split(split.classnames)
    check_base_new(base, new, split.dataset)
    return base, new


def training_classes(protocol: str, split: Split) -> list[str]:
    """The raw class names ``protocol`` trains on in ``split``."""
    return base_and_new(split)[0] if protocol == "base2new" else list(split.classnames)


def readable_of(split: Split, classes: Sequence[str]) -> list[str]:
    """The prompt forms of raw ``classes`` of ``split``."""
    names = dict(zip(split.classnames, split.readable, strict=True))
    return [names[c] for c in classes]


def train_manifest(
    protocol: str,
    split: Split,
    *,
    shots: int,
    seed: int,
    run_root: str | Path,
    with_replacement: bool,
) -> tuple[Manifest, Path]:
    """The K-shot manifest of a run (drawn once, then read back)."""
    from sept.data.manifest import few_shot_manifest

    return few_shot_manifest(
        split,
        shots=shots,
        seed=seed,
        run_root=run_root,
        subset=training_subset(protocol),
        with_replacement=with_replacement,
    )


def target_folds(target: Dataset) -> tuple[Fold, ...]:
    """The folds whose test lists a cross-dataset target is evaluated on (see the module doc)."""
    chosen = target.target_folds
    if chosen:
        return tuple(target.resolve_fold(f) for f in chosen)
    if not target.folds:
        return (None,)
    if target.info is not None:  # a registered dataset: its folds' test lists are all its test data
        return tuple(target.folds)
    raise DataError(
        f"cross-dataset target {target.name!r} has folds {', '.join(map(str, target.folds))}: name the fold "
        f"that holds its test clips (grid: `folds: [K]` on the target; sept run: --target-fold "
        f"{target.name}=K); its first fold is not assumed, it may be another dataset's training pool"
    )


def target_split(target: Dataset) -> Split:
    """The test data a cross-dataset target is evaluated on: the test clips of every fold of
    :func:`target_folds` (each clip once), over the classes of those folds."""
    folds = target_folds(target)
    splits = [run_split(target, f) for f in folds]
    first = splits[0]
    if len(splits) == 1:
        return first
    for other in splits[1:]:
        if other.classnames != first.classnames:
            raise DataError(
                f"cross-dataset target {target.name!r}: folds {first.fold} and {other.fold} have different "
                "classes; name one test fold"
            )
    test = list(dict.fromkeys(c for s in splits for c in s.test))
    return dataclasses.replace(
        first,
        fold=None,
        test=tuple(test) if isinstance(first.test, tuple) else test,
        test_source=" + ".join(s.test_source for s in splits),
    )


def target_overlap(source: Split, target: Split) -> dict[str, object]:
    """Classes (readable names, case-insensitive) and audio files (same content) that a target's
    test data shares with the source's clips: ``{"classes": [...], "files": n}``."""
    from sept.utils.hashing import hash_file

    own = {r.lower(): r for r in source.readable}
    classes = sorted({r for r in target.readable if r.lower() in own})
    source_clips = list(dict.fromkeys([*source.train, *source.test]))

    def size(clip: Clip) -> int | None:
        try:
            return Path(clip.path).stat().st_size
        except OSError:
            return None

    by_size: dict[int, list[Clip]] = {}
    for clip in source_clips:
        n = size(clip)
        if n is not None:
            by_size.setdefault(n, []).append(clip)
    digests: dict[Path, str] = {}

    def digest(clip: Clip) -> str:
        path = Path(clip.path)
        if path not in digests:
            digests[path] = hash_file(path)
        return digests[path]

    shared = 0
    for clip in target.test:  # only same-size files are hashed
        n = size(clip)
        candidates = by_size.get(n, []) if n is not None else []
        if candidates and digest(clip) in {digest(c) for c in candidates}:
            shared += 1
    return {"classes": classes, "files": shared}


def clips_needed(
    protocol: str,
    dataset: Dataset,
    fold: Fold,
    *,
    trains: bool,
    shots: int,
    seed: int,
    run_root: str | Path,
    with_replacement: bool,
    targets: Sequence[Dataset] = (),
) -> list[Clip]:
    """Every clip one run reads: its few-shot train clips (the manifest is drawn now, exactly as the
    run draws it) and its test clips (and the targets' for xd)."""
    from sept.data.manifest import manifest_clips

    split = run_split(dataset, fold)
    clips: dict[Clip, None] = dict.fromkeys(split.test)
    if trains:
        manifest, _ = train_manifest(
            protocol, split, shots=shots, seed=seed, run_root=run_root, with_replacement=with_replacement
        )
        clips.update(dict.fromkeys(manifest_clips(manifest, split)))
    if protocol == "xd":
        for target in targets:
            clips.update(dict.fromkeys(target_split(target).test))
    return list(clips)
