"""Same seed, same result; another seed, another result."""

from __future__ import annotations

import torch

from sept.training.trainer import Trainer, epoch_generator, predict_logits
from tests.test_methods_support import (
    CLASSES,
    NEW_CLASSES,
    configure,
    make_method,
    separable_features,
    tiny_clap,
)

__all__ = ["tiny_clap"]


def _run(backbone, seed: int):
    feats, labels = separable_features(backbone.embed_dim, len(CLASSES), per_class=4)
    config = configure("cocoop+kg+dept", ["optim.epochs=2", f"seed={seed}"])
    method = make_method(config, backbone)
    result = Trainer(method, config).fit(feats, labels)
    return method.learned_state(), result.history, predict_logits(method, feats, CLASSES + NEW_CLASSES)


def test_same_seed_gives_identical_results(tiny_clap):
    state_a, hist_a, logits_a = _run(tiny_clap, seed=3)
    torch.manual_seed(999)  # the global RNG state must not matter
    state_b, hist_b, logits_b = _run(tiny_clap, seed=3)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert [h["loss"] for h in hist_a] == [h["loss"] for h in hist_b]
    assert torch.equal(logits_a, logits_b)


def test_another_seed_gives_another_init_and_order(tiny_clap):
    state_a, _, _ = _run(tiny_clap, seed=0)
    state_b, _, _ = _run(tiny_clap, seed=1)
    assert not torch.equal(state_a["learner.meta_net.0.weight"], state_b["learner.meta_net.0.weight"])
    order = [torch.randperm(10, generator=epoch_generator(s, 0)).tolist() for s in (0, 1)]
    assert order[0] != order[1]
