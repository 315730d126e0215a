"""DePT's head: fused with the similarity logits on training classes only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sept.methods.base import TextRequest
from sept.methods.compose import similarity_logits
from sept.training.trainer import Trainer, build_optimizer
from tests.test_methods_support import (
    CLASSES,
    NEW_CLASSES,
    configure,
    make_method,
    separable_features,
    tiny_clap,
)

__all__ = ["tiny_clap"]


@pytest.fixture(scope="module")
def trained(tiny_clap):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=4)
    config = configure("coop+dept", ["optim.epochs=3"])
    method = make_method(config, tiny_clap)
    Trainer(method, config).fit(feats, labels)
    return method, feats, labels


def _head_logits(head, audio: torch.Tensor) -> torch.Tensor:
    a = audio * head.audio_ss.scale + head.audio_ss.shift
    return a @ head.linear.weight.T + head.linear.bias


def test_training_classes_fuse_head_and_similarity(trained):
    method, feats, _ = trained
    with torch.no_grad():
        sim = similarity_logits(feats, method.learner.class_features(CLASSES), method.logit_scale)
        head = _head_logits(method.head, feats)
        logits = method.logits(feats, CLASSES)
    torch.testing.assert_close(logits, 0.3 * sim + 0.7 * head, rtol=1e-5, atol=1e-4)
    assert (logits - sim).abs().max() > 1e-3  # the head changes them
    # a reordered subset of the training classes picks the matching head columns
    subset = [CLASSES[2], CLASSES[0]]
    with torch.no_grad():
        sub = method.logits(feats, subset)
    torch.testing.assert_close(sub, logits[:, [2, 0]], rtol=1e-5, atol=1e-4)
    assert any("fused" in n for n in method.eval_notes(CLASSES))


@pytest.mark.parametrize("classes", [NEW_CLASSES, [CLASSES[0], NEW_CLASSES[0]]])
def test_unseen_classes_use_similarity_logits_only(trained, classes):
    method, feats, _ = trained
    with torch.no_grad():
        sim = similarity_logits(feats, method.learner.class_features(classes), method.logit_scale)
        logits = method.logits(feats, classes)
    torch.testing.assert_close(logits, sim, rtol=0, atol=1e-5)
    assert any("ignored" in n for n in method.eval_notes(classes))


def test_loss_is_weighted_similarity_and_head_cross_entropy(trained):
    method, feats, labels = trained
    with torch.no_grad():
        total, parts = method.training_loss(feats, labels)
        t = method.learner.class_features(CLASSES)
        sim = similarity_logits(feats, t, method.logit_scale)
        head = method.head
        # DePT's code feeds the head the text encoder's unnormalised outputs
        t_raw = method.learner.encode_raw([TextRequest(tuple(CLASSES), "classes")])[0]
        torch.testing.assert_close(F.normalize(t_raw, dim=-1), t)
        assert (t_raw.norm(dim=-1) - 1).abs().max() > 1e-2  # the raw features are not unit vectors
        head_in = torch.cat(
            [
                t_raw[labels] * head.text_ss.scale + head.text_ss.shift,
                feats * head.audio_ss.scale + head.audio_ss.shift,
            ]
        )
        head_ce = F.cross_entropy(head_in @ head.linear.weight.T + head.linear.bias, labels.repeat(2))
    expected = 0.3 * F.cross_entropy(sim, labels) + 0.7 * head_ce
    assert set(parts) == {"dept"}
    assert float(total) == pytest.approx(float(expected), rel=1e-5)


def test_head_trains_at_a_multiple_of_the_prompt_lr(tiny_clap):
    config = configure("coop+dept", ["optim.lr=0.01", "dept.lr_mult=6.5"])
    method = make_method(config, tiny_clap)
    groups = {g["name"]: g for g in build_optimizer(method, config.optim).param_groups}
    assert groups["prompt"]["lr"] == pytest.approx(0.01)
    assert groups["head"]["lr"] == pytest.approx(0.065)
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in method.head.parameters()}
    assert method.head.linear.out_features == len(CLASSES)
    torch.testing.assert_close(method.head.audio_ss.scale.detach(), torch.ones(tiny_clap.embed_dim))
    torch.testing.assert_close(method.head.text_ss.shift.detach(), torch.zeros(tiny_clap.embed_dim))


def test_head_acts_on_unnormalised_audio_features(trained):
    """Scaling the audio features leaves the similarity logits as they are and moves the head's
    (the protocols hand methods the backbone's unnormalised features, as DePT's code does)."""
    method, feats, _ = trained
    with torch.no_grad():
        sim = similarity_logits(feats, method.learner.class_features(CLASSES), method.logit_scale)
        torch.testing.assert_close(
            similarity_logits(3 * feats, method.learner.class_features(CLASSES), method.logit_scale), sim
        )
        scaled = method.logits(3 * feats, CLASSES)
    torch.testing.assert_close(
        scaled, 0.3 * sim + 0.7 * _head_logits(method.head, 3 * feats), rtol=1e-5, atol=1e-4
    )
    assert (scaled - method.logits(feats, CLASSES)).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("method_name", "expected"),
    [
        ("coop+dept", {"lr": 0.0035, "batch": 4, "epochs": 10, "n_ctx": 16, "ctx_init": None}),
        ("kgcoop+dept", {"lr": 0.0035, "batch": 4, "epochs": 10, "n_ctx": 4, "kg": 2.0}),
        ("coop+dept+sept", {"lr": 0.0035, "batch": 4, "epochs": 10, "n_ctx": 16}),
    ],
)
def test_dept_recipe_presets(method_name, expected):
    from sept.training.config import resolve_config

    for protocol in ("base2new", "xd"):
        c = resolve_config(method_name, protocol)
        assert (c.optim.lr, c.optim.batch_size, c.optim.epochs) == (
            expected["lr"],
            expected["batch"],
            expected["epochs"],
        )
        assert c.learner.n_ctx == expected["n_ctx"] or c.learner.ctx_init is not None
        if "ctx_init" in expected:
            assert c.learner.ctx_init is None and c.learner.n_ctx == 16
        if "kg" in expected:
            assert c.regularizers["kg"].weight == expected["kg"]
        assert c.head["dept"].lr_mult == 6.5 and c.head["dept"].weight == 0.7
    # a user's --set still wins over the recipe
    assert resolve_config(method_name, "base2new", overrides=["optim.epochs=3"]).optim.epochs == 3
