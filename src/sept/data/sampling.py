"""Few-shot sampling, the base/new class split and cross-dataset source/target sets.

Sampling is deterministic across processes and machines: candidates are sorted, and each
class draws from its own ``numpy`` Generator seeded by ``seed`` and a stable hash of
(dataset, fold, class name), never Python's ``hash()``. Each class's draw is a permutation of
its clips, so the first K shots of seed s are the same whatever the other classes or K' > K.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sept.data.clips import Clip
from sept.data.dataset import Split
from sept.errors import DataError
from sept.utils.hashing import hash_json

#: named class subsets of a split
SUBSETS = ("all", "base", "new")


def base_new_split(classnames: Iterable[str]) -> tuple[list[str], list[str]]:
    """Sort the class names; base = the first ceil(n/2), new = the rest (CoOp's base-to-new protocol)."""
    names = sorted(set(classnames))
    n_base = math.ceil(len(names) / 2)
    return names[:n_base], names[n_base:]


def resolve_subset(classnames: Sequence[str], subset: str | Iterable[str] = "all") -> tuple[str, list[str]]:
    """(tag, sorted classes) for "all", "base", "new" or an explicit list of class names.

    An explicit list equal to a named subset gets that subset's tag; any other list gets
    ``classes-<hash>`` so that the same set of classes always has the same tag.
    """
    names = sorted(set(classnames))
    base, new = base_new_split(names)
    named = {"all": names, "base": base, "new": new}
    if isinstance(subset, str):
        if subset not in named:
            raise DataError(
                f"unknown class subset {subset!r}; give one of {', '.join(SUBSETS)} or a list of classes"
            )
        if not named[subset]:
            raise DataError(f"class subset {subset!r} of {len(names)} class(es) is empty")
        return subset, named[subset]
    chosen = sorted(set(subset))
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise DataError(f"unknown class(es) {', '.join(map(repr, unknown))}; classes: {', '.join(names)}")
    if not chosen:
        raise DataError("the list of classes to sample is empty")
    for tag in SUBSETS:
        if chosen == named[tag]:
            return tag, chosen
    return f"classes-{hash_json(chosen)[:12]}", chosen


#: largest seed accepted anywhere (runs, grids, samplers): the int64 range torch and numpy seed from
MAX_SEED = 2**63 - 1


def stable_seed(*parts: Any) -> int:
    """A 64-bit integer from JSON-able ``parts``, equal in every process (unlike ``hash()``)."""
    return int(hash_json(list(parts))[:16], 16)


def _candidates(clips: Iterable[Clip], classname: str) -> list[Clip]:
    """The clips of one class, one per relpath, sorted by relpath."""
    by_rel: dict[str, Clip] = {}
    for clip in clips:
        if clip.classname == classname:
            by_rel.setdefault(clip.relpath, clip)
    return [by_rel[r] for r in sorted(by_rel)]


def sample_few_shot(
    clips: Sequence[Clip],
    classnames: Iterable[str],
    shots: int,
    seed: int,
    *,
    key: Sequence[Any] = (),
    with_replacement: bool = False,
) -> list[Clip]:
    """K = ``shots`` clips per class of ``classnames`` from ``clips``, grouped by sorted class.

    ``key`` (e.g. ``(dataset, fold)``) enters each class's Generator seed with the class name.
    A class with fewer than K clips raises :class:`DataError` listing every short class, unless
    ``with_replacement``: then all its clips are taken once and the rest drawn with replacement.
    """
    import numpy as np

    if shots < 1:
        raise DataError(f"shots must be >= 1, got {shots}")
    if not 0 <= seed <= MAX_SEED:
        raise DataError(f"seed must be between 0 and {MAX_SEED} (2**63 - 1), got {seed}")
    pools = {c: _candidates(clips, c) for c in sorted(set(classnames))}
    empty = [c for c, pool in pools.items() if not pool]
    if empty:
        raise DataError(f"no train clips for class(es) {', '.join(map(repr, empty))}")
    short = {c: len(p) for c, p in pools.items() if len(p) < shots}
    if short and not with_replacement:
        listing = ", ".join(f"{c!r} ({n})" for c, n in short.items())
        raise DataError(
            f"{len(short)} class(es) have fewer than {shots} train clips: {listing}; "
            "lower the shots or sample with replacement (--with-replacement)"
        )
    chosen: list[Clip] = []
    for classname, pool in pools.items():
        rng = np.random.default_rng([seed, stable_seed(*key, classname)])
        n = len(pool)
        order = rng.permutation(n)
        if n < shots:
            order = np.concatenate([order, rng.choice(n, size=shots - n, replace=True)])
        chosen.extend(pool[int(i)] for i in order[:shots])
    return chosen


def stratified_split(
    clips: Sequence[Clip], test_fraction: float, seed: int, *, key: Sequence[Any] = ()
) -> tuple[list[Clip], list[Clip]]:
    """(train, test): ``round(test_fraction * n_c)`` clips of each class held out for test.

    Each class keeps at least one clip on each side, so every class needs two clips (else
    :class:`DataError` lists the short classes). The draw is a per-class permutation of the
    clips sorted by relpath, seeded by ``seed`` and the class name (as :func:`sample_few_shot`),
    so it is the same on every machine. Both lists keep the order of ``clips``.
    """
    import numpy as np

    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    if seed < 0:
        raise DataError(f"split seed must be >= 0, got {seed}")
    classes = sorted({c.classname for c in clips})
    pools = {c: _candidates(clips, c) for c in classes}
    short = {c: len(p) for c, p in pools.items() if len(p) < 2}
    if short:
        listing = ", ".join(f"{c!r} ({n})" for c, n in short.items())
        raise DataError(
            f"{len(short)} class(es) have fewer than 2 clips, so they cannot be on both sides of a "
            f"train/test split: {listing}"
        )
    held: set[str] = set()
    for classname, pool in pools.items():
        n = len(pool)
        n_test = min(max(round(test_fraction * n), 1), n - 1)
        rng = np.random.default_rng([seed, stable_seed("test-split", *key, classname)])
        held.update(pool[int(i)].relpath for i in rng.permutation(n)[:n_test])
    train = [c for c in clips if c.relpath not in held]
    test = [c for c in clips if c.relpath in held]
    return train, test


@dataclass(frozen=True)
class CrossDatasetSets:
    """Cross-dataset transfer: train on ``source.train`` (all classes), evaluate zero-shot on each
    target's test clips among that target's full class set."""

    source: Split
    targets: dict[str, Split]
