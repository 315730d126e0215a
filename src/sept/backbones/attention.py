"""Which attention kernel the frozen text towers run, by device.

Prompt tuning runs a backward pass through the frozen text tower at every step. On the CPU,
PyTorch's fused SDPA kernel is slow in that backward under bf16: MiniLM, 16 prompts of 12 tokens,
one thread, bf16 autocast: 1.03x the speed of SDPA fp32 with SDPA, 2.38x with eager attention; in
fp32 the two kernels are within noise (``python benchmarks/bench_attention.py``; benchmarks/README.md,
"Attention on the CPU"). So CPU towers use the eager kernel. Both compute the same attention
(hidden states within 1e-5 of each other in fp32). Elsewhere (CUDA) the towers keep SDPA.
"""

from __future__ import annotations

from typing import Any

import torch


def attention_for(device: torch.device) -> str:
    """The transformers attention implementation for a text tower on ``device``."""
    return "eager" if device.type == "cpu" else "sdpa"


def match_attention(model: Any, device: torch.device) -> None:
    """Switch a transformers model to :func:`attention_for` ``device`` if it runs another kernel.

    Models that cannot switch (no ``set_attn_implementation``) are left as they are.
    """
    want = attention_for(device)
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current is None or current == want or not hasattr(model, "set_attn_implementation"):
        return
    model.set_attn_implementation(want)
