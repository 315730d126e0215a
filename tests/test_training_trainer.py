"""Trainer mechanics: schedule, per-epoch logging, input checks, evaluation helper."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch

from sept.training.config import resolve_config
from sept.training.trainer import Trainer, autocast_dtype, learning_rate, predict_logits
from tests.test_methods_support import CLASSES, configure, make_method, separable_features, tiny_clap

__all__ = ["tiny_clap"]


def test_schedule_is_warmup_then_cosine():
    optim = resolve_config("coop", overrides=["optim.epochs=5", "optim.lr=0.1"]).optim
    lrs = [learning_rate(e, optim) for e in range(5)]
    assert lrs[0] == (1e-5, True)
    assert lrs[1] == (pytest.approx(0.1), False)
    assert lrs[3][0] == pytest.approx(0.05 * (1 + math.cos(math.pi * 2 / 4)))
    assert all(a[0] > b[0] for a, b in itertools.pairwise(lrs[1:]))
    flat = resolve_config("palm").optim
    assert {learning_rate(e, flat) for e in range(3)} == {(0.05, False)}


def test_precision_policy():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype("fp32", torch.device("cuda")) is None


def test_each_epoch_logs_its_loss(tiny_clap, caplog):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    config = configure("kgcoop", ["optim.epochs=3"])
    with caplog.at_level(logging.INFO, logger="sept.training.trainer"):
        result = Trainer(make_method(config, tiny_clap), config).fit(feats, labels)
    lines = [r.getMessage() for r in caplog.records if "loss" in r.getMessage()]
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 loss") and "kg " in lines[0]
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert all(h["parts"].keys() == {"ce", "kg"} for h in result.history)


def test_bf16_autocast_trains_on_cpu(tiny_clap):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    config = configure("coop+dept", ["optim.epochs=2", "precision=bf16"])
    method = make_method(config, tiny_clap)
    result = Trainer(method, config).fit(feats, labels)
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert method.learner.ctx.dtype == torch.float32  # parameters stay fp32
    logits = predict_logits(method, feats, CLASSES, precision="bf16")
    assert logits.dtype == torch.float32 and logits.shape == (feats.shape[0], len(CLASSES))


@pytest.mark.parametrize(
    ("feats", "labels", "match"),
    [
        (torch.zeros(4, 32), torch.tensor([0, 1, 2, 9]), r"labels must be in \[0, 4\)"),
        (torch.zeros(4, 32), torch.tensor([0, 1]), "labels must be"),
        (torch.zeros(4), torch.tensor([0, 1, 2, 3]), "features must be"),
    ],
)
def test_bad_training_data_is_refused(tiny_clap, feats, labels, match):
    config = configure("coop")
    with pytest.raises(ValueError, match=match):
        Trainer(make_method(config, tiny_clap), config).fit(feats, labels)


def test_predict_logits_is_batch_independent(tiny_clap):
    feats, _ = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=3)
    method = make_method(configure("cocoop"), tiny_clap)
    a = predict_logits(method, feats, CLASSES, batch_size=5)
    b = predict_logits(method, feats, CLASSES, batch_size=256)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
