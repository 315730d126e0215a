"""The offline demo: a small base-to-new benchmark on real audio with the offline backbone.

Data: ``<data root>/us8k-mini`` (UrbanSound8K subset; train fold 1, test fold 2) when it is
there, else ten General MIDI instrument families rendered with fluidsynth (:mod:`sept.demo.gm`).
Methods zero-shot, CoOp, CoOp + SEPT, KgCoOp, KgCoOp + SEPT; 16 shots; seeds 0, 1, 2; each
method with its reference hyper-parameters for the protocol (no tuning on test data). Then the
tables and the HTML report of the demo's runs. ``configs/demo.yaml`` is the same grid for
``sept bench``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the demo grid (datasets and run_root are filled in by :func:`demo_grid`)
DEMO_GRID: dict[str, Any] = {
    "name": "demo",
    "backbone": "yamnet-minilm",
    "protocols": ["base2new"],
    "methods": ["zeroshot", "coop", "coop+sept", "kgcoop", "kgcoop+sept"],
    "shots": [16],
    "seeds": [0, 1, 2],
    "executor": {"kind": "local", "threads": 1},
}


def default_data_root() -> Path | None:
    """``$SEPT_DATA_ROOT``, else ``../shared/data`` when it exists."""
    if os.environ.get("SEPT_DATA_ROOT"):
        return Path(os.environ["SEPT_DATA_ROOT"])
    shared = Path("../shared/data")
    return shared if shared.is_dir() else None


def demo_dataset(
    data_root: str | os.PathLike[str] | None, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """The grid's dataset entry: us8k-mini if ``data_root`` has it, else the rendered instruments."""
    if data_root is not None and (Path(data_root) / "us8k-mini" / "metadata.csv").is_file():
        root = Path(data_root) / "us8k-mini"
        echo(f"data: us8k-mini from {root} (10 urban sound classes; train fold 1, test fold 2)")
        return {"name": "us8k-mini", "root": str(root), "folds": [2]}
    from sept.demo.gm import default_gm_folder, render_gm_dataset

    where = f"{data_root}/us8k-mini" if data_root else "a data root"
    echo(f"data: no {where}; rendering General MIDI instruments with fluidsynth (cached)")
    start = time.perf_counter()
    csv = render_gm_dataset(default_gm_folder())
    echo(
        f"data: {csv} (10 instrument families, 40 clips each; train fold 1, test fold 2) in {time.perf_counter() - start:.1f} s"
    )
    return {"data": str(csv), "folds": [2]}


def demo_grid(
    dataset: dict[str, Any], run_root: str | os.PathLike[str], seeds: list[int] | None = None
) -> Any:
    """The demo's :class:`~sept.bench.grid.GridSpec` for ``dataset``."""
    from sept.bench.grid import parse_grid

    data = {**DEMO_GRID, "datasets": [dataset], "run_root": str(run_root)}
    if seeds:
        data["seeds"] = list(seeds)
    if "data" in dataset:  # rendered instruments: classes named like NSynth's families
        data["config"] = {"sept": {"neighbors": "NS-Instruments"}}
    return parse_grid(data, "sept demo")


def run_demo(
    data_root: str | os.PathLike[str] | None = None,
    run_root: str | os.PathLike[str] = "runs/demo",
    *,
    workers: int | None = None,
    seeds: list[int] | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the demo; prints the tables and the report's path. Returns 0, or 1 if a cell failed."""
    from sept.bench.sweep import run_sweep
    from sept.report.build import build_report
    from sept.runs.layout import results_path

    start = time.perf_counter()
    grid = demo_grid(demo_dataset(data_root, echo), run_root, seeds)
    result = run_sweep(grid, workers=workers, echo=echo)
    found = [p for p in map(results_path, result.run_dirs()) if p.exists()]
    if not found:
        echo("no run finished; see the cell logs above")
        return 1
    report = build_report(run_root, results=found, echo=echo)
    echo("")
    for table in report.tables:
        if not table.key.endswith("-average"):
            echo(table.to_markdown())
    if result.failed:
        echo(f"{len(result.failed)} cell(s) failed: " + ", ".join(o.cell for o in result.failed))
    echo(
        f"{len(result.ran)} runs trained or evaluated now, {len(result.cells) - len(result.ran) - len(result.failed)} "
        f"found finished; total {time.perf_counter() - start:.0f} s"
    )
    echo(f"HTML report: {report.html.resolve()}")
    return 1 if result.failed else 0
