"""Prompt learners on the tiny random CLAP: prompt layout, batching, training signal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sept.evaluation.zeroshot import zeroshot_class_features
from sept.methods.base import Regularizer, Step, TextRequest
from sept.training.trainer import Trainer, predict_logits
from tests.test_methods_support import CLASSES, configure, make_method, separable_features, tiny_clap

__all__ = ["tiny_clap"]

TRAINED_METHODS = ["coop", "cocoop", "kgcoop", "palm", "coop+dept", "kgcoop+dept", "cocoop+kg+dept"]


def _full_loss(method, feats, labels) -> float:
    with torch.no_grad():
        return float(method.training_loss(feats, labels)[0])


@pytest.mark.parametrize("name", TRAINED_METHODS)
def test_loss_decreases_on_separable_features(tiny_clap, name):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=8)
    config = configure(name)
    method = make_method(config, tiny_clap)
    before = _full_loss(method, feats, labels)
    result = Trainer(method, config).fit(feats, labels)
    after = _full_loss(method, feats, labels)
    assert len(result.history) == config.optim.epochs
    assert all(set(h) >= {"epoch", "loss", "parts", "lr"} for h in result.history)
    assert after < 0.85 * before, (name, before, after)


def test_zeroshot_trains_nothing_and_matches_sept_eval(tiny_clap):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    config = configure("zeroshot")
    method = make_method(config, tiny_clap)
    assert method.learned_state() == {}
    assert Trainer(method, config).fit(feats, labels).history == []
    readable = ["dog bark", "siren", "car horn", "engine idling"]
    expected = (
        tiny_clap.default_logit_scale
        * feats
        @ zeroshot_class_features(tiny_clap, readable, config.learner.templates).T
    )
    torch.testing.assert_close(predict_logits(method, feats, CLASSES), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["coop", "cocoop"])
def test_template_context_reproduces_the_hand_prompt(tiny_clap, name):
    """Context vectors initialised from "the sound of a", placed after <s>, before " dog bark." tokens,
    give exactly the frozen feature of "the sound of a dog bark." (CoCoOp: without the shift)."""
    method = make_method(configure(name), tiny_clap)
    assert method.learner.n_ctx == 4  # "the", " sound", " of", " a"
    with torch.no_grad():
        feats = method.learner.class_features(["dog_bark", "siren"])
    expected = tiny_clap.embed_text(["the sound of a dog bark.", "the sound of a siren."])
    torch.testing.assert_close(feats, expected, rtol=0, atol=1e-5)


def test_random_context_has_the_configured_length(tiny_clap):
    method = make_method(configure("coop", ["learner.ctx_init=null", "learner.n_ctx=7"]), tiny_clap)
    assert tuple(method.learner.ctx.shape) == (7, tiny_clap.token_dim)
    assert 0.005 < float(method.learner.ctx.detach().std()) < 0.05  # N(0, 0.02)


def test_cocoop_class_features_depend_on_the_clip(tiny_clap):
    method = make_method(configure("cocoop"), tiny_clap)
    audio = F.normalize(
        torch.randn(3, tiny_clap.embed_dim, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    with torch.no_grad():
        batched = method.class_features(CLASSES, audio)
        one_by_one = torch.stack([method.class_features(CLASSES, audio[i : i + 1])[0] for i in range(3)])
        again = method.class_features(CLASSES, audio[:1])[0]
    assert batched.shape == (3, len(CLASSES), tiny_clap.embed_dim)
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-5)  # one batched forward == a loop
    torch.testing.assert_close(again, batched[0], rtol=0, atol=1e-5)
    assert (batched[0] - batched[1]).abs().max() > 1e-4  # a different clip, different class features


def test_cocoop_is_batched_in_one_text_forward(tiny_clap, monkeypatch):
    method = make_method(configure("cocoop"), tiny_clap)
    calls = []
    original = type(tiny_clap).encode_text_embeds_raw  # the prompted forward (learners normalise)

    def counting(self, embeds, mask):
        calls.append(embeds.shape[0])
        return original(self, embeds, mask)

    monkeypatch.setattr(type(tiny_clap), "encode_text_embeds_raw", counting)
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    method.training_loss(feats, labels)
    assert calls == [feats.shape[0] * len(CLASSES)]


class _PhraseRegularizer(Regularizer):
    """Asks for phrases every step and records what it receives."""

    name = "phrases"

    def __init__(self, phrases: list[str], shift: bool = False) -> None:
        super().__init__()
        self.phrases, self.shift, self.seen = phrases, shift, None

    def extra_texts(self, classnames, generator):
        return TextRequest(tuple(self.phrases), "phrases", self.shift)

    def loss(self, step: Step) -> torch.Tensor:
        self.seen = step.extras[self.name]
        return step.extras[self.name].sum() * 0.0


@pytest.mark.parametrize(
    ("phrases", "forwards"),
    [
        (["dog barking", "a siren", "car horns"], 1),  # about as long as the class prompts
        # much longer than the class prompts: padding each request to its own longest text saves
        # enough tokens to pay for a second forward (coop.py's _encode_parts)
        (["a dog barking loudly at night in the rain", "an ambulance", "honking"], 2),
    ],
)
@pytest.mark.parametrize(("name", "shift"), [("coop", False), ("cocoop", False), ("cocoop", True)])
def test_regularizer_texts_share_the_class_forward(tiny_clap, monkeypatch, name, shift, phrases, forwards):
    method = make_method(configure(name), tiny_clap)
    reg = _PhraseRegularizer(phrases, shift)
    reg.setup(method.learner, tiny_clap, CLASSES)
    method.regularizers["phrases"] = reg
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=1)
    calls = []
    original = type(tiny_clap).encode_text_embeds_raw  # the prompted forward (learners normalise)

    def counting(self, embeds, mask):
        calls.append(embeds.shape[0])
        return original(self, embeds, mask)

    monkeypatch.setattr(type(tiny_clap), "encode_text_embeds_raw", counting)
    with torch.no_grad():
        method.training_loss(feats, labels)
    assert len(calls) == forwards  # classes and phrases in one text-tower forward unless far apart
    monkeypatch.undo()
    with torch.no_grad():
        alone = method.learner.encode_texts(phrases, feats, shift=shift)
    expected_shape = (feats.shape[0], 3, tiny_clap.embed_dim) if shift else (3, tiny_clap.embed_dim)
    assert reg.seen.shape == expected_shape
    # padding to a longer batch changes nothing
    torch.testing.assert_close(reg.seen, alone, rtol=0, atol=1e-5)


def test_only_method_parameters_train_and_the_backbone_stays_frozen(tiny_clap):
    before = {k: v.clone() for k, v in tiny_clap.state_dict().items()}
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=4)
    config = configure("cocoop+dept", ["optim.epochs=2"])
    method = make_method(config, tiny_clap)
    start = {k: v.clone() for k, v in method.learned_state().items()}
    Trainer(method, config).fit(feats, labels)
    assert not tiny_clap.training
    assert all(not m.training for m in tiny_clap.modules())
    assert not any(p.requires_grad for p in tiny_clap.parameters())
    for key, value in tiny_clap.state_dict().items():
        assert torch.equal(value, before[key]), key
    changed = [k for k, v in method.learned_state().items() if not torch.equal(v, start[k])]
    assert "learner.ctx" in changed and "head.linear.weight" in changed
    assert not any(k.startswith(("backbone", "learner.backbone")) for k in method.state_dict())
