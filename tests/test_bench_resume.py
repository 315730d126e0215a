"""A sweep killed midway (SIGKILL to its process group) resumes and gives the uninterrupted table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sept.bench.sweep import run_sweep
from tests.test_bench_support import FAST, bench_env, make_grid, table_numbers, write_grid

__all__ = ["bench_env"]

GRID = {"methods": ["coop", "coop+sept", "kgcoop"], "seeds": [0, 1], "overrides": [*FAST, "optim.epochs=6"]}


def _tables(run_root: Path) -> list[str]:
    return table_numbers(run_root)


def test_killed_sweep_resumes_to_the_same_table(bench_env, tmp_path):
    killed = tmp_path / "killed"
    config = write_grid(bench_env, killed, tmp_path / "g.yaml", **GRID)
    cmd = [sys.executable, "-m", "sept", "bench", str(config), "--executor", "serial"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 90
    try:
        # kill once 3 cells are finished and a 4th is between two epochs (it has a checkpoint)
        while len(list(killed.rglob("results.json"))) < 3 or not list(killed.rglob("checkpoint.safetensors")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the sweep did not reach the 4th cell's training in time"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finished_before = len(list(killed.rglob("results.json")))
    assert 3 <= finished_before < 12, "the kill did not land midway"
    interrupted = [p.parent for p in killed.rglob("checkpoint.safetensors")]
    assert len(interrupted) == 1

    resumed = run_sweep(make_grid(bench_env, killed, **GRID), echo=lambda s: None)
    assert not resumed.failed
    assert len(resumed.ran) == 12 - finished_before
    assert len(list(killed.rglob("results.json"))) == 12
    assert not list(killed.rglob("checkpoint.safetensors"))  # every interrupted run finished
    train = json.loads((interrupted[0] / "results.json").read_text())["train"]
    assert train["resumed_from_epoch"] >= 1  # it went on from its checkpoint, not from scratch

    straight = tmp_path / "straight"
    run_sweep(make_grid(bench_env, straight, **GRID), echo=lambda s: None)
    assert _tables(killed) == _tables(straight)
