"""Cached training vs re-encoding: one CoOp epoch on cached audio features vs the same epoch
running the audio tower every step (what the reference code does).

Setting (issue 7): 16 shots x 25 classes = 400 real clips (us8k-mini recordings labelled with the
first 25 ESC50 class names), CoOp with the few-shot protocol's defaults (16 context vectors,
batch 16, SGD): 25 steps. Both paths run the *same* loop, step by step interleaved (a cached step,
then a re-encoding step on the same batch), with identically initialised prompts; they differ only
in where a batch's audio features come from: the cache (a tensor index) or the audio tower
(``backbone.embed_audio`` on the batch's waveforms). The waveforms are decoded once beforehand,
which *favours* the re-encoding path (the reference code also decodes every step), so the ratio is
a lower bound. The one-time feature extraction is reported separately, and so is the library's
own ``Trainer`` epoch on the cached features.

Also printed, for information (not checked): the floating-point work of one step of each path
(the ratio both would reach at equal FLOP rates), and a third, *reference-style* path that does
what the reference code does every step: read and decode the batch's files, run the audio tower,
and pad every prompt to the tokenizer's maximum length (77 tokens, as LAION-CLAP's tokenizer call).

Target: cached >= 20x faster per epoch.

    python benchmarks/bench_cached_training.py [--backbone clap|offline] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import benchlib

SHOTS, NUM_CLASSES = 16, 25
#: the reference code pads every prompt to this many tokens (LAION-CLAP: max_length=77)
REFERENCE_TEXT_LENGTH = 77


def pad_prompts_to(backbone, length: int) -> None:
    """Make ``backbone.encode_text_embeds`` pad every prompt batch [N, L, E] to [N, length, E]
    (masked positions, so features are unchanged; only the cost grows) while ``backbone.pad_to``
    is set; the reference-style path sets it."""
    import torch

    encode = backbone.encode_text_embeds

    def padded(inputs_embeds, attention_mask):
        extra = length - inputs_embeds.shape[1]
        if getattr(backbone, "pad_to", False) and extra > 0:
            n, _, e = inputs_embeds.shape
            inputs_embeds = torch.cat([inputs_embeds, inputs_embeds.new_zeros(n, extra, e)], dim=1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_zeros(n, extra)], dim=1)
        return encode(inputs_embeds, attention_mask)

    backbone.encode_text_embeds = padded
    backbone.pad_to = False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", choices=["clap", "offline"], default="clap")
    parser.add_argument("--quick", action="store_true", help="time 6 of the epoch's 25 steps")
    parser.add_argument("--method", default="coop", help="learner to train (default coop)")
    benchlib.add_device_args(parser)
    args = parser.parse_args()

    import torch

    from bench_sept_cost import esc50_classes
    from sept.audio.io import load_audio
    from sept.features.extract import extract_features
    from sept.training.config import resolve_config
    from sept.training.trainer import Trainer, autocast, build_optimizer, epoch_generator

    check = benchlib.Check(
        f"cached training vs re-encoding ({args.backbone} backbone, {args.method}, precision {args.precision})"
    )
    backbone = benchlib.backbone_by_name(args.backbone, args.device)
    device = backbone.device
    classnames, _ = esc50_classes()
    clips = benchlib.real_clips("us8k-mini")[: SHOTS * NUM_CLASSES]
    labels = (torch.arange(len(clips)) % NUM_CLASSES).to(device)
    config = resolve_config(
        args.method, "fewshot", overrides=["optim.epochs=1", f"precision={args.precision}"]
    )
    bs = config.optim.batch_size
    steps = len(clips) // bs
    print(
        f"{len(clips)} clips, {NUM_CLASSES} classes, batch {bs}: {steps} steps per epoch; "
        f"{args.method} with {config.learner.n_ctx if hasattr(config.learner, 'n_ctx') else '-'} context vectors"
    )

    with tempfile.TemporaryDirectory(prefix="sept-bench-cache-") as cache_dir:
        t0 = time.perf_counter()
        fs = extract_features(backbone, clips, cache_dir, progress=False)
        extract_s = time.perf_counter() - t0
    feats = fs.features.to(device)
    waves = [backbone.prepare_audio(load_audio(c.path, backbone.sample_rate)) for c in clips]
    print(f"one-time feature extraction of the {len(clips)} clips: {extract_s:.1f} s")

    pad_prompts_to(
        backbone, min(REFERENCE_TEXT_LENGTH, getattr(backbone, "max_text_length", REFERENCE_TEXT_LENGTH))
    )
    methods = {
        name: config.build_method(backbone, classnames) for name in ("cached", "re-encoding", "reference")
    }
    opts = {name: build_optimizer(method, config.optim) for name, method in methods.items()}
    order = torch.randperm(len(clips), generator=epoch_generator(config.seed, 0))
    gens = {k: epoch_generator(config.seed, 0) for k in opts}
    for method in methods.values():
        method.train()

    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and args.precision == "fp16" else None

    def step(name: str, method, idx: torch.Tensor) -> None:
        with autocast(args.precision, device):
            if name == "cached":
                audio = feats[idx.to(device)]
            else:
                batch = [waves[i] for i in idx.tolist()]
                if name == "reference":
                    batch = [
                        backbone.prepare_audio(load_audio(clips[i].path, backbone.sample_rate))
                        for i in idx.tolist()
                    ]
                with torch.inference_mode():
                    audio = backbone.embed_audio(batch).float().clone()
            backbone.pad_to = name == "reference"
            try:
                loss, _ = method.training_loss(
                    audio, labels[idx.to(device)], classnames, generator=gens[name]
                )
            finally:
                backbone.pad_to = False
        opts[name].zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opts[name])
            scaler.update()
        else:
            loss.backward()
            opts[name].step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    # floating-point work of one step of each path (torch's FLOP counter: matmuls, convolutions,
    # attention): the ratio both paths would reach running at the same FLOP rate
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for name, method in methods.items():
        with FlopCounterMode(display=False) as counter:
            step(name, method, order[:bs])
        flops[name] = counter.get_total_flops()
    print(
        f"work per step: cached {flops['cached'] / 1e9:.1f} GFLOP, re-encoding "
        f"{flops['re-encoding'] / 1e9:.1f} GFLOP (audio tower {(flops['re-encoding'] - flops['cached']) / 1e9:.1f}); "
        f"ratio {flops['re-encoding'] / flops['cached']:.2f} = the epoch ratio at equal FLOP rates; "
        f"reference-style {flops['reference'] / 1e9:.1f} GFLOP ({flops['reference'] / flops['cached']:.2f}x)"
    )
    if args.backbone == "offline":
        print(
            "  (YAMNet runs in onnxruntime, which torch's FLOP counter does not see: its work is missing above)"
        )

    run_steps = 6 if args.quick else steps
    times = dict.fromkeys(methods, 0.0)
    for name, method in methods.items():  # warm-up (not timed)
        step(name, method, order[:bs])
    for b in range(run_steps):
        idx = order[b * bs : (b + 1) * bs]
        for name, method in methods.items():
            t0 = time.perf_counter()
            step(name, method, idx)
            times[name] += time.perf_counter() - t0
    scale = steps / run_steps
    for name, t in times.items():
        print(
            f"{name:12s}: {t / run_steps:.3f} s per step, {t * scale:.1f} s per epoch"
            + ("" if run_steps == steps else f" (from {run_steps} of {steps} steps)")
        )
    if not args.quick:
        trained = config.build_method(backbone, classnames)
        result = Trainer(trained, config).fit(feats, labels, classnames)
        print(f"library Trainer, one cached epoch: {result.seconds:.1f} s")
    print(
        f"reference-style / cached (decoding every step, prompts padded to {REFERENCE_TEXT_LENGTH} tokens; "
        f"not checked): {times['reference'] / times['cached']:.2f}x"
    )
    check.ratio("epoch time re-encoding / cached", times["re-encoding"] / times["cached"], 20, at_least=True)
    per_clip = (times["re-encoding"] - times["cached"]) / (run_steps * bs)
    print(
        f"audio tower per clip in the loop: {per_clip:.3f} s; text-tower step (cached): "
        f"{times['cached'] / run_steps:.3f} s; the ratio is bounded by 1 + {bs} x audio / text step"
    )
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
