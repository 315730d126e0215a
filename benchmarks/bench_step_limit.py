"""The cached training step against the work it cannot skip: the bare text-tower forward + backward.

For each host (coop, cocoop, kgcoop, coop+dept, palm), with and without SEPT, one training step
on cached features (``training_loss`` + backward + optimiser step, under autocast as the Trainer
runs it) is timed against the bare text tower (forward and a backward into its input
embeddings) on **the same token batch**: every call the step makes with gradients to a text-tower
entry point (``encode_text_embeds_raw``, which the learners call, or ``encode_text_embeds``) is
recorded (entry point, embeddings [R, L, E], mask [R, L]) and replayed by the reference through
the same entry point right after it, so the two sides alternate step by step (A, B, A, B ...) and
background load hits both alike. The ratio is the median over rounds of each round's
median(step) / median(bare).

Setting: the base-to-new defaults of each method (CoOp 4 context vectors, batch 32; CoCoOp batch 1)
on 25 base classes (the first 25 sorted ESC50 names; SEPT: the shipped ESC50 neighbours, 10 per
class, the default phrases per step); random normalised audio features.

Printed per method: step and bare times, the ratio (target <= 1.15x), the work per step counted by
``torch.utils.flop_counter`` and the FLOP rate each side reaches, next to the rate of a dense
matmul of the text tower's feed-forward shape ([tokens, E] x [E, 4E]) on this device. A method
without a text-tower pass per step (PALM: frozen class-name features) has no bare side: its step
time is printed, no ratio; any other host whose step records no text-tower call is a MISS (the
recorder missed the step's entry point, so there is nothing to check). A method over the target is profiled (``torch.profiler``, ``--profile``
for every method) and its top operators printed.

    python benchmarks/bench_step_limit.py [--backbone clap|offline|NAME] [--methods coop kgcoop ...]
        [--device cuda] [--precision bf16] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import benchlib

if TYPE_CHECKING:
    import torch

HOSTS = ("coop", "cocoop", "kgcoop", "coop+dept", "palm")
TARGET = 1.15
NUM_CLASSES = 25
NUM_NEIGHBORS = 10


def methods_of(hosts: list[str]) -> list[str]:
    return [m for h in hosts for m in (h, f"{h}+sept")]


def base_classes() -> list[str]:
    import json

    path = benchlib.REPO / "src" / "sept" / "resources" / "neighbors" / "ESC50.json"
    return sorted(json.loads(path.read_text(encoding="utf-8"))["classes"])[:NUM_CLASSES]


#: the backbone's text-tower entry points a step may call with gradients (learners call the raw
#: one; on some backbones each is implemented through the other)
TEXT_TOWER_ENTRY_POINTS = ("encode_text_embeds", "encode_text_embeds_raw")
#: hosts whose step has no text-tower pass with a gradient (PALM: frozen class-name features)
FROZEN_TEXT_HOSTS = frozenset({"palm"})


class TowerCall(NamedTuple):
    """One text-tower call of a step: the entry point, embeddings [R, L, E] and mask [R, L]."""

    entry: str
    embeds: torch.Tensor
    mask: torch.Tensor


def host_of(method_name: str) -> str:
    """``coop+dept+sept`` -> ``coop+dept`` (the host without SEPT)."""
    return method_name.removesuffix("+sept")


def trains_through_text_tower(method_name: str) -> bool:
    """Whether the host's step runs the text tower with gradients (every host but PALM)."""
    return host_of(method_name) not in FROZEN_TEXT_HOSTS


class TextTowerRecorder:
    """Wraps every text-tower entry point of ``backbone`` (``TEXT_TOWER_ENTRY_POINTS``): while on,
    records each outermost call made with gradients enabled (entry point, detached copies of its
    inputs). A call one entry point makes to the other (``encode_text_embeds`` normalising
    ``encode_text_embeds_raw``, or the base class's raw default calling the normalised one) is
    part of the outer call and not recorded again; calls under inference mode (frozen features)
    are not the step's and not recorded."""

    def __init__(self, backbone) -> None:
        self.backbone = backbone
        self.calls: list[TowerCall] = []
        self._depth = 0

    def _wrap(self, entry: str, inner: Callable) -> Callable:
        import torch

        def wrapper(embeds, mask):
            if self._depth == 0 and torch.is_grad_enabled():
                self.calls.append(TowerCall(entry, embeds.detach().clone(), mask.clone()))
            self._depth += 1
            try:
                return inner(embeds, mask)
            finally:
                self._depth -= 1

        return wrapper

    def __enter__(self) -> TextTowerRecorder:
        self.calls = []
        self._depth = 0
        for entry in TEXT_TOWER_ENTRY_POINTS:  # instance attributes shadow the methods
            setattr(self.backbone, entry, self._wrap(entry, getattr(self.backbone, entry)))
        return self

    def __exit__(self, *exc) -> None:
        for entry in TEXT_TOWER_ENTRY_POINTS:
            delattr(self.backbone, entry)


def build_step(backbone, method_name: str, precision: str) -> tuple[Callable[[], None], object]:
    """(one training step on a fixed random batch, the composed method)."""
    import torch

    from sept.training.config import resolve_config
    from sept.training.trainer import autocast, backward_and_step, build_optimizer

    overrides = []
    if "sept" in method_name:
        overrides += ["sept.neighbors=ESC50", f"sept.num_neighbors={NUM_NEIGHBORS}"]
    classes = base_classes()
    config = resolve_config(method_name, "base2new", overrides=overrides)
    method = config.build_method(backbone, classes)
    device = backbone.device
    gen = torch.Generator().manual_seed(0)
    batch = config.optim.batch_size
    feats = torch.nn.functional.normalize(torch.randn(batch, backbone.embed_dim, generator=gen), dim=-1)
    labels = torch.randint(0, len(classes), (batch,), generator=gen)
    feats, labels = feats.to(device), labels.to(device)
    optimizer = build_optimizer(method, config.optim)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and precision == "fp16" else None
    method.train()

    def step() -> None:
        with autocast(precision, device):
            loss, _ = method.training_loss(feats, labels, classes, generator=gen)
        backward_and_step(loss, optimizer, scaler)
        sync(device)

    return step, method


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_fn(backbone, calls: list[TowerCall], precision: str) -> Callable[[], None]:
    """The text tower alone on recorded calls, each through its own entry point: forward, then
    backward into the embeddings."""
    import torch

    from sept.training.trainer import autocast

    device = backbone.device

    def run() -> None:
        outs = []
        leaves = []
        with autocast(precision, device):
            for entry, embeds, mask in calls:
                x = embeds.requires_grad_(True) if not embeds.requires_grad else embeds
                leaves.append(x)
                outs.append(getattr(backbone, entry)(x, mask))
        torch.stack([o.float().sum() for o in outs]).sum().backward()
        for x in leaves:
            x.grad = None
        sync(device)

    return run


def count_flops(fn: Callable[[], None]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_rate(tokens: int, width: int, device, precision: str, repeat: int = 5) -> float:
    """FLOP/s of a dense [tokens, E] x [E, 4E] product (the feed-forward's shape) on ``device``."""
    import torch

    from sept.training.trainer import autocast_dtype

    dtype = autocast_dtype(precision, device) or torch.float32
    a = torch.randn(max(1, tokens), width, device=device, dtype=dtype)
    b = torch.randn(width, 4 * width, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps = max(3, min(200, int(2e9 / (2 * a.shape[0] * width * 4 * width))))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        times.append((time.perf_counter() - t0) / reps)
    return 2.0 * a.shape[0] * width * 4 * width / statistics.median(times)


def profile(step: Callable[[], None], name: str, device, rows: int = 12) -> None:
    """Print the top operators (self time) of 3 steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(3):
            step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"profile of 3 steps of {name} (top {rows} operators by self time):")
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=40))


def measure(
    backbone, name: str, precision: str, rounds: int, steps: int, check: benchlib.Check, always_profile: bool
) -> dict:
    t0 = time.perf_counter()
    step, _ = build_step(backbone, name, precision)
    device = backbone.device
    recorder = TextTowerRecorder(backbone)
    with recorder:
        step()  # warm-up (and the first recorded batch)
        calls = recorder.calls
    row = {"method": name, "build_s": time.perf_counter() - t0}
    if not calls:
        if trains_through_text_tower(name):
            # the host trains through the text tower: a step without a recorded call means the
            # recorder missed the entry point the step used, and there would be no ratio to check
            check.flag(
                f"{name}: text-tower calls recorded",
                False,
                f"none, but {host_of(name)} trains through the text tower: the step called none of "
                f"{', '.join(TEXT_TOWER_ENTRY_POINTS)} with gradients (a new entry point?); no ratio",
            )
            row.update(step=None, bare=None, ratio=None, flops=None)
            return row
        ts = benchlib.timed(step, repeat=rounds * steps)
        row.update(step=statistics.median(ts), bare=None, ratio=None, flops=count_flops(step))
        print(
            f"{name:18s} step {row['step'] * 1e3:8.2f} ms: no text-tower pass per step (frozen features); "
            f"{row['flops'] / 1e9:.3f} GFLOP"
        )
        return row
    bare_fn(backbone, calls, precision)()  # warm-up
    with recorder:  # count both sides' work on one token batch (SEPT draws other phrases each step)
        step_flops = count_flops(step)
        counted = recorder.calls
    bare_flops = count_flops(bare_fn(backbone, counted, precision))
    ratios, a_all, b_all = [], [], []
    for _ in range(rounds):
        a, b = [], []
        for _ in range(steps):
            with recorder:  # the reference replays exactly this step's token batch
                a += benchlib.timed(step)
                calls = recorder.calls
            b += benchlib.timed(bare_fn(backbone, calls, precision))
        ratios.append(statistics.median(a) / statistics.median(b))
        a_all += a
        b_all += b
    tokens = sum(int(c.mask.shape[0]) * int(c.mask.shape[1]) for c in calls)
    rate = matmul_rate(tokens, int(calls[0].embeds.shape[-1]), device, precision)
    row.update(
        step=statistics.median(a_all),
        bare=statistics.median(b_all),
        ratio=statistics.median(ratios),
        rounds=ratios,
        flops=step_flops,
        bare_flops=bare_flops,
        tokens=tokens,
        shapes=[tuple(c.embeds.shape[:2]) for c in calls],
        entries=sorted({c.entry for c in calls}),
        matmul=rate,
    )
    print(
        f"{name:18s} step {row['step'] * 1e3:8.2f} ms  bare tower {row['bare'] * 1e3:8.2f} ms  "
        f"ratio {row['ratio']:.3f}x (rounds {', '.join(f'{r:.2f}' for r in ratios)})  "
        f"text batch {row['shapes']} = {tokens} tokens via {', '.join(row['entries'])}"
    )
    print(
        f"{'':18s} work: step {step_flops / 1e9:.3f} GFLOP, bare {bare_flops / 1e9:.3f} GFLOP "
        f"({step_flops / max(bare_flops, 1):.3f}x); rate: step {step_flops / row['step'] / 1e9:.1f}, "
        f"bare {bare_flops / row['bare'] / 1e9:.1f}, dense matmul [{tokens}, E] x [E, 4E] "
        f"{rate / 1e9:.1f} GFLOP/s"
    )
    ok = check.ratio(f"{name}: cached step / bare text tower", row["ratio"], TARGET, at_least=False)
    if always_profile or not ok:
        profile(step, name, device)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backbone",
        default="clap",
        help="clap (full-size random CLAP), offline (yamnet-minilm), or any registered backbone "
        "(full-size random weights where its module offers them; see benchlib.backbone_by_name)",
    )
    parser.add_argument(
        "--methods", nargs="+", default=None, help=f"default: {' '.join(methods_of(list(HOSTS)))}"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 8, quick 4)")
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per side per round (default 2, quick 1)"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile every method, not only misses")
    benchlib.add_device_args(parser)
    args = parser.parse_args()
    check = benchlib.Check(f"cached step vs bare text tower ({args.backbone}, precision {args.precision})")
    backbone = benchlib.backbone_by_name(args.backbone, args.device)
    print(f"backbone {backbone.name} ({backbone.identity}) on {backbone.device}")
    rounds = args.rounds or (4 if args.quick else 8)
    steps = args.steps or (1 if args.quick else 2)
    rows = [
        measure(backbone, m, args.precision, rounds, steps, check, args.profile)
        for m in (args.methods or methods_of(list(HOSTS)))
    ]
    print("\n| method | step | bare text tower | ratio | step GFLOP | step GFLOP/s | dense matmul GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["step"] is None:
            print(f"| {r['method']} | (no text-tower call recorded: MISS) | - | - | - | - | - |")
            continue
        if r["ratio"] is None:
            print(
                f"| {r['method']} | {r['step'] * 1e3:.2f} ms | (none) | - | {r['flops'] / 1e9:.3f} | - | - |"
            )
            continue
        print(
            f"| {r['method']} | {r['step'] * 1e3:.1f} ms | {r['bare'] * 1e3:.1f} ms | {r['ratio']:.3f}x | "
            f"{r['flops'] / 1e9:.2f} | {r['flops'] / r['step'] / 1e9:.1f} | {r['matmul'] / 1e9:.1f} |"
        )
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
