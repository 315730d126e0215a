"""Protocols end to end on the tiny random CLAP and generated audio: run folders, results, reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sept.cli.main import main
from sept.data.dataset import load_dataset
from sept.errors import ConfigError
from sept.evaluation.metrics import harmonic_mean
from sept.protocols import FeatureOptions, FeatureStore, ProtocolSettings, run_protocol
from sept.runs.layout import run_dir
from sept.runs.schema import validate_results
from sept.training import trainer as trainer_module
from tests.test_methods_support import make_tone_dataset, tiny_clap

__all__ = ["tiny_clap"]

FAST = ["optim.epochs=2", "optim.batch_size=4", "optim.warmup_epochs=0", "optim.lr=0.01"]


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tone_dataset(tmp_path_factory.mktemp("tones"), per_class=6, folds=2)


@pytest.fixture(scope="module")
def store(tiny_clap, tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return FeatureStore(tiny_clap, FeatureOptions(cache_dir=tmp_path_factory.mktemp("cache"), progress=False))


def _settings(root: Path, **kw) -> ProtocolSettings:
    return ProtocolSettings(run_root=root, shots=2, **{"seeds": [0], "overrides": FAST, **kw})


def test_base2new_writes_a_complete_run_folder(tiny_clap, tones, store, tmp_path):
    ds = load_dataset(tones)
    results = run_protocol(
        "base2new", tiny_clap, ds, "kgcoop+dept", _settings(tmp_path, folds=[2]), store=store
    )
    assert len(results) == 1
    r = results[0]
    folder = run_dir(tmp_path, validate_results(r).key)
    assert folder.relative_to(tmp_path).parts[:3] == ("base2new", r["dataset_id"], "fold-2")
    assert r["dataset"] == "metadata" and r["dataset_id"].startswith("metadata-")
    assert folder.relative_to(tmp_path).parts[3] == r["variant"]["name"]
    assert r["variant"]["name"].startswith("kgcoop+dept@")  # the FAST options differ from the defaults
    assert r["variant"]["options"]["optim.epochs"] == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "prompt.safetensors",
        "results.json",
        "semantic_structure.json",
        "semantic_structure.safetensors",
    ]
    assert json.loads((folder / "results.json").read_text()) == json.loads(json.dumps(r))
    assert r["format"] == "sept-results/2"
    assert json.loads((folder / "config.json").read_text())["method"] == "kgcoop+dept"
    assert r["base_classes"] == ["car_horn", "dog_bark", "engine_idling"]
    assert r["new_classes"] == ["jackhammer", "siren"]
    assert set(r["base"]["per_class_accuracy"]) <= set(r["base_classes"])
    assert set(r["new"]["per_class_accuracy"]) == set(r["new_classes"])
    assert r["base"]["num_clips"] == 9 and r["new"]["num_clips"] == 6  # 3 test clips per class in fold 2
    assert r["summary"]["h"] == pytest.approx(harmonic_mean(r["summary"]["base"], r["summary"]["new"]))
    assert r["train"]["clips"] == 6 and len(r["train"]["history"]) == 2  # 2 shots x 3 base classes
    assert Path(r["train"]["manifest"]).is_relative_to(tmp_path / "manifests")
    assert any("fused" in n for n in r["base"]["notes"]) and any("ignored" in n for n in r["new"]["notes"])
    assert r["config"]["regularizers"]["kg"]["weight"] == 2.0 and r["config"]["seed"] == 0  # DePT on KgCoOp


def test_finished_runs_are_skipped_and_force_retrains(tiny_clap, tones, store, tmp_path, monkeypatch):
    ds = load_dataset(tones)
    first = run_protocol("fewshot", tiny_clap, ds, "coop", _settings(tmp_path, folds=[1]), store=store)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(trainer_module.Trainer, "fit", no_training)
    again = run_protocol("fewshot", tiny_clap, ds, "coop", _settings(tmp_path, folds=[1]), store=store)
    assert again[0]["summary"] == first[0]["summary"]
    variant = _settings(tmp_path, folds=[1], overrides=[*FAST, "optim.lr=0.02"])
    with pytest.raises(AssertionError, match="trained again"):  # another variant: its own folder
        run_protocol("fewshot", tiny_clap, ds, "coop", variant, store=store)
    # what is not part of a variant (the backbone's options) is guarded by the same-config check
    other = _settings(tmp_path, folds=[1], settings={"backbone_options": {"revision": "other"}})
    with pytest.raises(ConfigError, match="different configuration"):
        run_protocol("fewshot", tiny_clap, ds, "coop", other, store=store)
    with pytest.raises(AssertionError, match="trained again"):
        run_protocol(
            "fewshot", tiny_clap, ds, "coop", _settings(tmp_path, folds=[1], force=True), store=store
        )
    with pytest.raises(ConfigError, match=r"different configuration \(config.json\)"):
        run_protocol("fewshot", tiny_clap, ds, "coop", other, store=store)  # unfinished, another config


def test_fewshot_runs_every_fold_and_seed_on_shared_shots(tiny_clap, tones, store, tmp_path):
    ds = load_dataset(tones)
    settings = _settings(tmp_path, seeds=[0, 1])
    coop = run_protocol("fewshot", tiny_clap, ds, "coop", settings, store=store)
    palm = run_protocol("fewshot", tiny_clap, ds, "palm", settings, store=store)
    assert [(r["fold"], r["seed"]) for r in coop] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [r["train"]["manifest"] for r in coop] == [r["train"]["manifest"] for r in palm]
    assert len({r["train"]["manifest"] for r in coop}) == 4
    assert all(r["test"]["num_clips"] == 15 and 0 <= r["summary"]["accuracy"] <= 100 for r in coop)
    assert all(r["test"]["notes"] == [] for r in palm)  # trained on every class: no fallback


def test_zeroshot_needs_no_training_clips(tiny_clap, tones, store, tmp_path):
    ds = load_dataset(tones)
    (r,) = run_protocol("base2new", tiny_clap, ds, "zeroshot", _settings(tmp_path, folds=[1]), store=store)
    assert r["train"] == {
        "classes": ["car horn", "dog bark", "engine idling"],
        "trainable": False,
        "manifest": None,
    }
    assert not (tmp_path / "manifests").exists()


def test_interrupted_run_resumes_from_its_checkpoint(tiny_clap, tones, store, tmp_path, monkeypatch):
    ds = load_dataset(tones)
    settings = _settings(tmp_path, folds=[1], overrides=[*FAST, "optim.epochs=3"])
    real_save = trainer_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        if kwargs["epochs_done"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_protocol("base2new", tiny_clap, ds, "cocoop", settings, store=store)
    (folder,) = [
        p.parent for p in tmp_path.glob("base2new/*/fold-1/cocoop*/shots-2/seed-0/checkpoint.safetensors")
    ]
    assert (folder / "checkpoint.safetensors").exists() and not (folder / "results.json").exists()
    monkeypatch.undo()
    (r,) = run_protocol("base2new", tiny_clap, ds, "cocoop", settings, store=store)
    assert r["train"]["resumed_from_epoch"] == 2 and len(r["train"]["history"]) == 3
    assert not (folder / "checkpoint.safetensors").exists()


def test_cross_dataset_evaluates_targets_and_adds_new_ones(tiny_clap, tones, store, tmp_path, monkeypatch):
    source = load_dataset(tones, name="tones-a")
    target = load_dataset(tones, name="tones-b")
    third = load_dataset(tones, name="tones-c")
    target.target_folds = third.target_folds = (1,)
    settings = _settings(tmp_path, folds=[1])
    (r,) = run_protocol("xd", tiny_clap, source, "palm", settings, targets=[target], store=store)
    assert set(r["targets"]) == {"tones-b"} and r["targets"]["tones-b"]["num_clips"] == 15
    assert r["summary"]["mean_target"] == r["targets"]["tones-b"]["accuracy"]
    assert r["targets"]["tones-b"]["notes"] == []  # same class names: PALM's vectors apply
    monkeypatch.setattr(trainer_module.Trainer, "fit", lambda *a, **k: pytest.fail("retrained"))
    (r2,) = run_protocol("xd", tiny_clap, source, "palm", settings, targets=[target, third], store=store)
    assert set(r2["targets"]) == {"tones-b", "tones-c"}
    assert r2["targets"]["tones-b"] == r["targets"]["tones-b"]


def test_cross_dataset_csv_target_is_evaluated_on_its_test_fold(tiny_clap, tmp_path, store):
    """A CSV target whose fold 1 is a training pool and fold 2 its test clips: the run evaluates
    fold 2 (chosen explicitly), never the first fold, and reports what it shares with the source."""
    from sept.errors import DataError
    from sept.protocols.needs import target_split

    tones = make_tone_dataset(tmp_path / "tones", per_class=7, folds=2)  # 4 per class in fold 1, 3 in fold 2
    source = load_dataset(tones, name="tones-src")
    target = load_dataset(tones, name="tones-held-out")
    with pytest.raises(DataError, match="--target-fold tones-held-out=K"):
        target_split(target)
    target.target_folds = (2,)
    split = target_split(target)
    assert split.fold == 2 and {c.fold for c in split.test} == {"2"}
    (r,) = run_protocol(
        "xd",
        tiny_clap,
        source,
        "coop",
        _settings(tmp_path / "runs", folds=[1]),
        targets=[target],
        store=store,
    )
    result = r["targets"]["tones-held-out"]
    n_test = len(split.test)
    assert result["num_clips"] == n_test and result["fold"] == 2 and result["test_source"].endswith("== 2")
    assert n_test != len(target.split(1).test)  # fold 1 would have given another count
    # the same files and classes as the source: reported, not hidden
    assert result["overlap"]["files"] == n_test and len(result["overlap"]["classes"]) == len(split.classnames)


def test_cli_run_base2new(tiny_clap, tones, tmp_path, capsys):
    model = tiny_clap.model_id
    argv = ["run", "--protocol", "base2new", "--method", "coop", "cocoop", "--dataset", str(tones)]
    argv += ["--fold", "2", "--seeds", "0", "1", "--shots", "2", "--run-root", str(tmp_path / "runs")]
    argv += ["--backbone", "clap", "--backbone-opt", f"model={model}", "--backbone-opt", "device=cpu"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    for item in FAST:
        argv += ["--set", item]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("Base") == 4
    assert (
        "coop@optim.batch_size=4,optim.epochs=2,optim.lr=0.01,optim.warmup_epochs=0 K=2, mean of 2 runs: base"
        in out
    )
    config = json.loads(next((tmp_path / "runs").rglob("config.json")).read_text())
    assert config["backbone"] == "clap" and config["backbone_options"] == {"model": model, "device": "cpu"}


def test_cli_config_errors_come_before_any_compute(tones, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        "sept.backbones.registry.create_backbone", lambda *a, **k: pytest.fail("backbone loaded")
    )
    argv = ["run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(tones)]
    argv += ["--run-root", str(tmp_path), "--set", "optim.lr=-1"]
    assert main(argv) == 2
    assert "optim.lr must be > 0, got -1" in capsys.readouterr().err
    assert main([*argv[:4], "cooop", *argv[5:-2]]) == 2
    assert "unknown method 'cooop'" in capsys.readouterr().err


def test_cli_lists_methods_and_shows_configs(capsys):
    assert main(["run", "--list-methods"]) == 0
    out = capsys.readouterr().out
    assert "coop: CoOp" in out and "kg: KgCoOp" in out and "dept: DePT" in out and "weight = 8.0" in out
    argv = [
        "run",
        "--show-config",
        "--protocol",
        "base2new",
        "--method",
        "kgcoop+dept",
        "--set",
        "dept.weight=0.5",
    ]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["head"]["dept"]["weight"] == 0.5 and shown["optim"]["batch_size"] == 4  # DePT recipe
