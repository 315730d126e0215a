"""Cells of a grid: expansion, whether each is finished, and running one (in any process).

A cell is one run folder (:mod:`sept.runs.layout`: ``<protocol>/<dataset id>/fold-<k>/<variant>/
shots-<K>/seed-<s>``) and is run by the protocols' own code (:func:`sept.protocols.run_protocol` restricted to one fold
and one seed), so a cell resumes from its checkpoint and reuses the run root's few-shot manifests
exactly as ``sept run`` does. :class:`Plan` and :class:`Cell` are plain frozen dataclasses: they
travel to worker processes and Ray tasks as they are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.bench.grid import DatasetRef, GridSpec, MethodEntry
from sept.bench.logs import LOG_FILE, cell_lock, cell_log
from sept.errors import ConfigError, DataError, SeptError
from sept.runs.layout import RunKey

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.data.dataset import Dataset, Fold
    from sept.protocols.common import FeatureStore
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What every cell of a sweep shares (sent to each worker with the cell)."""

    run_root: str
    backbone: str
    backbone_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    on_bad_audio: str = "skip"
    config_file: str | None = None
    overrides: tuple[str, ...] = ()
    with_replacement: bool = False
    force: bool = False
    threads: int = 1
    #: xd: source dataset name -> its target datasets
    targets: dict[str, tuple[DatasetRef, ...]] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "backbone_options": dict(self.backbone_options)}


@dataclass(frozen=True)
class Cell:
    """One (protocol, dataset, fold, variant, shots, seed) run. ``entry``: the method (or named
    variant) with its own ``set``; ``dataset_id`` and ``variant`` name the run folder."""

    protocol: str
    dataset: DatasetRef
    dataset_name: str
    fold: int | None
    entry: MethodEntry
    shots: int
    seed: int
    dataset_id: str = ""
    variant: str = ""

    @property
    def method(self) -> str:
        return self.entry.name

    @property
    def key(self) -> RunKey:
        return RunKey(self.protocol, self.dataset_id, self.fold, self.variant, self.shots, self.seed)

    @property
    def id(self) -> str:
        """The run folder relative to the run root, e.g. ``base2new/us8k-mini/fold-2/coop/shots-16/seed-0``."""
        return self.key.relpath.as_posix()

    def run_dir(self, run_root: str | os.PathLike[str]) -> Path:
        return Path(run_root) / self.id


@dataclass
class Outcome:
    """What happened to a cell. ``status``: "ok" (ran), "finished" (found done), "failed"."""

    cell: str
    status: str
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    log: str = ""
    worker: str = ""
    #: wall seconds of the run's phases (``train``: building and training the method, ``eval``:
    #: evaluation and the structure analysis; :mod:`sept.utils.phases`); the rest is overhead
    phases: dict[str, float] = field(default_factory=dict)


# ---- expansion --------------------------------------------------------------------------------
def _folds_of(dataset: Dataset, wanted: str | tuple[int, ...]) -> list[Fold]:
    if wanted == "all":
        return list(dataset.folds) or [None]
    if wanted == "default":
        return [dataset.default_fold]
    return [dataset.resolve_fold(f) for f in wanted]


def _inline_config_file(grid: GridSpec) -> str | None:
    """The grid's inline ``config`` written once into ``<run_root>/bench/`` (workers read the file)."""
    if grid.config_file:
        if not Path(grid.config_file).is_file():
            raise ConfigError(f"grid {grid.source!r}: config_file {grid.config_file!r} does not exist")
        return grid.config_file
    if not grid.config:
        return None
    import yaml

    from sept.utils.atomic import atomic_write_text
    from sept.utils.hashing import hash_json

    path = Path(grid.run_root) / "bench" / f"config-{hash_json(dict(grid.config))[:12]}.yaml"
    if not path.exists():
        atomic_write_text(path, yaml.safe_dump(dict(grid.config), sort_keys=True))
    return str(path)


def expand(grid: GridSpec, *, force: bool = False) -> tuple[Plan, list[Cell]]:
    """The sweep's :class:`Plan` and every cell, in protocol, dataset, fold, shots, seed, method order.

    Opens each dataset (to know its name and folds); :class:`DataError` names one that is missing.
    """
    opened: list[tuple[DatasetRef, Dataset]] = []
    for ref in grid.datasets:
        try:
            opened.append((ref, ref.open()))
        except SeptError as exc:
            raise DataError(f"grid {grid.source!r}: dataset {ref.label!r}: {exc}") from exc
    from sept.runs.identity import dataset_id

    names = [ds.name for _, ds in opened]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"grid {grid.source!r}: two datasets share the name {dupes[0]!r}; give each its own `name`"
        )
    targets: dict[str, tuple[DatasetRef, ...]] = {}
    cells: list[Cell] = []
    for protocol in grid.protocols:
        sources = opened
        if protocol == "xd":
            sources = _xd_sources(grid, opened)
            for ref, ds in sources:
                if grid.xd_targets is not None:
                    targets[ds.name] = tuple(t for t in grid.xd_targets if (t.name or t.data) != ref.label)
                else:
                    targets[ds.name] = tuple(r for r, d in opened if d.name != ds.name)
                if not targets[ds.name]:
                    raise ConfigError(f"grid {grid.source!r}: xd source {ds.name!r} has no target dataset")
        for ref, ds in sources:
            for fold in _folds_of(ds, ref.folds if ref.folds is not None else grid.folds):
                for shots in grid.shots:
                    for seed in grid.seeds:
                        for m in grid.methods:
                            cells.append(Cell(protocol, ref, ds.name, fold, m, shots, seed, dataset_id(ds)))
    plan = make_plan(grid, targets, force=force)
    cells = _named(cells, plan, grid)
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(
            f"grid {grid.source!r}: the cell {dup} appears twice (a method listed twice, or two variants "
            "with the same options?)"
        )
    return plan, cells


def make_plan(grid: GridSpec, targets: dict[str, tuple[DatasetRef, ...]], *, force: bool = False) -> Plan:
    """The :class:`Plan` of ``grid`` (``targets``: xd source name -> its target datasets)."""
    from sept.backbones.registry import DEFAULT_BACKBONE

    return Plan(
        run_root=grid.run_root,
        backbone=grid.backbone or DEFAULT_BACKBONE,
        backbone_options=dict(grid.backbone_options),
        cache_dir=grid.cache_dir,
        on_bad_audio=grid.on_bad_audio,
        config_file=_inline_config_file(grid),
        overrides=tuple(grid.overrides),
        with_replacement=grid.with_replacement,
        force=force,
        threads=grid.executor.threads,
        targets=targets,
    )


def _named(cells: list[Cell], plan: Plan, grid: GridSpec) -> list[Cell]:
    """The cells with their variant names (:mod:`sept.runs.identity`); every aimed override must
    apply to some method of the grid."""
    from dataclasses import replace

    from sept.protocols.common import check_overrides_apply

    methods = list(dict.fromkeys(m.name for m in grid.methods))
    check_overrides_apply(plan.overrides, methods)
    for ref in grid.datasets:
        check_overrides_apply(ref.overrides, methods)
    names: dict[tuple[str, DatasetRef, MethodEntry], str] = {}
    out = []
    for cell in cells:
        key = (cell.protocol, cell.dataset, cell.entry)
        if key not in names:
            settings = protocol_settings(cell, plan)
            names[key] = settings.variant_of(cell.method, cell.protocol, plan.backbone)["name"]
        out.append(replace(cell, variant=names[key]))
    return out


def _xd_sources(grid: GridSpec, opened: list[tuple[DatasetRef, Dataset]]) -> list[tuple[DatasetRef, Dataset]]:
    if grid.xd_sources is None:
        return opened
    by_name = {ds.name.lower(): (ref, ds) for ref, ds in opened}
    missing = [s for s in grid.xd_sources if s.lower() not in by_name]
    if missing:
        raise ConfigError(
            f"grid {grid.source!r}: xd.sources {missing} are not among the datasets {sorted(d.name for _, d in opened)}"
        )
    return [by_name[s.lower()] for s in grid.xd_sources]


# ---- state ------------------------------------------------------------------------------------
def protocol_settings(cell: Cell, plan: Plan) -> Any:  # -> ProtocolSettings
    from sept.protocols import ProtocolSettings

    return ProtocolSettings(
        run_root=Path(plan.run_root),
        shots=cell.shots,
        seeds=[cell.seed],
        folds=[cell.fold],
        config_file=plan.config_file,
        settings=plan.settings(),
        overrides=[*plan.overrides, *cell.dataset.overrides],
        method_overrides=list(cell.entry.overrides),
        variant=cell.entry.variant,
        with_replacement=plan.with_replacement,
        force=plan.force,
    )


def cell_config(cell: Cell, plan: Plan) -> RunConfig:
    """The cell's resolved run config (:class:`ConfigError` if a value is invalid)."""
    settings = protocol_settings(cell, plan)
    return settings.config(cell.method, cell.protocol, cell.seed, plan.backbone)


def is_finished(cell: Cell, plan: Plan, config: RunConfig | None = None) -> bool:
    """Whether the cell's run is finished with this config (and, for xd, has every target).

    A run folder made with another configuration raises :class:`ConfigError` naming it; damaged
    results are moved aside (the cell runs again, :mod:`sept.runs.store`).
    """
    from sept.neighbors.errors import MissingNeighborsError
    from sept.protocols.common import run_neighbors
    from sept.protocols.needs import run_split, training_prompt_names
    from sept.runs.store import check_unfinished, finished_results

    config = config or cell_config(cell, plan)
    directory = cell.run_dir(plan.run_root)
    neighbor_hash = None
    if "sept" in config.regularizers:
        split = run_split(cell.dataset.open(), cell.fold)
        classes = training_prompt_names(cell.protocol, split, config)
        with contextlib.suppress(MissingNeighborsError):  # preflight names the cell before any compute
            neighbor_hash = run_neighbors(config, classes, cell.dataset_name).hash
    done = finished_results(directory, config, plan.force, neighbor_hash)
    if done is None:
        if not plan.force:  # an unfinished run: it must be this config to resume
            check_unfinished(directory, config, neighbor_hash)
        return False
    if cell.protocol == "xd":
        wanted = {_open_name(t) for t in plan.targets.get(cell.dataset_name, ())}
        return wanted <= set(done.data.get("targets", {}))
    return True


def _open_name(ref: DatasetRef) -> str:
    return ref.open().name


# ---- running one cell -----------------------------------------------------------------------
#: per-process backbones and feature stores, keyed by (backbone, options, cache dir)
_STATE: dict[str, tuple[Backbone, FeatureStore]] = {}


def _state_key(plan: Plan) -> str:
    return json.dumps(
        [plan.backbone, plan.backbone_options, plan.cache_dir, plan.on_bad_audio], sort_keys=True, default=str
    )


def use_backbone(plan: Plan, backbone: Backbone) -> None:
    """Make this process's cells use ``backbone`` (already loaded) instead of loading one."""
    from sept.protocols import FeatureOptions, FeatureStore

    options = FeatureOptions(cache_dir=plan.cache_dir, on_bad_audio=plan.on_bad_audio, progress=False)
    store = FeatureStore(backbone, options)
    _STATE[_state_key(plan)] = (backbone, store)


def worker_state(plan: Plan) -> tuple[Backbone, FeatureStore]:
    """This process's backbone and feature store for ``plan``, loaded on first use."""
    key = _state_key(plan)
    if key not in _STATE:
        import torch

        from sept.backbones.registry import create_backbone

        torch.set_num_threads(plan.threads)
        use_backbone(plan, create_backbone(plan.backbone, **plan.backbone_options))
    return _STATE[key]


def execute_cell(cell: Cell, plan: Plan, quiet_console: bool = True) -> Outcome:
    """Run one cell under its lock, logging into its ``cell.log``; never raises for a failed run."""
    from sept.protocols import run_protocol
    from sept.runs.schema import validate_results
    from sept.utils.phases import take_phases

    take_phases()  # what ran before this cell is not its time
    directory = cell.run_dir(plan.run_root)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    start = time.perf_counter()
    log_path = directory / LOG_FILE
    try:
        with cell_lock(plan.run_root, cell.id), cell_log(log_path, cell.id, quiet_console):
            try:
                if is_finished(cell, plan) and not plan.force:
                    return Outcome(cell.id, "finished", log=str(log_path), worker=worker)
                backbone, store = worker_state(plan)
                dataset = cell.dataset.open()
                targets = (
                    [t.open() for t in plan.targets.get(cell.dataset_name, ())]
                    if cell.protocol == "xd"
                    else None
                )
                results = run_protocol(
                    cell.protocol,
                    backbone,
                    dataset,
                    cell.method,
                    protocol_settings(cell, plan),
                    targets=targets,
                    store=store,
                )
                summary = validate_results(results[0]).summary if results else {}
                seconds = time.perf_counter() - start
                phases = {k: round(v, 3) for k, v in take_phases().items()}
                log.info("cell finished in %.1f s (%s): %s", seconds, phases, json.dumps(summary))
                return Outcome(
                    cell.id, "ok", seconds, summary, log=str(log_path), worker=worker, phases=phases
                )
            except Exception as exc:  # a failed cell must not stop the sweep
                log.error("cell failed: %s: %s\n%s", type(exc).__name__, exc, traceback.format_exc())
                error = f"{type(exc).__name__}: {exc}"
                return Outcome(
                    cell.id,
                    "failed",
                    time.perf_counter() - start,
                    error=error,
                    log=str(log_path),
                    worker=worker,
                )
    except OSError as exc:  # the log or lock could not be opened
        return Outcome(
            cell.id,
            "failed",
            time.perf_counter() - start,
            error=f"{type(exc).__name__}: {exc}",
            worker=worker,
        )


# ---- checks before any compute ----------------------------------------------------------------
def preflight_cells(cells: Sequence[Cell], plan: Plan) -> None:
    """Check the data, shots and neighbour sets of every cell as ``sept run`` does, before any
    compute (:func:`sept.protocols.preflight.preflight`); raises naming the dataset and fold."""
    from dataclasses import replace

    from sept.protocols.preflight import preflight

    groups: dict[tuple[str, DatasetRef, int, MethodEntry], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.protocol, cell.dataset, cell.shots, cell.entry), []).append(cell)
    for (protocol, ref, _, _), members in groups.items():
        first = members[0]
        settings = replace(
            protocol_settings(first, plan),
            folds=list(dict.fromkeys(c.fold for c in members)),
            seeds=sorted({c.seed for c in members}),
        )
        targets = [t.open() for t in plan.targets.get(first.dataset_name, ())] if protocol == "xd" else None
        try:
            preflight(protocol, ref.open(), sorted({c.method for c in members}), settings, targets)
        except SeptError as exc:
            raise type(exc)(f"{protocol} on {first.dataset_name}: {exc}") from exc


# ---- clips the pending cells need (embedded once, before dispatch) ---------------------------
def needed_clips(cells: Sequence[Cell], plan: Plan) -> list[Any]:
    """Every clip the cells will read, as the protocols declare it
    (:func:`sept.protocols.needs.clips_needed`; manifests are drawn now, exactly as the runs draw them)."""
    from sept.methods.registry import parse_method
    from sept.protocols.needs import clips_needed

    datasets: dict[DatasetRef, Dataset] = {}

    def opened(ref: DatasetRef) -> Dataset:
        if ref not in datasets:
            datasets[ref] = ref.open()
        return datasets[ref]

    clips: dict[Any, None] = {}
    for cell in cells:
        try:
            targets = (
                [opened(r) for r in plan.targets.get(cell.dataset_name, ())] if cell.protocol == "xd" else []
            )
            found = clips_needed(
                cell.protocol,
                opened(cell.dataset),
                cell.fold,
                trains=parse_method(cell.method).trains,
                shots=cell.shots,
                seed=cell.seed,
                run_root=plan.run_root,
                with_replacement=plan.with_replacement,
                targets=targets,
            )
            clips.update(dict.fromkeys(found))
        except Exception as exc:  # the cell itself will fail with the full story in its log
            log.warning("cannot list the clips of %s: %s", cell.id, exc)
    return list(clips)
