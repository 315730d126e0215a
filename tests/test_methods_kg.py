"""KgCoOp's regulariser: w * (1 - mean_c cos(t_c, t_c^hand)) on hand-made examples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sept.methods.base import Step
from sept.methods.regularizers.kg import KgOptions, KgRegularizer
from tests.test_methods_support import CLASSES, configure, make_method, separable_features, tiny_clap

__all__ = ["tiny_clap"]


def _step(class_feats: torch.Tensor, classnames: list[str]) -> Step:
    b = 2
    return Step(
        audio=torch.zeros(b, class_feats.shape[-1]),
        labels=torch.zeros(b, dtype=torch.long),
        class_feats=class_feats,
        logits=torch.zeros(b, len(classnames)),
        logit_scale=100.0,
        classnames=classnames,
    )


@pytest.fixture
def kg(tiny_clap) -> KgRegularizer:
    method = make_method(configure("coop"), tiny_clap)
    reg = KgRegularizer(KgOptions(weight=8.0, template="the sound of a {}."))
    reg.setup(method.learner, tiny_clap, CLASSES[:2])
    return reg


def test_hand_features_are_the_frozen_template_features(tiny_clap, kg):
    hand = kg.hand_features(CLASSES[:2], torch.device("cpu"))
    expected = tiny_clap.embed_text(["the sound of a dog bark.", "the sound of a siren."])
    torch.testing.assert_close(hand, expected, rtol=0, atol=1e-6)


def test_loss_equals_the_formula_on_a_hand_example(kg):
    names = CLASSES[:2]
    h0, h1 = kg.hand_features(names, torch.device("cpu"))
    # t_0 = h_0 (cos 1); t_1 at 45 degrees from h_1 (cos 1/sqrt 2)
    ortho = F.normalize(torch.randn(h1.shape[0], generator=torch.Generator().manual_seed(0)), dim=0)
    ortho = F.normalize(ortho - (ortho @ h1) * h1, dim=0)
    t1 = F.normalize(h1 + ortho, dim=0)
    loss = kg.loss(_step(torch.stack([h0, t1]), names))
    assert float(loss) == pytest.approx(8.0 * (1 - (1 + 1 / math.sqrt(2)) / 2), abs=1e-5)
    # identical features: no penalty; opposite features: w * (1 - (-1)) = 2w
    assert float(kg.loss(_step(torch.stack([h0, h1]), names))) == pytest.approx(0.0, abs=1e-5)
    assert float(kg.loss(_step(-torch.stack([h0, h1]), names))) == pytest.approx(16.0, abs=1e-4)


def test_conditional_class_features_average_over_clips(kg):
    names = CLASSES[:2]
    hand = kg.hand_features(names, torch.device("cpu"))
    per_clip = torch.stack([hand, -hand])  # [B=2, C=2, D]: cos 1 for clip 0, -1 for clip 1
    assert float(kg.loss(_step(per_clip, names))) == pytest.approx(8.0, abs=1e-4)


def test_kgcoop_loss_part_is_the_regulariser_on_the_prompt_features(tiny_clap):
    config = configure("kgcoop", ["kg.weight=3.0", "learner.ctx_init=null", "learner.n_ctx=4"])
    method = make_method(config, tiny_clap)
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    with torch.no_grad():
        total, parts = method.training_loss(feats, labels)
        t = method.learner.class_features(CLASSES)
    hand = tiny_clap.embed_text(
        [f"the sound of a {n}." for n in ["dog bark", "siren", "car horn", "engine idling"]]
    )
    expected = 3.0 * (1 - F.cosine_similarity(t, hand, dim=-1).mean())
    assert float(parts["kg"]) == pytest.approx(float(expected), abs=1e-5)
    assert float(total) == pytest.approx(float(parts["ce"] + parts["kg"]), abs=1e-5)
    assert float(parts["kg"]) > 1e-3  # a random context is not the hand prompt
