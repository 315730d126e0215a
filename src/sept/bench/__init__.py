"""Benchmark sweeps: a YAML grid of cells (protocol x dataset x fold x method x shots x seed),
run once each, resumable, in parallel on this machine or on a Ray cluster (``sept bench``).

``run_sweep(load_grid("configs/demo.yaml"))`` runs a grid from Python; :mod:`sept.report` turns
the run root into tables and plots.
"""

from __future__ import annotations

from sept.bench.grid import GridSpec, load_grid, parse_grid
from sept.bench.sweep import SweepResult, plan_sweep, run_sweep

__all__ = ["GridSpec", "SweepResult", "load_grid", "parse_grid", "plan_sweep", "run_sweep"]
