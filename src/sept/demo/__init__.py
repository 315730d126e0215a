"""The offline demo (``sept demo``, ``make demo``): a small base-to-new benchmark on real audio."""

from __future__ import annotations

from sept.demo.run import DEMO_GRID, demo_grid, run_demo

__all__ = ["DEMO_GRID", "demo_grid", "run_demo"]
