"""Frozen text features are computed once per (backbone, text list) and shared by the runs of a process."""

from __future__ import annotations

import torch

from sept.backbones.base import FROZEN_TEXT_MEMO
from tests.test_methods_support import CLASSES, configure, make_method, tiny_clap

__all__ = ["tiny_clap"]


def _count_tower_calls(backbone, monkeypatch) -> list[int]:
    calls: list[int] = []
    inner = type(backbone).encode_text_embeds

    def counting(self, embeds, mask):
        calls.append(int(embeds.shape[0]))
        return inner(self, embeds, mask)

    monkeypatch.setattr(type(backbone), "encode_text_embeds", counting)
    return calls


def test_a_text_list_goes_through_the_tower_once(tiny_clap, monkeypatch):
    texts = ["memo test: a dog barks.", "memo test: a siren wails."]
    calls = _count_tower_calls(tiny_clap, monkeypatch)
    first = tiny_clap.embed_text(texts)
    second = tiny_clap.embed_text(texts)
    assert calls == [2]
    assert torch.equal(first, second)
    first.zero_()  # the caller's copy: the memo is not changed through it
    assert torch.equal(tiny_clap.embed_text(texts), second)
    tiny_clap.embed_text(texts[:1])  # another list is computed
    assert calls == [2, 1]


def test_the_memo_is_bounded(tiny_clap, monkeypatch):
    calls = _count_tower_calls(tiny_clap, monkeypatch)
    for i in range(FROZEN_TEXT_MEMO + 1):
        tiny_clap.embed_text([f"bounded memo text {i}"])
    assert len(tiny_clap.__dict__["_frozen_text_memo"]) == FROZEN_TEXT_MEMO
    tiny_clap.embed_text(["bounded memo text 0"])  # the oldest was dropped: computed again
    assert len(calls) == FROZEN_TEXT_MEMO + 2


def test_methods_built_twice_share_the_frozen_features(tiny_clap, monkeypatch):
    """KgCoOp's hand-crafted targets and zero-shot's class features: a second run in the same
    process (a sweep worker's next cell) does not run the text tower for them again."""
    calls = _count_tower_calls(tiny_clap, monkeypatch)
    classes = CLASSES[:2]
    cpu = torch.device("cpu")
    frozen = {
        "kgcoop": lambda m: m.regularizers["kg"].hand_features(classes, cpu),
        "zeroshot": lambda m: m.class_features(classes),
    }
    for name, features in frozen.items():
        first = features(make_method(configure(name), tiny_clap, classes))
        n = len(calls)
        second = features(make_method(configure(name), tiny_clap, classes))
        assert torch.equal(first, second)
        assert len(calls) == n, f"{name}: the text tower ran again for frozen features"


def test_features_computed_under_autocast_are_not_served_to_fp32_callers(tiny_clap, monkeypatch):
    texts = ["memo test: an engine idles.", "memo test: children play."]
    calls = _count_tower_calls(tiny_clap, monkeypatch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = tiny_clap.embed_text(texts)
        assert torch.equal(tiny_clap.embed_text(texts), low)
    full = tiny_clap.embed_text(texts)
    assert calls == [2, 2]  # one pass per arithmetic
    assert not torch.equal(full, low)
    with torch.inference_mode():
        tokens = tiny_clap.tokenize(texts)
        fresh = tiny_clap.encode_text_embeds(
            tiny_clap.token_embeddings(tokens.input_ids), tokens.attention_mask
        )
    torch.testing.assert_close(full, fresh, rtol=0, atol=0)
