"""Concurrency (issue 8, item 4): writers sharing a feature cache or a run root leave every file
valid and the same results as one writer alone.

sept relies on atomic renames (a temporary file in the same folder, fsynced, then ``os.replace``):
two processes writing the same cache entry, manifest, checkpoint or results file each replace it
whole, and a reader sees one complete version or the other. The fast tests race threads in one
process; the slow ones start two ``sept`` processes at the same moment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import numpy as np
import pytest
import torch

from sept.data.clips import load_clips
from sept.features import extract_features
from sept.training.trainer import Trainer
from tests.fake_backbone import BandEnergyBackbone
from tests.reliability_support import (
    Assets,
    comparable,
    embed_args,
    run_args,
    safetensors_diff,
    sept_cmd,
    sept_env,
    shared_assets,
    validate_tree,
)
from tests.test_methods_support import (
    CLASSES,
    configure,
    make_method,
    make_tone_dataset,
    separable_features,
    tiny_clap,
)

__all__ = ["tiny_clap"]


def test_threads_embedding_the_same_clips_into_one_cache(tmp_path):
    csv = make_tone_dataset(tmp_path / "data", per_class=6, folds=2)
    clips = load_clips(csv)
    backbone = BandEnergyBackbone()
    cache = tmp_path / "cache"
    results, errors = [], []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            barrier.wait()
            results.append(extract_features(backbone, clips, cache, batch_size=4, workers=2, progress=False))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(torch.equal(r.features, results[0].features) for r in results)
    tree = validate_tree(cache)
    assert tree.corrupt == [] and tree.leftovers == [] and tree.checked == len(clips) + 1
    again = extract_features(backbone, clips, cache, progress=False)
    assert again.cache_hits == len(clips) and torch.equal(again.features, results[0].features)


def test_a_checkpoint_removed_by_another_process_mid_resume_restarts_cleanly(
    tiny_clap, tmp_path, monkeypatch
):
    """Two runs of the same folder: one finishes and deletes the checkpoint between the other's
    existence check and its read. The other then trains from the start instead of failing."""
    config = configure("coop", ["optim.epochs=2"])
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    path = tmp_path / "checkpoint.safetensors"
    Trainer(make_method(config, tiny_clap), config, path).fit(feats, labels)
    alone = make_method(config, tiny_clap)
    Trainer(alone, config).fit(feats, labels)
    from sept.training import trainer as trainer_module

    real_load = trainer_module.load_checkpoint

    def vanish_then_load(*args, **kwargs):
        path.unlink()  # the other process finished: write_results removed the checkpoint
        return real_load(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "load_checkpoint", vanish_then_load)
    method = make_method(config, tiny_clap)
    result = Trainer(method, config, path).fit(feats, labels)
    assert result.resumed_from == 0 and len(result.history) == 2
    assert torch.equal(method.learned_state()["learner.ctx"], alone.learned_state()["learner.ctx"])


# ---- two processes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return shared_assets(tmp_path_factory.getbasetemp() / "reliability-assets")


def _together(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Start every command at once; wait for all."""
    procs = [
        subprocess.Popen(
            sept_cmd(*c), env=sept_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in commands
    ]
    out = []
    for cmd, proc in zip(commands, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr))
    return out


@pytest.mark.slow
def test_two_processes_embedding_one_dataset_into_one_cache(assets, tmp_path):
    cache = tmp_path / "cache"
    first, second = _together(embed_args(assets, cache), embed_args(assets, cache))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for done in (first, second):
        assert "160 clips embedded" in done.stdout and "0 skipped" in done.stdout
    tree = validate_tree(cache)
    assert tree.corrupt == [] and tree.leftovers == [] and tree.checked == 161
    (ref_dir,) = [p for p in assets.ref_cache.iterdir() if p.is_dir()]
    for path in ref_dir.rglob("*.npy"):  # the values of one uninterrupted run (see test_reliability_kill)
        mine = np.load(cache / ref_dir.name / path.relative_to(ref_dir), allow_pickle=False)
        assert float(np.abs(mine - np.load(path, allow_pickle=False)).max()) < 1e-6


@pytest.mark.slow
def test_two_sweeps_sharing_a_run_root(assets, tmp_path):
    """Two ``sept run`` invocations on one run root, the same runs in opposite orders, at once:
    both succeed and every run folder equals the sequential reference exactly."""
    root = tmp_path / "shared"
    shutil.copytree(assets.ref_run / "cache", root / "cache")  # the reference's features
    a = run_args(assets, root, ("coop", "palm"), ("0", "1"))
    b = run_args(assets, root, ("palm", "coop"), ("1", "0"))
    first, second = _together(a, b)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    tree = validate_tree(root)
    assert tree.corrupt == []
    ref_runs, runs = assets.ref_run / "runs", root / "runs"
    ref_results = sorted(ref_runs.rglob("results.json"))
    assert len(ref_results) == 4 and len(list(runs.rglob("results.json"))) == 4
    for path in ref_results:
        rel = path.relative_to(ref_runs)
        mine = json.loads((runs / rel).read_text())
        assert comparable(mine, runs) == comparable(json.loads(path.read_text()), ref_runs), rel
        assert (
            safetensors_diff(path.parent / "prompt.safetensors", runs / rel.parent / "prompt.safetensors")
            == 0
        )
        assert not (runs / rel.parent / "checkpoint.safetensors").exists()
    for path in (ref_runs / "manifests").rglob("*.json"):
        assert json.loads((runs / path.relative_to(ref_runs)).read_text()) == json.loads(path.read_text())
