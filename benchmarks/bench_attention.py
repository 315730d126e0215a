"""The text tower's attention kernel and arithmetic on this device: why CPU towers run eager attention.

One prompt-tuning step's text work (forward through the frozen tower, backward into the token
embeddings) on the offline backbone's MiniLM, for 16 prompts like CoOp's (4 context tokens + a
class name), under each (attention kernel, arithmetic) pair: SDPA or eager, fp32 or bf16 autocast
(as the Trainer runs ``precision: bf16``). The four variants run round by round (A, B, C, D, A, ...)
so background load hits all alike; printed: the median time per step and each one's speed-up
over SDPA fp32, and the largest difference of the outputs from SDPA fp32.

    python benchmarks/bench_attention.py [--rounds 15] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import benchlib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep worker uses 1)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from sept.backbones.registry import create_backbone
    from sept.demo.gm import INSTRUMENTS
    from sept.training.trainer import autocast

    torch.set_num_threads(args.threads)
    print(benchlib.machine())
    backbone = create_backbone("yamnet-minilm").to(args.device)
    device = torch.device(args.device)
    names = sorted(INSTRUMENTS)[:16]  # the demo's base classes
    tokens = backbone.tokenize([f"a b c d {name}." for name in names])
    embeds = backbone.token_embeddings(tokens.input_ids.to(device)).detach()
    mask = tokens.attention_mask.to(device)
    model = backbone.text.model
    print(
        f"16 prompts x {embeds.shape[1]} tokens, MiniLM ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M)"
    )

    def step(kernel: str, precision: str):
        def run() -> torch.Tensor:
            model.set_attn_implementation(kernel)
            x = embeds.clone().requires_grad_(True)
            with autocast(precision, device):
                out = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
            out.float().sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out.detach().float()

        return run

    variants = {(k, p): step(k, p) for k in ("sdpa", "eager") for p in ("fp32", "bf16")}
    reference = variants[("sdpa", "fp32")]()
    outputs = {key: fn() for key, fn in variants.items()}  # warm-up, and the outputs
    times: dict = {key: [] for key in variants}
    for _ in range(args.rounds):
        for key, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    base = statistics.median(times[("sdpa", "fp32")])
    print("| attention | arithmetic | step | speed-up over SDPA fp32 | max abs diff of outputs |")
    print("|---|---|---:|---:|---:|")
    for (kernel, precision), ts in times.items():
        med = statistics.median(ts)
        diff = (outputs[(kernel, precision)] - reference).abs().max().item()
        print(f"| {kernel} | {precision} | {med * 1e3:.1f} ms | {base / med:.2f}x | {diff:.1e} |")
    print("load average at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
