"""Saved prompts (learned parameters only) and resumable training checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from sept.errors import ConfigError
from sept.training import checkpoint as ckpt
from sept.training.checkpoint import load_prompt, save_prompt
from sept.training.trainer import Trainer, predict_logits
from tests.test_methods_support import (
    CLASSES,
    NEW_CLASSES,
    configure,
    make_method,
    separable_features,
    tiny_clap,
)

__all__ = ["tiny_clap"]


@pytest.mark.parametrize("name", ["coop", "cocoop", "palm", "kgcoop+dept", "zeroshot"])
def test_prompt_round_trip_gives_identical_logits(tiny_clap, tmp_path, name):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=4)
    config = configure(name, ["optim.epochs=2"])
    method = make_method(config, tiny_clap)
    Trainer(method, config).fit(feats, labels)
    path = save_prompt(tmp_path / "prompt.safetensors", method, config)

    loaded, loaded_config = load_prompt(path, tiny_clap)
    assert loaded_config.to_dict() == config.to_dict()
    assert loaded.train_classnames == CLASSES
    for classes in (CLASSES, NEW_CLASSES):
        assert torch.equal(predict_logits(loaded, feats, classes), predict_logits(method, feats, classes))
    with safe_open(str(path), "pt") as f:
        assert set(f.keys()) == set(method.learned_state())  # learned parameters only
        assert json.loads(f.metadata()["train_classnames"]) == CLASSES


def test_prompt_does_not_hold_the_backbone(tiny_clap, tmp_path):
    config = configure("coop")
    method = make_method(config, tiny_clap)
    path = save_prompt(tmp_path / "p.safetensors", method, config)
    with safe_open(str(path), "pt") as f:
        assert list(f.keys()) == ["learner.ctx"]
    assert path.stat().st_size < 10_000


def test_wrong_file_is_a_clear_error(tmp_path, tiny_clap):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match=r"bad\.safetensors"):
        load_prompt(bad, tiny_clap)


def _train(tiny_clap, config, path, stop_after: int | None = None, monkeypatch=None):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=4)
    method = make_method(config, tiny_clap)
    if stop_after is not None:
        real_save = ckpt.save_checkpoint

        def save_then_stop(*args, **kwargs):
            real_save(*args, **kwargs)
            if kwargs["epochs_done"] == stop_after:
                raise KeyboardInterrupt

        monkeypatch.setattr("sept.training.trainer.save_checkpoint", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            Trainer(method, config, path).fit(feats, labels)
        monkeypatch.undo()
        method = make_method(config, tiny_clap)  # a fresh process would rebuild from scratch
    result = Trainer(method, config, path).fit(feats, labels)
    return method, result


@pytest.mark.parametrize("name", ["coop+dept", "cocoop"])
def test_interrupted_training_resumes_to_the_same_result(tiny_clap, tmp_path, monkeypatch, name):
    config = configure(name, ["optim.epochs=4", "optim.warmup_epochs=1", "optim.name=sgd"])
    straight, r1 = _train(tiny_clap, config, tmp_path / "a.safetensors")
    resumed, r2 = _train(tiny_clap, config, tmp_path / "b.safetensors", stop_after=2, monkeypatch=monkeypatch)
    assert r2.resumed_from == 2 and r1.resumed_from == 0
    for key, value in straight.learned_state().items():
        assert torch.equal(value, resumed.learned_state()[key]), key
    assert [h["loss"] for h in r1.history] == [h["loss"] for h in r2.history]


def test_adam_state_survives_a_resume(tiny_clap, tmp_path, monkeypatch):
    config = configure("coop", ["optim.epochs=3", "optim.name=adamw", "optim.lr=0.01"])
    straight, _ = _train(tiny_clap, config, tmp_path / "a.safetensors")
    resumed, _ = _train(tiny_clap, config, tmp_path / "b.safetensors", stop_after=1, monkeypatch=monkeypatch)
    assert torch.equal(straight.learned_state()["learner.ctx"], resumed.learned_state()["learner.ctx"])


def test_checkpoint_of_another_config_is_refused(tiny_clap, tmp_path):
    path = tmp_path / "c.safetensors"
    _train(tiny_clap, configure("coop", ["optim.epochs=1"]), path)
    with pytest.raises(ConfigError, match="different configuration"):
        _train(tiny_clap, configure("coop", ["optim.epochs=1", "optim.lr=0.01"]), path)
