"""PALM: per-class vectors and gates in the joint space; frozen g(c) for classes it never saw."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sept.training.trainer import Trainer
from tests.test_methods_support import (
    CLASSES,
    NEW_CLASSES,
    configure,
    make_method,
    separable_features,
    tiny_clap,
)

__all__ = ["tiny_clap"]


def test_trained_classes_mix_the_learned_vector_with_the_frozen_name(tiny_clap):
    method = make_method(configure("palm"), tiny_clap)
    learner = method.learner
    g = tiny_clap.embed_text(["dog bark", "siren", "car horn", "engine idling"])  # bare names
    with torch.no_grad():
        lam = torch.sigmoid(learner.gate).unsqueeze(1)
        expected = F.normalize((1 - lam) * g + lam * learner.u, dim=-1)
        torch.testing.assert_close(method.class_features(CLASSES), expected, rtol=0, atol=1e-6)
    assert set(method.learned_state()) == {"learner.u", "learner.gate"}


def test_new_classes_fall_back_to_the_frozen_class_name_feature(tiny_clap):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=4)
    config = configure("palm", ["optim.epochs=2"])
    method = make_method(config, tiny_clap)
    Trainer(method, config).fit(feats, labels)
    g_new = tiny_clap.embed_text(["jackhammer", "street music", "children playing"])
    with torch.no_grad():
        new = method.class_features(NEW_CLASSES)
        mixed = method.class_features([CLASSES[1], NEW_CLASSES[0]])
        base = method.class_features(CLASSES)
    torch.testing.assert_close(new, g_new, rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[0], base[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[1], g_new[0], rtol=0, atol=1e-6)
    assert (
        base - tiny_clap.embed_text(["dog bark", "siren", "car horn", "engine idling"])
    ).abs().max() > 1e-3
    notes = method.eval_notes([CLASSES[1], *NEW_CLASSES])
    assert len(notes) == 1 and "3 of 4" in notes[0] and "jackhammer" in notes[0]
    assert method.eval_notes(CLASSES) == []


def test_no_text_tower_forward_while_training(tiny_clap, monkeypatch):
    method = make_method(configure("palm"), tiny_clap)
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    method.training_loss(feats, labels)  # frozen class-name features are computed once here
    calls = []
    for attr in ("encode_text_embeds", "encode_text_embeds_raw"):
        original = getattr(type(tiny_clap), attr)
        monkeypatch.setattr(
            type(tiny_clap), attr, lambda self, e, m, f=original: calls.append(1) or f(self, e, m)
        )
    loss, _ = method.training_loss(feats, labels)
    loss.backward()
    assert calls == []
    assert method.learner.u.grad is not None and method.learner.gate.grad is not None
