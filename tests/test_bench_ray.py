"""The Ray executor on a local Ray instance: one task per cell, results as with the other executors."""

from __future__ import annotations

import pytest

from sept.bench.sweep import run_sweep
from tests.test_bench_support import bench_env, make_grid, table_numbers

__all__ = ["bench_env"]

ray = pytest.importorskip("ray")


@pytest.mark.slow  # starting Ray and its workers takes ~20 s on 2 cores
def test_ray_executor_runs_a_small_grid(bench_env, tmp_path):
    grid = make_grid(
        bench_env,
        tmp_path / "ray",
        folds=[1],
        seeds=[0],
        executor={"kind": "ray", "workers": 2, "num_cpus": 1, "ray_init": {"include_dashboard": False}},
    )
    result = run_sweep(grid, echo=print)
    assert not ray.is_initialized()  # the sweep shut down the Ray instance it started
    assert not result.failed and len(result.ran) == 3
    assert all(o.worker for o in result.ran)
    for cell in result.cells:
        assert (tmp_path / "ray" / cell.id / "results.json").is_file()
        assert "cell finished" in (tmp_path / "ray" / cell.id / "cell.log").read_text()
    # the same cells in this process give the same table
    serial = run_sweep(make_grid(bench_env, tmp_path / "serial", folds=[1], seeds=[0]), echo=lambda s: None)
    assert not serial.failed

    assert table_numbers(tmp_path / "ray") == table_numbers(tmp_path / "serial")
