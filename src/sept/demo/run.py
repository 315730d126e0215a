"""The offline demo: base-to-new on real audio with the offline backbone, ending with the story.

Data: 32 General MIDI instruments rendered with fluidsynth (:mod:`sept.demo.gm`; train pool
fold 1, test fold 2, disjoint notes), and ``<data root>/us8k-mini`` (UrbanSound8K subset; train
fold 1, test fold 2) when it is there. Methods: zero-shot and three hosts (CoOp, KgCoOp,
CoOp + DePT), each alone and with SEPT; :data:`DEMO_SHOTS` shots; seeds 0, 1, 2. Every method
keeps its reference hyper-parameters for the protocol (:mod:`sept.training.config`) and SEPT its
defaults; nothing is tuned on the demo's test clips. Then the report of the demo's runs, the
story of :mod:`sept.report.story` (New of zero-shot, host and host + SEPT side by side, and
one generated sentence per dataset), and the demo's own wall and CPU time.
``configs/demo.yaml`` is the same grid for ``sept bench``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: training clips per base class (CoOp's few-shot values are 1, 2, 4, 8, 16): 4 is a quarter of the
#: paper's training steps, chosen for time before any result at 4 shots was seen; ``--shots 16``
#: runs the paper's protocol (README, "The demo", gives both tables)
DEMO_SHOTS = 4

#: the demo grid (datasets and run_root are filled in by :func:`demo_grid`)
DEMO_COOP_EPOCHS = "optim.epochs=50"
DEMO_GRID: dict[str, Any] = {
    "name": "demo",
    "backbone": "yamnet-minilm",
    "protocols": ["base2new"],
    # CoOp's recipe trains 200 epochs; the demo keeps its former 50 for the time budget (set before
    # any demo result was seen, for both CoOp and CoOp+SEPT, so the pair stays comparable)
    "methods": [
        "zeroshot",
        {"name": "coop", "set": [DEMO_COOP_EPOCHS]},
        {"name": "coop+sept", "set": [DEMO_COOP_EPOCHS]},
        "kgcoop",
        "kgcoop+sept",
        "coop+dept",
        "coop+dept+sept",
    ],
    "shots": [DEMO_SHOTS],
    "seeds": [0, 1, 2],
    "executor": {"kind": "local", "threads": 1},
}


def default_data_root() -> Path | None:
    """``$SEPT_DATA_ROOT``, else ``../shared/data`` when it exists."""
    if os.environ.get("SEPT_DATA_ROOT"):
        return Path(os.environ["SEPT_DATA_ROOT"])
    shared = Path("../shared/data")
    return shared if shared.is_dir() else None


def instrument_dataset(echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The grid's entry for the rendered General MIDI instruments (rendered once, then cached)."""
    from sept.demo.gm import INSTRUMENTS, default_gm_folder, render_gm_dataset

    folder = default_gm_folder()
    cached = (folder / "done.json").is_file()
    start = time.perf_counter()
    csv = render_gm_dataset(folder)
    how = "cached" if cached else f"rendered with fluidsynth in {time.perf_counter() - start:.1f} s"
    echo(
        f"data: gm-instruments, {len(INSTRUMENTS)} General MIDI instruments ({how}; train fold 1, "
        f"test fold 2 on other notes): {csv}"
    )
    return {"data": str(csv), "folds": [2]}


def demo_datasets(
    data_root: str | os.PathLike[str] | None, echo: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """The grid's dataset entries: the instruments, then us8k-mini if ``data_root`` has it."""
    entries = [instrument_dataset(echo)]
    if data_root is not None and (Path(data_root) / "us8k-mini" / "metadata.csv").is_file():
        root = Path(data_root) / "us8k-mini"
        echo(f"data: us8k-mini from {root} (10 urban sound classes; train fold 1, test fold 2)")
        entries.append({"name": "us8k-mini", "root": str(root), "folds": [2]})
    else:
        where = f"{data_root}/us8k-mini" if data_root else "no data root"
        echo(f"data: us8k-mini left out ({where} not found; give --data-root)")
    return entries


def demo_precision(requested: str = "auto") -> str:
    """``bf16`` or ``fp32``: ``auto`` is bf16 where the CPU multiplies bf16 in hardware
    (:func:`sept.utils.cpu.native_bf16`), fp32 elsewhere. On a GPU the demo's runs autocast anyway."""
    if requested != "auto":
        return requested
    from sept.utils.cpu import native_bf16

    return "bf16" if native_bf16() else "fp32"


def demo_grid(
    datasets: list[dict[str, Any]],
    run_root: str | os.PathLike[str],
    seeds: list[int] | None = None,
    shots: int | None = None,
    precision: str = "fp32",
) -> Any:
    """The demo's :class:`~sept.bench.grid.GridSpec` over ``datasets``.

    SEPT's neighbours come from the shipped sets (:mod:`sept.neighbors.resolve`): ``us8k-mini``'s own,
    and for the instruments ``gm-instruments``, the one set that covers their classes.
    """
    from sept.bench.grid import parse_grid

    data = {**DEMO_GRID, "datasets": list(datasets), "run_root": str(run_root)}
    if precision != "fp32":
        data["overrides"] = [f"precision={precision}"]
    if seeds:
        data["seeds"] = list(seeds)
    if shots:
        data["shots"] = [shots]
    return parse_grid(data, "sept demo")


@dataclass(frozen=True)
class Clock:
    """Wall time and CPU time (this process and its finished children) at one moment."""

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Clock:
        t = os.times()
        return cls(time.perf_counter(), t.user + t.system + t.children_user + t.children_system)

    def since(self, start: Clock) -> str:
        wall, cpu = self.wall - start.wall, self.cpu - start.cpu
        return f"wall {wall:.0f} s, CPU {cpu:.0f} s ({cpu / max(wall, 1e-9):.1f} cores busy on average)"


def run_demo(
    data_root: str | os.PathLike[str] | None = None,
    run_root: str | os.PathLike[str] = "runs/demo",
    *,
    workers: int | None = None,
    seeds: list[int] | None = None,
    shots: int | None = None,
    precision: str = "auto",
    echo: Callable[[str], None] = print,
) -> int:
    """Run the demo; prints the tables, the story, the report's path and the time taken.

    Returns 0, or 1 if a cell failed.
    """
    from sept.bench.sweep import run_sweep
    from sept.report.build import build_report
    from sept.runs.layout import results_path

    start = Clock.now()
    precision = demo_precision(precision)
    how = "bf16 autocast" if precision == "bf16" else "fp32"
    echo(f"precision: {how} (--precision; auto: bf16 where the CPU multiplies bf16 in hardware)")
    grid = demo_grid(demo_datasets(data_root, echo), run_root, seeds, shots, precision)
    result = run_sweep(grid, workers=workers, echo=echo)
    found = [p for p in map(results_path, result.run_dirs()) if p.exists()]
    if not found:
        echo("no run finished; see the cell logs above")
        return 1
    report = build_report(run_root, results=found, echo=echo)
    echo("")
    for table in report.tables:
        if table.key in ("base2new", "story-base2new"):
            echo(table.to_markdown())
    for path in report.heatmaps:
        echo(f"Figure 1 heat map: {path.resolve()}")
    if result.failed:
        echo(f"{len(result.failed)} cell(s) failed: " + ", ".join(o.cell for o in result.failed))
    done = len(result.cells) - len(result.ran) - len(result.failed)
    echo(f"HTML report: {report.html.resolve()}")
    echo(
        f"demo: {len(result.ran)} runs trained or evaluated now, {done} found finished; "
        f"{Clock.now().since(start)}"
    )
    return 1 if result.failed else 0
