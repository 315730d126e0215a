"""``sept bench --estimate``: a projection per method and in total, nothing run; cells record their phases."""

from __future__ import annotations

import json

import pytest

from sept.bench.estimate import _pack, estimate_grid
from sept.bench.sweep import run_sweep
from sept.cli.main import main
from tests.test_bench_support import bench_env, make_grid, write_grid

__all__ = ["bench_env"]


def test_estimate_projects_each_method_and_runs_nothing(bench_env, tmp_path, capsys):
    config = write_grid(bench_env, tmp_path / "runs", tmp_path / "g.yaml", folds=[1], seeds=[0, 1])
    assert main(["bench", str(config), "--estimate", "--estimate-steps", "1"]) == 0
    out = capsys.readouterr().out
    table = {line.split()[0].split("@")[0]: line.split() for line in out.splitlines() if line.split()[:1]}
    assert {"zeroshot", "coop", "coop+sept"} <= set(table)
    assert table["coop"][1] == "2"  # two seeds: two cells
    assert table["zeroshot"][2] == "0"  # nothing to train
    # 2 shots x 2 base classes (tones: 4 classes), batch 4, 2 epochs: 2 steps per cell
    assert table["coop"][2] == "2"
    assert "total: 6 cells" in out and "projected wall time" in out
    assert not (tmp_path / "runs" / "base2new").exists()


def test_estimate_counts_workers_and_the_backbone_load(bench_env, tmp_path):
    grid = make_grid(bench_env, tmp_path / "runs", folds=[1], seeds=[0])
    est = estimate_grid(grid, steps=1, echo=lambda _: None)
    cells = sum(g.cells * g.cell_s for g in est.groups)
    assert est.workers == 1 and est.loads == 1
    assert est.wall_s == pytest.approx(est.load_s + cells)
    assert all(g.eval_s is not None and g.eval_s > 0 for g in est.groups)


def test_packing_longest_first():
    assert _pack([4.0, 3.0, 3.0, 2.0], 2) == 6.0
    assert _pack([5.0], 3) == 5.0
    assert _pack([1.0, 1.0, 1.0], 1) == 3.0


def test_bad_backbone_option_is_one_clear_error(bench_env, tmp_path, capsys):
    config = write_grid(bench_env, tmp_path / "runs", tmp_path / "g.yaml", folds=[1], seeds=[0])
    assert main(["bench", str(config), "--estimate", "--backbone-option", "device"]) == 2
    err = capsys.readouterr().err
    assert "--backbone-option 'device': expected KEY=VALUE" in err and "Traceback" not in err


def test_cells_record_their_train_and_eval_time(bench_env, tmp_path):
    grid = make_grid(bench_env, tmp_path / "runs", folds=[1], seeds=[0])
    result = run_sweep(grid, echo=lambda _: None)
    record = json.loads(result.record.read_text())
    phases = {c["cell"].split("/")[3].split("@")[0]: c["phases"] for c in record["cells"]}
    assert phases["zeroshot"]["eval"] > 0 and phases["coop"]["train"] > 0 and phases["coop"]["eval"] > 0
    for cell in record["cells"]:
        assert cell["phases"]["train"] + cell["phases"]["eval"] <= cell["seconds"]
