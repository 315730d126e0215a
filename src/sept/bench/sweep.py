"""A sweep: plan the grid's cells, skip finished ones, embed the clips once, run the rest.

Before any compute, every cell's config is resolved (an invalid value stops the sweep), the
unfinished cells' data are checked as ``sept run`` checks them (a missing list, a class with too
few clips for the shots, a ``+sept`` run without a neighbour set stop the sweep), and every
finished cell is found (:mod:`sept.runs.store`: results of the same config; a run folder of
another config stops the sweep, naming it; a damaged one is moved aside and run again). The
local executor's workers start now and load the backbone while this process embeds the pending
cells' clips once (workers then only read the feature cache); the cells go out the most work
first (:mod:`sept.bench.order`); each outcome is printed as it arrives and the sweep's record
goes to ``<run_root>/bench/sweep-<time>.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sept.bench.cells import (
    Cell,
    Outcome,
    Plan,
    cell_config,
    expand,
    is_finished,
    needed_clips,
    preflight_cells,
    use_backbone,
)
from sept.bench.grid import GridSpec
from sept.errors import ConfigError
from sept.utils.verbosity import echo_around, progress_bar

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """Every cell of the grid with its outcome (finished cells found on disk count as "finished")."""

    plan: Plan
    cells: list[Cell]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0
    record: Path | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    @property
    def ran(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status == "ok"]

    def run_dirs(self) -> list[Path]:
        return [c.run_dir(self.plan.run_root) for c in self.cells]


def describe(outcome: Outcome) -> str:
    """One line of a finished cell's summary numbers (:func:`sept.runs.schema.describe_summary`)."""
    from sept.runs.schema import describe_summary

    protocol = outcome.cell.split("/", 1)[0]
    try:
        return describe_summary(protocol, outcome.summary)
    except (KeyError, TypeError, ValueError):
        return ""


def plan_sweep(grid: GridSpec, *, force: bool = False) -> tuple[Plan, list[Cell], list[Cell]]:
    """(plan, all cells, pending cells); raises :class:`ConfigError` before any compute."""
    plan, cells = expand(grid, force=force)
    pending, conflicts = [], []
    for cell in cells:
        config = cell_config(cell, plan)  # an invalid value fails the whole sweep here
        try:
            done = is_finished(cell, plan, config)
        except ConfigError as exc:
            conflicts.append(f"{cell.id}: {exc}")
            continue
        if not done:
            pending.append(cell)
    if conflicts:
        listing = "\n  ".join(conflicts[:5]) + (
            f"\n  ... and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        )
        raise ConfigError(
            f"{len(conflicts)} cell(s) of {grid.source!r} hold runs made with another configuration:\n  {listing}\n"
            "use another run_root (--run-root), or --force to train them again"
        )
    return plan, cells, pending


def _pre_embed(plan: Plan, pending: list[Cell], echo: Callable[[str], None]) -> Any:
    """Load the backbone here and embed every clip the pending cells need; returns the backbone."""
    from sept.backbones.registry import create_backbone
    from sept.features.extract import extract_features

    start = time.perf_counter()
    backbone = create_backbone(plan.backbone, **plan.backbone_options)
    clips = needed_clips(pending, plan)
    feats = extract_features(backbone, clips, plan.cache_dir, on_bad_audio=plan.on_bad_audio, progress=True)  # type: ignore[arg-type]
    echo(
        f"features: {len(feats.clips)} clips ({feats.computed} computed, {feats.cache_hits} from the cache, "
        f"{len(feats.skipped)} undecodable) in {time.perf_counter() - start:.1f} s"
    )
    return backbone


def run_sweep(
    grid: GridSpec,
    *,
    force: bool = False,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    """Run every unfinished cell of ``grid``; a failed cell is reported, never fatal to the sweep."""
    start = time.perf_counter()
    plan, cells, pending = plan_sweep(grid, force=force)
    result = SweepResult(plan, cells)
    for cell in cells:
        if cell not in pending:
            result.outcomes[cell.id] = Outcome(cell.id, "finished")
    echo(f"{grid.name}: {len(cells)} cells, {len(cells) - len(pending)} finished, {len(pending)} to run")
    if not pending:
        result.seconds = time.perf_counter() - start
        return result
    preflight_cells(pending, plan)  # missing data, too few clips, no neighbour set: stop before compute
    settings = grid.executor
    from sept.bench.executors import local_workers, run_cells, runs_in_this_process, start_local_pool
    from sept.bench.order import longest_first

    pending = longest_first(pending, plan)
    in_process = runs_in_this_process(settings, plan, workers)
    pool = None
    if settings.kind == "local" and not in_process:  # workers load the backbone while this embeds
        pool = start_local_pool(plan, min(local_workers(settings, plan, workers), len(pending)))
    try:
        backbone = _pre_embed(plan, pending, echo) if settings.pre_embed else None
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    if backbone is not None and in_process:
        use_backbone(plan, backbone)  # run in this process with the backbone already loaded
    del backbone
    width = len(str(len(pending)))
    count = 0
    bar = progress_bar(len(pending), grid.name, "cell")
    say = echo_around(bar, echo)

    def on_done(outcome: Outcome) -> None:
        nonlocal count
        count += 1
        result.outcomes[outcome.cell] = outcome
        line = describe(outcome) if outcome.status == "ok" else outcome.error
        if outcome.status == "failed" and outcome.log:
            line += f" (log: {outcome.log})"
        say(
            f"[{count:>{width}}/{len(pending)}] {outcome.status:<8} {outcome.cell}  {line}  ({outcome.seconds:.1f} s)"
        )
        bar.update(1)

    with bar:
        run_cells(pending, plan, on_done, settings, workers, pool)
    result.seconds = time.perf_counter() - start
    result.record = write_record(grid, result)
    return result


def write_record(grid: GridSpec, result: SweepResult) -> Path:
    """``<run_root>/bench/sweep-<UTC time>.json``: the grid, executor and every cell's outcome."""
    from sept.utils.atomic import atomic_write_json

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(result.plan.run_root) / "bench" / f"sweep-{stamp}.json"
    record = {
        "grid": grid.source,
        "name": grid.name,
        "executor": asdict(grid.executor),
        "seconds": round(result.seconds, 2),
        "cells": [asdict(result.outcomes[c.id]) for c in result.cells if c.id in result.outcomes],
    }
    return atomic_write_json(path, record)
