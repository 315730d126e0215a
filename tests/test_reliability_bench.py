"""``sept bench`` under interruptions and concurrency (issue 8, items 3 and 4).

A sweep (2 methods x 2 seeds, base2new on fold 2 of the tone dataset, 2 worker processes) is
killed with SIGKILL, main process and workers together, at random moments (seeded), then rerun;
and two sweeps of the same grid start at the same moment on one run root. Every file left behind
must open, and every run folder must equal the ``sept run`` reference of the same runs exactly
(the sweep starts from the reference's feature cache, see tests/test_reliability_kill.py).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from tests.reliability_support import (
    Assets,
    after_event,
    comparable,
    kill_sept,
    run_sept,
    safetensors_diff,
    sept_cmd,
    sept_env,
    shared_assets,
    validate_tree,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("sept.cli.bench") is None, reason="sept bench is not built yet"
    ),
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return shared_assets(tmp_path_factory.getbasetemp() / "reliability-assets")


def _grid(assets: Assets, root: Path, workers: int = 2) -> Path:
    """The runs of the reference (``run_args`` with coop and palm) as a grid; cache copied from it."""
    shutil.copytree(assets.ref_run / "cache", root / "cache")
    grid = {
        "name": "reliability",
        "run_root": str(root / "runs"),
        "cache_dir": str(root / "cache"),
        "backbone": {"name": "clap", "options": {"model": str(assets.clap)}},
        "protocols": ["base2new"],
        "datasets": [{"data": str(assets.data)}],
        "folds": [2],
        "methods": ["coop", "palm"],
        "shots": [3],
        "seeds": [0, 1],
        "config": {"optim": {"epochs": 60, "batch_size": 4, "warmup_epochs": 0}},
        "executor": {"kind": "local", "workers": workers, "threads": 1},
    }
    path = root / "grid.yaml"
    path.write_text(json.dumps(grid))  # JSON is YAML
    return path


def _same_as_reference(assets: Assets, runs: Path) -> None:
    ref_runs = assets.ref_run / "runs"
    ref_results = sorted(ref_runs.rglob("results.json"))
    assert len(ref_results) == 4
    for path in ref_results:
        rel = path.relative_to(ref_runs)
        mine = comparable(json.loads((runs / rel).read_text()), runs)
        theirs = comparable(json.loads(path.read_text()), ref_runs)
        assert mine == theirs, rel
        assert (
            safetensors_diff(path.parent / "prompt.safetensors", runs / rel.parent / "prompt.safetensors")
            == 0
        )
        assert not (runs / rel.parent / "checkpoint.safetensors").exists()
    for path in (ref_runs / "manifests").rglob("*.json"):
        assert json.loads((runs / path.relative_to(ref_runs)).read_text()) == json.loads(path.read_text())


def test_sept_bench_survives_sigkill_and_resumes_to_identical_results(assets, tmp_path):
    grid = _grid(assets, tmp_path)
    runs = tmp_path / "runs"
    rng = random.Random(11)
    kills, corrupt, leftovers = 0, [], 0
    plans = [
        (".locks/*.lock", rng.uniform(0.0, 0.5)),  # a cell took its lock: setting up or training
        ("checkpoint.safetensors", rng.uniform(0.0, 0.3)),  # inside a cell's training
        ("results.json", rng.uniform(0.0, 0.3)),  # after a cell finished, others running
    ]
    for pattern, delay in plans:
        when = after_event(tmp_path / "runs", pattern, delay)
        killed, _ = kill_sept(["bench", str(grid)], when, group=True)
        kills += killed
        tree = validate_tree(tmp_path)
        corrupt += tree.corrupt
        leftovers += len(tree.leftovers)
    assert kills >= 2
    final = run_sept(["bench", str(grid)])
    assert final.returncode == 0, final.stdout + final.stderr
    assert corrupt == [] and validate_tree(tmp_path).corrupt == []
    _same_as_reference(assets, runs)
    print(f"\nbench: {kills} kills survived, {len(corrupt)} corrupt files, {leftovers} temporary leftovers")


def test_two_bench_sweeps_sharing_a_run_root(assets, tmp_path):
    """Both succeed; the cell locks let each cell train once; every run equals the reference.
    (One worker each: the two sweeps are the concurrency.)"""
    import subprocess

    grid = _grid(assets, tmp_path, workers=1)
    procs = [
        subprocess.Popen(
            sept_cmd("bench", str(grid)),
            env=sept_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    assert validate_tree(tmp_path).corrupt == []
    runs = tmp_path / "runs"
    _same_as_reference(assets, runs)
    for log in runs.rglob("cell.log"):  # trained by one sweep, found finished by the other
        assert log.read_text().count("cell finished in") == 1, log
    ran = [re.search(r"(\d+) cell\(s\) ran", o) for o in outputs]
    assert all(ran) and sum(int(m.group(1)) for m in ran) == 4, outputs  # no cell ran twice
