"""Text towers run eager attention on the CPU (sept.backbones.attention), with SDPA's outputs."""

from __future__ import annotations

from pathlib import Path

import torch

from sept.backbones.attention import attention_for, match_attention
from tests.test_yamnet_minilm import _tiny_bert


def test_attention_for_device() -> None:
    assert attention_for(torch.device("cpu")) == "eager"
    assert attention_for(torch.device("cuda")) == "sdpa"
    assert attention_for(torch.device("meta")) == "sdpa"


def test_cpu_tower_switches_to_eager_and_keeps_its_outputs(tmp_path: Path) -> None:
    from sept.backbones.text_encoder import SentenceTextEncoder

    _tiny_bert(tmp_path / "enc")
    enc = SentenceTextEncoder(tmp_path / "enc")
    enc.model.set_attn_implementation("sdpa")
    tokens = enc.tokenize(["the sound of a dog bark .", "siren", "a b"])
    embeds = enc.token_embeddings(tokens.input_ids).detach()
    with torch.no_grad():
        sdpa = enc.model(inputs_embeds=embeds, attention_mask=tokens.attention_mask).last_hidden_state
        feats = enc(embeds, tokens.attention_mask, normalize=False)
    assert enc.model.config._attn_implementation == "eager"
    mask = tokens.attention_mask[..., None].float()
    pooled = (sdpa * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(feats, pooled, rtol=0, atol=1e-6)
    # gradients reach the embeddings through the eager kernel
    x = embeds.clone().requires_grad_(True)
    enc(x, tokens.attention_mask).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_match_attention_leaves_models_without_the_switch_alone() -> None:
    class Plain(torch.nn.Module):
        pass

    match_attention(Plain(), torch.device("cpu"))  # no config: nothing to do, no error
