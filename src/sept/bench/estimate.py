"""``sept bench GRID --estimate``: project a grid's wall time from a few timed steps of each method.

For every (protocol, dataset, method variant, shots) of the grid, the method is built with the
cell's own config on its training classes and timed on this device (torch threads as the grid's
workers use them): a few training steps on random features of the right shape, the evaluation
(``predict_logits`` over each evaluated class set, on as many random features as the fold has test
clips) and the semantic-structure analysis. A cell then costs ``epochs x batches x step +
evaluation``; the cells are packed onto the workers (longest first) and the backbone loads are
added (one in this process, one per worker process). Features are assumed cached (a first sweep,
or ``sept embed``, computes them).

A registered dataset whose files are not here is described by the registry (class names, folds):
training is projected exactly (K shots of each training class), evaluation needs the number of
test clips, which only the data knows; it is then left out and the projection says so.
"""

from __future__ import annotations

import heapq
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sept.bench.cells import Cell, Plan, _named, cell_config, expand, make_plan
from sept.bench.grid import GridSpec
from sept.errors import ConfigError, SeptError

if TYPE_CHECKING:
    from sept.backbones.base import Backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """What a cell's cost depends on: training classes (readable), training clips, and each
    evaluated class set with its number of test clips (None: unknown without the data)."""

    train_classes: tuple[str, ...]
    n_train: int
    eval_sets: tuple[tuple[tuple[str, ...], int | None], ...]
    all_classes: tuple[str, ...] = ()


@dataclass
class GroupCost:
    """Cost of one cell of a (protocol, dataset, variant, shots) group, and how many cells it has."""

    protocol: str
    dataset: str
    method: str
    cells: int
    steps: int
    step_s: float
    train_s: float
    eval_s: float | None

    @property
    def cell_s(self) -> float:
        return self.train_s + (self.eval_s or 0.0)


@dataclass
class Estimate:
    groups: list[GroupCost] = field(default_factory=list)
    workers: int = 1
    loads: int = 1
    load_s: float = 0.0
    wall_s: float = 0.0
    missing_eval: list[str] = field(default_factory=list)
    #: groups that could not be built (e.g. no neighbour set): left out of the projection
    skipped: list[str] = field(default_factory=list)

    def by_method(self) -> dict[str, tuple[int, float]]:
        """method -> (cells, summed cell seconds)."""
        out: dict[str, tuple[int, float]] = {}
        for g in self.groups:
            n, s = out.get(g.method, (0, 0.0))
            out[g.method] = (n + g.cells, s + g.cells * g.cell_s)
        return out

    def lines(self) -> list[str]:
        rows = [
            f"{'method':24s} {'cells':>5s} {'steps/cell':>10s} {'step':>9s} {'train/cell':>10s} "
            f"{'eval/cell':>9s} {'all cells':>10s}"
        ]
        per: dict[str, list[GroupCost]] = {}
        for g in self.groups:
            per.setdefault(g.method, []).append(g)
        for method, groups in per.items():
            cells = sum(g.cells for g in groups)
            total = sum(g.cells * g.cell_s for g in groups)
            steps = sum(g.cells * g.steps for g in groups) / cells
            step = statistics.median(g.step_s for g in groups)
            train = sum(g.cells * g.train_s for g in groups) / cells
            evals = [g.eval_s for g in groups if g.eval_s is not None]
            ev = f"{sum(evals) / len(evals):8.1f}s" if evals else "      n/a"
            rows.append(
                f"{method:24s} {cells:5d} {steps:10.0f} {step * 1e3:7.1f}ms {train:9.1f}s {ev} {_hms(total):>10s}"
            )
        cells = sum(g.cells for g in self.groups)
        rows.append(
            f"total: {cells} cells, {_hms(sum(g.cells * g.cell_s for g in self.groups))} of cell time; "
            f"{self.loads} backbone load(s) of {self.load_s:.1f} s; {self.workers} worker(s): "
            f"projected wall time {_hms(self.wall_s)}"
        )
        for line in self.skipped:
            rows.append(f"left out (cannot be built; the sweep's preflight would stop on it): {line}")
        if self.missing_eval:
            rows.append(
                "evaluation left out (test clips unknown without the data): " + ", ".join(self.missing_eval)
            )
        return rows


def _hms(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---- the cells and their shapes -----------------------------------------------------------------
def _registry_cells(grid: GridSpec) -> tuple[Plan, list[Cell], dict[tuple[str, str], Shape]]:
    """Cells of a grid whose registered datasets are not on this machine, from the registry."""
    from sept.data.names import readable_name
    from sept.data.registry import dataset_info
    from sept.data.sampling import base_new_split

    if "xd" in grid.protocols:
        raise ConfigError("--estimate of an xd grid needs the datasets' files")
    plan = make_plan(grid, {})
    cells: list[Cell] = []
    shapes: dict[tuple[str, str], Shape] = {}
    for ref in grid.datasets:
        if ref.data or not ref.name:
            raise ConfigError(f"--estimate: dataset {ref.label!r} cannot be opened and is not registered")
        info = dataset_info(ref.name)
        wanted = ref.folds if ref.folds is not None else grid.folds
        all_folds = list(range(1, info.folds + 1)) or [None]
        folds = (
            all_folds
            if wanted == "all"
            else [info.default_fold or all_folds[0]]
            if wanted == "default"
            else list(wanted)
        )
        names = sorted(info.classnames)
        readable = tuple(readable_name(c, info.readable_overrides) for c in names)
        by_raw = dict(zip(names, readable, strict=True))
        for protocol in grid.protocols:
            if protocol == "base2new":
                base, new = base_new_split(names)
                train = tuple(by_raw[c] for c in base)
                sets = ((train, None), (tuple(by_raw[c] for c in new), None))
            else:
                train, sets = readable, ((readable, None),)
            for shots in grid.shots:
                n_train = shots * len(train)
                shapes[(protocol, info.name, shots)] = Shape(train, n_train, sets, readable)
                for fold in folds:
                    for seed in grid.seeds:
                        for m in grid.methods:
                            cells.append(Cell(protocol, ref, info.name, fold, m, shots, seed, info.name))
    return plan, _named(cells, plan, grid), shapes


def train_size(cell: Cell, plan: Plan) -> tuple[list[str], int]:
    """(training classes, raw names; training clips) of a cell of an opened dataset (its fold's
    counts: ``shots`` of each class, or fewer where a class has fewer clips)."""
    from sept.protocols.needs import base_and_new, run_split

    split = run_split(cell.dataset.open(), cell.fold)
    train = base_and_new(split)[0] if cell.protocol == "base2new" else list(split.classnames)
    counts: dict[str, int] = {}
    for clip in split.train:
        counts[clip.classname] = counts.get(clip.classname, 0) + 1
    shots = cell.shots
    return train, sum(shots if plan.with_replacement else min(shots, counts.get(c, 0)) for c in train)


def _shape_of(cell: Cell, plan: Plan) -> Shape:
    """The shape of a cell of an opened dataset (its first fold's counts)."""
    from sept.protocols.needs import base_and_new, readable_of, run_split, target_split

    split = run_split(cell.dataset.open(), cell.fold)
    train, n_train = train_size(cell, plan)

    def tested(classes: list[str], clips) -> tuple[tuple[str, ...], int]:
        keep = set(classes)
        return tuple(readable_of(split, classes)), sum(1 for c in clips if c.classname in keep)

    if cell.protocol == "base2new":
        base, new = base_and_new(split)
        sets = (tested(base, split.test), tested(new, split.test))
    else:
        sets = (tested(list(split.classnames), split.test),)
        if cell.protocol == "xd":
            for ref in plan.targets.get(cell.dataset_name, ()):
                t = target_split(ref.open())
                sets += ((tuple(t.readable), len(t.test)),)
    return Shape(tuple(readable_of(split, train)), n_train, sets, tuple(split.readable))


# ---- timing ---------------------------------------------------------------------------------
def time_steps(method, config, n_classes: int, steps: int) -> float:
    """Median seconds of ``steps`` training steps (after one warm-up) on random features."""
    import torch

    from sept.training.trainer import autocast, backward_and_step, build_optimizer, epoch_generator

    device = method.backbone.device
    gen = epoch_generator(config.seed, 0)
    bs = config.optim.batch_size
    feats = torch.nn.functional.normalize(torch.randn(bs, method.backbone.embed_dim, generator=gen), dim=-1)
    labels = torch.randint(0, n_classes, (bs,), generator=gen)
    feats, labels = feats.to(device), labels.to(device)
    optimizer = build_optimizer(method, config.optim)
    classes = list(method.train_classnames)
    method.train()
    times = []
    flushing = torch.set_flush_denormal(True)
    try:
        for i in range(steps + 1):
            t0 = time.perf_counter()
            with autocast(config.precision, device):
                loss, _ = method.training_loss(feats, labels, classes, generator=gen)
            backward_and_step(loss, optimizer)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    finally:
        if flushing:
            torch.set_flush_denormal(False)
        method.eval()
    return statistics.median(times)


def time_eval(method, config, shape: Shape, dataset: str) -> float | None:
    """Seconds of a cell's evaluation: predictions on each class set, and the structure analysis."""
    import torch

    from sept.analysis.structure import structure_matrices
    from sept.neighbors.errors import MissingNeighborsError
    from sept.neighbors.resolve import resolve_neighbors
    from sept.training.trainer import predict_logits

    if any(n is None for _, n in shape.eval_sets):
        return None
    gen = torch.Generator().manual_seed(0)
    total = 0.0
    for classes, n in shape.eval_sets:
        sample = min(n, 16) if method.learner.conditional else n  # a conditional learner: per clip
        feats = torch.nn.functional.normalize(
            torch.randn(max(sample, 1), method.backbone.embed_dim, generator=gen), dim=-1
        )
        t0 = time.perf_counter()
        predict_logits(
            method, feats, list(classes), batch_size=config.eval_batch_size, precision=config.precision
        )
        total += (time.perf_counter() - t0) * (n / max(sample, 1))
    try:
        neighbors = resolve_neighbors(list(shape.all_classes), None, dataset)
    except (MissingNeighborsError, SeptError):
        return total
    t0 = time.perf_counter()
    structure_matrices(method, list(shape.all_classes), neighbors.by_class, config.precision)
    return total + time.perf_counter() - t0


def _pack(cell_seconds: list[float], workers: int) -> float:
    """Makespan of the cells on ``workers`` (longest first onto the least loaded worker)."""
    loads = [0.0] * max(1, workers)
    heapq.heapify(loads)
    for s in sorted(cell_seconds, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + s)
    return max(loads)


def estimate_grid(
    grid: GridSpec,
    *,
    steps: int = 3,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
    backbone: Backbone | None = None,
) -> Estimate:
    """Time each method of ``grid`` here and project the whole grid's wall time."""
    import torch

    from sept.backbones.registry import create_backbone
    from sept.bench.executors import local_workers, runs_in_this_process
    from sept.protocols.common import run_neighbors
    from sept.training.trainer import batches_per_epoch

    try:
        plan, cells = expand(grid)
        shapes: dict = {}
    except SeptError as exc:
        echo(f"estimate: {exc}; using the registry's description of the datasets")
        plan, cells, shapes = _registry_cells(grid)
    settings = grid.executor
    n_workers = 1 if runs_in_this_process(settings, plan, workers) else local_workers(settings, plan, workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    est = Estimate(workers=n_workers)
    try:
        t0 = time.perf_counter()
        if backbone is None:
            backbone = create_backbone(plan.backbone, **plan.backbone_options)
        est.load_s = time.perf_counter() - t0
        est.loads = 1 if n_workers == 1 else 2
        groups: dict[tuple, list[Cell]] = {}
        for cell in cells:
            groups.setdefault((cell.protocol, cell.dataset_name, cell.variant, cell.shots), []).append(cell)
        seconds: list[float] = []
        for (protocol, dataset, _variant, shots), members in groups.items():
            first = members[0]
            shape = shapes.get((protocol, dataset, shots)) or _shape_of(first, plan)
            config = cell_config(first, plan)
            try:
                if config.spec.trains or "sept" in config.regularizers:
                    run_neighbors(config, list(shape.train_classes), dataset)
                method = config.build_method(backbone, list(shape.train_classes))
            except SeptError as exc:  # the sweep's preflight would stop on it; the projection goes on
                est.skipped.append(f"{protocol} {dataset} {first.variant} ({len(members)} cells): {exc}")
                echo(f"cannot time {protocol} {dataset} {first.variant}: {exc}")
                continue
            n_steps = config.optim.epochs * batches_per_epoch(shape.n_train, config.optim.batch_size)
            step = time_steps(method, config, len(shape.train_classes), steps) if method.trainable else 0.0
            if not method.trainable:
                n_steps = 0
            ev = time_eval(method, config, shape, dataset)
            if ev is None and dataset not in est.missing_eval:
                est.missing_eval.append(dataset)
            cost = GroupCost(
                protocol, dataset, first.variant, len(members), n_steps, step, n_steps * step, ev
            )
            est.groups.append(cost)
            seconds += [cost.cell_s] * len(members)
            echo(
                f"timed {protocol} {dataset} {first.variant}: step {step * 1e3:.1f} ms x {n_steps}, "
                f"eval {'n/a' if ev is None else f'{ev:.2f} s'}"
            )
        est.wall_s = est.loads * est.load_s + _pack(seconds, n_workers)
    finally:
        torch.set_num_threads(threads)
    return est
