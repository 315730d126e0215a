"""Means and spreads of run records, in the benchmark's order of averaging.

For one (protocol, backbone, dataset, method, shots) group:

1. per seed, the mean over the folds that seed ran (a dataset without folds has one);
2. mean and sample standard deviation (``ddof=1``; none with a single seed) over seeds.

Each run's H is its own harmonic mean of Base and New, so a dataset's H is the mean of its runs'
H values (not the H of the mean Base and New). The average row of a method is the mean of its
per-dataset means (docs/BENCHMARK.md: the average H is the mean of per-dataset H values); its
spread is the standard deviation over seeds of the per-seed averages over datasets, given when
every dataset has the same seeds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sept.report.collect import RunRecord


@dataclass(frozen=True)
class Stat:
    """A mean over seeds with its sample std (None for one seed) and the number of seeds."""

    mean: float
    std: float | None
    n: int


def stat(values: Sequence[float]) -> Stat:
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


@dataclass(frozen=True)
class GroupKey:
    protocol: str
    backbone: str
    dataset: str
    method: str
    shots: int


@dataclass
class Group:
    """One dataset x method x shots cell of a table: per-seed values (folds averaged) and stats."""

    key: GroupKey
    per_seed: dict[str, dict[int, float]]
    folds: tuple[str, ...]
    stats: dict[str, Stat] = field(default_factory=dict)
    #: mean training time of one run in seconds (None: no run trained, e.g. zero-shot)
    seconds: float | None = None
    #: the runs' evaluation notes (PALM's fallback on unseen classes ...), each note once
    notes: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(next(iter(self.per_seed.values()), {})))


def _fold_label(fold: int | None) -> str:
    return "none" if fold is None else str(fold)


def group_runs(records: Iterable[RunRecord]) -> list[Group]:
    """Records grouped by (protocol, backbone, dataset, method, shots), folds averaged per seed."""
    runs: dict[GroupKey, list[RunRecord]] = defaultdict(list)
    for r in records:
        runs[GroupKey(r.protocol, r.backbone, r.dataset, r.method, r.shots)].append(r)
    groups = []
    for key in sorted(runs, key=lambda k: (k.protocol, k.backbone, k.dataset.lower(), k.method, k.shots)):
        members = runs[key]
        metrics = sorted({m for r in members for m in r.metrics})
        per_seed: dict[str, dict[int, float]] = {}
        for metric in metrics:
            by_seed: dict[int, list[float]] = defaultdict(list)
            for r in members:
                if metric in r.metrics:
                    by_seed[r.seed].append(r.metrics[metric])
            per_seed[metric] = {s: statistics.fmean(v) for s, v in sorted(by_seed.items())}
        folds = tuple(sorted({_fold_label(r.fold) for r in members}))
        group = Group(key, per_seed, folds)
        group.stats = {m: stat(list(v.values())) for m, v in per_seed.items()}
        seconds = [r.seconds for r in members if r.seconds is not None]
        group.seconds = statistics.fmean(seconds) if seconds else None
        for r in members:
            group.notes += [n for n in r.notes if n not in group.notes]
        groups.append(group)
    return groups


@dataclass(frozen=True)
class Average:
    """A method's average over datasets: per-metric :class:`Stat` (``n``: seeds) and the datasets used."""

    protocol: str
    backbone: str
    method: str
    shots: int
    stats: dict[str, Stat]
    datasets: tuple[str, ...]


def average_over_datasets(groups: Sequence[Group], datasets: Sequence[str] | None = None) -> list[Average]:
    """One :class:`Average` per (protocol, backbone, method, shots): the mean of per-dataset means.

    ``datasets`` restricts the average to those datasets (e.g. the ones two methods share).
    """
    by_method: dict[tuple[str, str, str, int], list[Group]] = defaultdict(list)
    for g in groups:
        if datasets is None or g.key.dataset in datasets:
            k = g.key
            by_method[(k.protocol, k.backbone, k.method, k.shots)].append(g)
    out = []
    for (protocol, backbone, method, shots), members in by_method.items():
        metrics = sorted(set.intersection(*(set(g.stats) for g in members)))
        stats = {}
        for metric in metrics:
            mean = statistics.fmean(g.stats[metric].mean for g in members)
            seed_sets = {tuple(sorted(g.per_seed[metric])) for g in members}
            std, n = None, min(g.stats[metric].n for g in members)
            if len(seed_sets) == 1:
                seeds = next(iter(seed_sets))
                per_seed = [statistics.fmean(g.per_seed[metric][s] for g in members) for s in seeds]
                std = statistics.stdev(per_seed) if len(per_seed) > 1 else None
            stats[metric] = Stat(mean, std, n)
        out.append(Average(protocol, backbone, method, shots, stats, tuple(g.key.dataset for g in members)))
    return out


def sept_host(method: str) -> str | None:
    """The host of a ``+sept`` method (``kgcoop+sept+dept`` -> ``kgcoop+dept``), with the same variant
    suffix (``coop+sept@optim.epochs=5`` -> ``coop@optim.epochs=5``); None for others."""
    name, at, suffix = method.partition("@")
    parts = name.split("+")
    if "sept" not in parts[1:]:
        return None
    return "+".join(p for p in parts if p != "sept") + at + suffix
