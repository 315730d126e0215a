"""Interruptions (issue 8, item 3): ``sept embed`` and ``sept run`` killed with SIGKILL at random
moments, then rerun.

The reference (uninterrupted) outputs are built once per session (tests/reliability_support.py).
Each test then runs a chain of kills at moments drawn by a seeded RNG relative to progress events
(a random delay after the first cache entry, manifest, checkpoint or results file this process
writes, or after a random number of new cache entries), so that they land mid-work on a machine
of any speed; after each kill every file left behind must open (``.npy`` without pickle, JSON,
safetensors), and a final rerun to completion must give the reference's outputs.

"Equal" is exact for everything but one thing: an audio tower's output for a clip changes in the
last bits (~1e-7) with the other clips of its batch (BLAS blocking), and a resumed embedding
batches the remaining clips differently. So the embed test compares features within 1e-6, and
the run test starts from the reference's feature cache: with the same features, training resumed
from a checkpoint must give results and prompts identical bit for bit.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.reliability_support import (
    Assets,
    after_event,
    comparable,
    embed_args,
    kill_sept,
    run_args,
    run_sept,
    safetensors_diff,
    shared_assets,
    validate_tree,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return shared_assets(tmp_path_factory.getbasetemp() / "reliability-assets")


def _count(root: Path, pattern: str) -> int:
    return sum(1 for _ in root.rglob(pattern)) if root.exists() else 0


def test_sept_embed_survives_sigkill_and_resumes_to_identical_features(assets, tmp_path):
    rng = random.Random(2024)
    ref_cache = assets.ref_cache
    n = _count(ref_cache, "*.npy")
    assert n == 160
    cache = tmp_path / "killed"
    kills, corrupt, leftovers = 0, [], 0
    for trial in range(3):
        have = _count(cache, "*.npy")
        if trial == 0:  # a random moment in the first batches
            when = after_event(cache, "*.npy", delay=rng.uniform(0.0, 0.2))
        else:  # after a random number of new cache entries
            when = after_event(cache, "*.npy", count=rng.randint(1, max(1, (n - have) // 3)))
        killed, _ = kill_sept(embed_args(assets, cache), when)
        kills += killed
        tree = validate_tree(cache)
        corrupt += tree.corrupt
        leftovers += len(tree.leftovers)
    assert kills == 3 and 0 < _count(cache, "*.npy") < n, "every kill must land before the end"
    final = run_sept(embed_args(assets, cache))
    assert final.returncode == 0, final.stderr
    assert corrupt == [] and validate_tree(cache).corrupt == []
    assert f"{n} clips embedded" in final.stdout and "0 skipped" in final.stdout
    (ref_dir,) = [p for p in ref_cache.iterdir() if p.is_dir()]
    got_dir = cache / ref_dir.name
    worst = 0.0
    for path in ref_dir.rglob("*.npy"):  # equal to the uninterrupted run, up to batch rounding
        mine = np.load(got_dir / path.relative_to(ref_dir), allow_pickle=False)
        worst = max(worst, float(np.abs(mine - np.load(path, allow_pickle=False)).max()))
    assert worst < 1e-6, worst
    assert json.loads((got_dir / "identity.json").read_text()) == json.loads(
        (ref_dir / "identity.json").read_text()
    )
    print(
        f"\nembed: {kills} kills survived, {len(corrupt)} corrupt, {leftovers} temp leftovers, max diff {worst:.1e}"
    )


def test_sept_run_survives_sigkill_and_resumes_to_identical_results(assets, tmp_path):
    rng = random.Random(7)
    ref = assets.ref_run
    got = tmp_path / "killed"
    runs = got / "runs"
    shutil.copytree(ref / "cache", got / "cache")  # the same features (see the module doc)
    kills, corrupt, leftovers = 0, [], 0
    plans = [
        ("manifests/**/*.json", rng.uniform(0.0, 0.5)),  # shots drawn: loading features, training
        ("checkpoint.safetensors", 0.0),  # right after this process saved an epoch
        ("checkpoint.safetensors", rng.uniform(0.1, 0.6)),  # some epochs later
        ("results.json", rng.uniform(0.0, 0.3)),  # after a run finished, maybe inside the next
    ]
    for pattern, delay in plans:
        when = after_event(runs, pattern, delay)
        killed, _ = kill_sept(run_args(assets, got), when)
        kills += killed
        tree = validate_tree(got)
        corrupt += tree.corrupt
        leftovers += len(tree.leftovers)
    assert kills >= 3
    final = run_sept(run_args(assets, got))
    assert final.returncode == 0, final.stderr
    assert corrupt == [] and validate_tree(got).corrupt == []
    ref_results = sorted((ref / "runs").rglob("coop@*/**/results.json"))
    assert len(ref_results) == 2
    for path in ref_results:
        rel = path.relative_to(ref / "runs")
        mine = json.loads((runs / rel).read_text())
        assert comparable(mine, runs) == comparable(json.loads(path.read_text()), ref / "runs"), rel
        assert (
            safetensors_diff(path.parent / "prompt.safetensors", runs / rel.parent / "prompt.safetensors")
            == 0
        )
        assert not (runs / rel.parent / "checkpoint.safetensors").exists()
    for path in (ref / "runs" / "manifests").rglob("*.json"):  # the same shots
        assert json.loads((runs / path.relative_to(ref / "runs")).read_text()) == json.loads(path.read_text())
    resumed = [json.loads(p.read_text())["train"]["resumed_from_epoch"] for p in runs.rglob("results.json")]
    assert any(r > 0 for r in resumed), "no kill landed inside training"
    print(f"\nrun: {kills} kills survived, {len(corrupt)} corrupt files, {leftovers} temporary leftovers")
