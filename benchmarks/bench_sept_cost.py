"""SEPT's cost: training step time, inference time and parameters of coop+sept vs coop.

Setting (issue 7): 25 base classes (the first 25 ESC50 class names, sorted) with 10 neighbour
phrases each (the shipped ESC50 set, first 10 per class), the base-to-new defaults (4 context
vectors, batch 32), random normalised audio features (the audio tower is not part of a step).

Measured side by side, interleaved round by round so that background load hits all alike:

- step time (training_loss + backward + SGD step) of coop, coop+sept at the default SEPT settings
  (target <= 1.5x coop) and coop+sept with ``sept.per_step=0`` (every neighbour every step, the
  exact loss; reported, no target);
- inference (``predict_logits`` on 10,000 clips over the 25 base and the 25 new classes) and learned
  parameters of coop+sept vs coop (target: identical parameters, identical logits for identical
  parameters, time ratio 1.00 within 10 % timing noise).

``--accuracy`` also runs ``sept run --protocol base2new --method coop+sept`` on us8k-mini fold 2 with
the default and with ``--set sept.per_step=0`` (seeds 0 1 2, offline backbone) and checks that
Base / New / H of the default are within noise of the exact loss.

    python benchmarks/bench_sept_cost.py [--backbone clap|offline] [--quick] [--accuracy]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

NUM_CLASSES = 25
NUM_NEIGHBORS = 10
N_EVAL = 10_000
VARIANTS = {
    "coop": ("coop", []),
    "coop+sept": ("coop+sept", []),
    "coop+sept full": ("coop+sept", ["sept.per_step=0"]),
}


def esc50_classes() -> tuple[list[str], list[str]]:
    """(first 25 sorted ESC50 class names = base, the other 25 = new)."""
    path = benchlib.REPO / "src" / "sept" / "resources" / "neighbors" / "ESC50.json"
    names = sorted(json.loads(path.read_text(encoding="utf-8"))["classes"])
    return names[:NUM_CLASSES], names[NUM_CLASSES:]


def build(backbone, base: list[str], method: str, extra: list[str]):  # -> (ComposedMethod, RunConfig)
    from sept.training.config import resolve_config

    overrides = list(extra)
    if "sept" in method:
        overrides += ["sept.neighbors=ESC50", f"sept.num_neighbors={NUM_NEIGHBORS}"]
    config = resolve_config(method, "base2new", overrides=overrides)
    return config.build_method(backbone, base), config


def step_fn(method, config, dim: int, num_classes: int, precision: str = "auto"):
    """A closure running one training step on a fixed random batch (autocast as the Trainer does)."""
    import torch

    from sept.training.trainer import autocast, backward_and_step, build_optimizer

    device = method.backbone.device
    gen = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(config.optim.batch_size, dim, generator=gen), dim=-1)
    labels = torch.randint(0, num_classes, (config.optim.batch_size,), generator=gen)
    feats, labels = feats.to(device), labels.to(device)
    optimizer = build_optimizer(method, config.optim)
    classnames = list(method.train_classnames)
    method.train()

    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and precision == "fp16" else None

    def step() -> None:
        with autocast(precision, device):
            loss, _ = method.training_loss(feats, labels, classnames, generator=gen)
        backward_and_step(loss, optimizer, scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def measure_steps(
    backbone, check: benchlib.Check, rounds: int, steps: int, precision: str, per_step: int | None
) -> None:
    base, _ = esc50_classes()
    methods, fns = {}, {}
    for name, (method, extra) in VARIANTS.items():
        if name == "coop+sept" and per_step is not None:
            extra = [*extra, f"sept.per_step={per_step}"]
        t0 = time.perf_counter()
        methods[name], config = build(backbone, base, method, extra)
        fns[name] = step_fn(methods[name], config, backbone.embed_dim, len(base), precision)
        print(f"built {name} in {time.perf_counter() - t0:.1f} s")
    sept = methods["coop+sept"].regularizers["sept"]
    print(
        f"{len(base)} classes, {len(sept.phrases)} neighbour phrases; default: {sept.pairs_per_step} "
        f"phrases per step, full: {methods['coop+sept full'].regularizers['sept'].pairs_per_step}"
    )
    for fn in fns.values():  # warm-up
        fn()
    # Steps alternate (coop, coop+sept, coop, coop+sept, ..., then one full step) and each round
    # gives its own ratios, so a change of background load between rounds cancels out.
    times: dict[str, list[float]] = {name: [] for name in fns}
    ratios: dict[str, list[float]] = {"coop+sept": [], "coop+sept full": []}
    for _ in range(rounds):
        got: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(steps):
            for name in ("coop", "coop+sept"):
                got[name] += benchlib.timed(fns[name])
        got["coop+sept full"] += benchlib.timed(fns["coop+sept full"])
        for name in got:
            times[name] += got[name]
        for name in ratios:
            ratios[name].append(statistics.median(got[name]) / statistics.median(got["coop"]))
    for name, ts in times.items():
        print(
            f"step {name:15s}: median {statistics.median(ts):.3f} s, min {min(ts):.3f} s over {len(ts)} steps"
        )
    for name, rs in ratios.items():
        print(f"ratio {name} / coop per round: {', '.join(f'{r:.2f}' for r in rs)}")
    check.ratio(
        "step time coop+sept / coop (default SEPT), median over rounds",
        statistics.median(ratios["coop+sept"]),
        1.5,
        at_least=False,
    )
    print(
        f"RESULT step time coop+sept full (per_step=0) / coop: "
        f"{statistics.median(ratios['coop+sept full']):.2f}x (the exact loss; no target)"
    )
    measure_inference(backbone, methods["coop"], methods["coop+sept"], check, rounds, precision)


def measure_inference(backbone, coop, sept, check: benchlib.Check, rounds: int, precision: str) -> None:
    import torch

    from sept.training.trainer import predict_logits

    base, new = esc50_classes()
    a, b = coop.learned_state(), sept.learned_state()
    same = {k: tuple(v.shape) for k, v in a.items()} == {k: tuple(v.shape) for k, v in b.items()}
    n_a, n_b = sum(v.numel() for v in a.values()), sum(v.numel() for v in b.values())
    check.flag(
        "parameters coop+sept vs coop",
        same and n_a == n_b,
        f"{n_b} vs {n_a} learned values, names and shapes {'identical' if same else 'DIFFER'} "
        f"(ratio {n_b / n_a:.2f}x)",
    )
    with torch.no_grad():
        for name, p in sept.named_parameters():
            if p.requires_grad:
                p.copy_(a[name])  # same parameters: the logits must then be the same
    gen = torch.Generator().manual_seed(1)
    feats = torch.nn.functional.normalize(torch.randn(N_EVAL, backbone.embed_dim, generator=gen), dim=-1)
    equal = all(
        torch.equal(
            predict_logits(coop, feats, c, precision=precision),
            predict_logits(sept, feats, c, precision=precision),
        )
        for c in (base, new)
    )
    check.flag(
        "inference logits coop+sept vs coop",
        equal,
        "identical for identical parameters" if equal else "DIFFER for identical parameters",
    )
    times: dict[str, list[float]] = {"coop": [], "coop+sept": []}
    pair = [("coop", coop), ("coop+sept", sept)]
    for r in range(max(10, 3 * rounds)):
        for name, m in pair if r % 2 == 0 else pair[::-1]:  # alternate the order: no position bias
            times[name] += benchlib.timed(
                lambda m=m: [predict_logits(m, feats, c, precision=precision) for c in (base, new)]
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"inference on {N_EVAL:,} clips x (25 base + 25 new classes): coop {med['coop']:.3f} s, "
        f"coop+sept {med['coop+sept']:.3f} s (median of {len(times['coop'])})"
    )
    ratio = med["coop+sept"] / med["coop"]
    check.flag(
        "inference time coop+sept / coop",
        0.9 <= ratio <= 1.1,
        f"{ratio:.3f}x (target 1.00x; 0.9-1.1 allowed for timing noise)",
    )


# ---- accuracy of the cheaper default vs the exact loss ------------------------------------------------
def run_accuracy(check: benchlib.Check, seeds: list[int], work: Path) -> None:
    data = benchlib.DATA / "us8k-mini"
    variants = {"default": [], "per_step=0": ["--set", "sept.per_step=0"]}
    results: dict[str, list[dict[str, float]]] = {}
    for name, extra in variants.items():
        root = work / name.replace("=", "")
        cmd = [
            sys.executable, "-m", "sept", "run", "--protocol", "base2new", "--method", "coop+sept",
            "--dataset", "us8k-mini", "--root", str(data), "--fold", "2", "--run-root", str(root),
            "--seeds", *map(str, seeds), "--no-progress", *extra,
        ]  # fmt: skip
        print("$", " ".join(cmd[1:]))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"sept run failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
        took = time.perf_counter() - t0
        files = sorted(root.glob("base2new/*/fold-2/*/shots-16/seed-*/results.json"))
        results[name] = [json.loads(f.read_text())["summary"] for f in files]
        print(f"{name}: {len(files)} runs in {took:.0f} s (features cached after the first)")
    print(f"{'':12s} {'Base':>14s} {'New':>14s} {'H':>14s}   (mean +- sd over seeds {seeds})")
    for name, rows in results.items():
        cells = []
        for key in ("base", "new", "h"):
            xs = [r[key] for r in rows]  # percent
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            cells.append(f"{statistics.mean(xs):6.2f} +- {sd:5.2f}")
        print(f"{name:12s} " + " ".join(f"{c:>14s}" for c in cells))
    for key in ("base", "new", "h"):
        a = [r[key] for r in results["default"]]
        b = [r[key] for r in results["per_step=0"]]
        diff = statistics.mean(a) - statistics.mean(b)
        n = len(a)
        se = math.sqrt((statistics.variance(a) + statistics.variance(b)) / n) if n > 1 else 0.0
        tol = max(1.0, 2 * se)
        check.flag(
            f"accuracy {key.upper() if key == 'h' else key.title()} default vs per_step=0",
            abs(diff) <= tol,
            f"difference {diff:+.2f} points (noise: 2 x s.e. = {2 * se:.2f}, at least 1.00)",
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", choices=["clap", "offline"], default="clap")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 6, quick 3)")
    parser.add_argument("--steps", type=int, default=3, help="steps per method per round (default 3)")
    parser.add_argument("--accuracy", action="store_true", help="also run the us8k-mini accuracy check")
    parser.add_argument("--only-accuracy", action="store_true", help="only the accuracy check")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--per-step", type=int, default=None, help="measure this sept.per_step instead of the default"
    )
    benchlib.add_device_args(parser)
    args = parser.parse_args()
    check = benchlib.Check(f"SEPT cost ({args.backbone} backbone, precision {args.precision})")
    if not args.only_accuracy:
        backbone = benchlib.backbone_by_name(args.backbone, args.device)
        rounds = args.rounds or (3 if args.quick else 6)
        measure_steps(backbone, check, rounds, args.steps, args.precision, args.per_step)
    if args.accuracy or args.only_accuracy:
        with tempfile.TemporaryDirectory(prefix="sept-bench-acc-") as tmp:
            run_accuracy(check, args.seeds, Path(tmp))
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
