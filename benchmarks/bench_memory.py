"""Peak memory (RSS) of ``sept embed`` and of a training run, on 1,000 vs 10,000 clips.

Every measurement is a fresh child process, on N distinct real clips (us8k-mini recordings plus
gain-changed copies, so every file is a cache miss):

- ``sept embed --data <CSV> --no-cache --no-progress``: the command itself, 3 runs per size (the
  median is used); its peak RSS comes from ``wait4`` (``ru_maxrss``). That peak includes loading
  the model, which moves by 5 to 40 MiB from one process to the next on this machine (allocator
  and thread-arena effects), as much as the 10,000 clips' features weigh, hence the median and
  the next, steadier figure;
- extraction: a child that does what ``sept embed`` does (load the backbone and the clip table,
  :func:`sept.features.extract_features` into a fresh cache), streaming (``keep_features=False``:
  only the cache is filled, all ``sept embed`` needs; 3 runs per size, the median run is used) and once keeping
  the features in memory (as ``sept run`` needs them), and records the RSS just before the
  extraction (after ``gc.collect()`` and ``malloc_trim(0)``, which make it steady) and the peak
  during it (``VmHWM``, reset through ``/proc/self/clear_refs``); also the Python and numpy
  allocations during it (``tracemalloc``: what the pipeline holds, without the allocator's slack);
- training: a child that loads the N clips' features from that cache (all hits) and trains CoOp for
  two epochs on all of them (base-to-new defaults, batch 32) with the library's Trainer, measured
  the same way (RSS before ``fit``, peak during it).

Target: extraction streams: from 1,000 to 10,000 clips, the peak RSS of ``sept embed`` (median)
and the streaming extraction's peak above the process's RSS before it each grow by less than the
features of the 10,000 clips (N x D float32).
Training holds the features it trains on; its growth is reported, not checked.

    python benchmarks/bench_memory.py [--backbone offline|clap] [--sizes 1000 10000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import tracemalloc
from pathlib import Path

import benchlib


def backbone_args(name: str) -> list[str]:
    if name == "clap":
        return ["--backbone", "clap", "--backbone-opt", f"model={benchlib.full_clap_folder()}"]
    return []  # the default, offline backbone


def embed_child(csv: str, cache_dir: str, backbone_name: str, keep: bool) -> int:
    """What ``sept embed`` runs, with the RSS before and the peak during the extraction."""
    import json

    from sept.data.clips import load_clips
    from sept.features.extract import extract_features

    backbone = benchlib.backbone_by_name(backbone_name)
    clips = load_clips(csv)
    before = benchlib.reset_peak_rss()
    tracemalloc.start()
    fs = extract_features(backbone, clips, cache_dir, progress=False, keep_features=keep)
    peak = benchlib.status_mib("VmHWM")
    held, traced_peak = (x / 2**20 for x in tracemalloc.get_traced_memory())
    tracemalloc.stop()
    info = {"before": before, "peak": peak, "computed": fs.computed, "hits": fs.cache_hits}
    print(json.dumps({**info, "traced_held": held, "traced_peak": traced_peak}))
    return 0


def train_child(csv: str, cache_dir: str, backbone_name: str) -> int:
    """Load the clips' cached features and train CoOp for two epochs on all of them."""
    import json
    import time

    import torch

    from sept.data.clips import class_names, load_clips
    from sept.features.extract import extract_features
    from sept.training.config import resolve_config
    from sept.training.trainer import Trainer

    backbone = benchlib.backbone_by_name(backbone_name)
    clips = load_clips(csv)
    fs = extract_features(backbone, clips, cache_dir, progress=False)
    if fs.cache_hits != len(clips):
        raise SystemExit(f"expected every feature from the cache, got {fs.cache_hits} of {len(clips)}")
    names = class_names(fs.clips)
    labels = torch.tensor([names.index(c.classname) for c in fs.clips])
    config = resolve_config("coop", "base2new", overrides=["optim.epochs=2"])
    method = config.build_method(backbone, names)
    before = benchlib.reset_peak_rss()
    t0 = time.perf_counter()
    Trainer(method, config).fit(fs.features, labels, names)
    took = time.perf_counter() - t0
    print(json.dumps({"before": before, "peak": benchlib.status_mib("VmHWM"), "seconds": took}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", choices=["offline", "clap"], default="offline")
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000], metavar=("SMALL", "LARGE"))
    parser.add_argument(
        "--quick", action="store_true", help="1,000 vs 3,000 clips, one sept embed and one streaming run each"
    )
    parser.add_argument(
        "--cli-runs",
        type=int,
        default=3,
        help="sept embed and streaming-extraction runs per size; their median peak is used (default 3)",
    )
    parser.add_argument("--train-child", nargs=2, metavar=("CSV", "CACHE"), help=argparse.SUPPRESS)
    parser.add_argument("--embed-child", nargs=2, metavar=("CSV", "CACHE"), help=argparse.SUPPRESS)
    parser.add_argument("--stream-child", nargs=2, metavar=("CSV", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_child:
        return train_child(*args.train_child, args.backbone)
    if args.embed_child:
        return embed_child(*args.embed_child, args.backbone, keep=True)
    if args.stream_child:
        return embed_child(*args.stream_child, args.backbone, keep=False)
    if args.quick:
        args.sizes, args.cli_runs = [1000, 3000], 1

    check = benchlib.Check(
        f"peak memory, {args.sizes[0]:,} vs {args.sizes[1]:,} clips ({args.backbone} backbone)"
    )
    backbone = benchlib.backbone_by_name(args.backbone)
    dim = backbone.embed_dim
    del backbone
    rows: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="sept-bench-mem-") as tmp:
        for n in args.sizes:
            csv = str(benchlib.distinct_clips(n))
            cache = str(Path(tmp) / f"cache-{n}")
            cli = [sys.executable, "-m", "sept", "embed", "--data", csv, "--no-cache", "--no-progress",
                   *backbone_args(args.backbone)]  # fmt: skip
            peaks = []
            for _ in range(args.cli_runs):
                wall, rss, out = benchlib.run_child(cli)
                peaks.append(rss)
                print(
                    f"sept embed {n:>6,} clips: process peak RSS {rss:7.1f} MiB, {wall:6.1f} s "
                    f"| {out.strip().splitlines()[-1]}"
                )
            rows["sept embed", n] = {"process": statistics.median(peaks), "wall": wall}
            for what in ("stream", "embed", "train"):
                runs = []
                # RSS above the start moves by several MiB from run to run (malloc's per-thread
                # arenas): the streaming check uses the median run, as sept embed's does; each
                # streaming run fills a fresh cache (embed fills the one train reads)
                for i in range(args.cli_runs if what == "stream" else 1):
                    cache_of = cache + (f"-stream-{i}" if what == "stream" else "")
                    cmd = [
                        sys.executable,
                        __file__,
                        "--backbone",
                        args.backbone,
                        f"--{what}-child",
                        csv,
                        cache_of,
                    ]
                    wall, rss, out = benchlib.run_child(cmd)
                    info = json.loads(out.strip().splitlines()[-1])
                    if what != "train" and info["computed"] != n:
                        raise SystemExit(f"{what}: expected {n} computed features, got {info['computed']}")
                    runs.append({"process": rss, "wall": wall, **info})
                    print(
                        f"{what:10s} {n:>6,} clips: process peak RSS {rss:7.1f} MiB, RSS before {what} "
                        f"{info['before']:7.1f} MiB, peak during it {info['peak']:7.1f} MiB "
                        f"(+{info['peak'] - info['before']:.1f}), {wall:6.1f} s"
                    )
                runs.sort(key=lambda r: r["peak"] - r["before"])
                rows[what, n] = runs[len(runs) // 2]
    small, large = args.sizes
    feats_mib = large * dim * 4 / 2**20
    print(f"features of {large:,} clips: {large:,} x {dim} float32 = {feats_mib:.1f} MiB")
    for what in ("sept embed", "stream", "embed", "train"):
        a, b = rows[what, small], rows[what, large]
        line = (
            f"RESULT {what}: process peak RSS {a['process']:.1f} MiB ({small:,} clips) -> "
            f"{b['process']:.1f} MiB ({large:,} clips)"
        )
        if "peak" in a:
            extra_a, extra_b = a["peak"] - a["before"], b["peak"] - b["before"]
            line += f"; peak above the RSS before it: {extra_a:+.1f} -> {extra_b:+.1f} MiB"
        print(line)
    for what in ("stream", "embed"):
        a, b = rows[what, small], rows[what, large]
        print(
            f"RESULT {what}, Python and numpy allocations (tracemalloc): held after it "
            f"{a['traced_held']:.1f} -> {b['traced_held']:.1f} MiB, peak {a['traced_peak']:.1f} -> "
            f"{b['traced_peak']:.1f} MiB ({b['traced_peak'] - a['traced_peak']:+.1f})"
        )
    a, b = rows["sept embed", small], rows["sept embed", large]
    cli_growth = b["process"] - a["process"]
    print(f"sept embed (median of {args.cli_runs} runs per size) peak growth: {cli_growth:+.1f} MiB")
    check.ratio(
        f"sept embed peak growth / features of {large:,} clips",
        cli_growth / feats_mib,
        1.0,
        at_least=False,
    )
    a, b = rows["stream", small], rows["stream", large]
    growth = (b["peak"] - b["before"]) - (a["peak"] - a["before"])
    print(
        f"streaming extraction (keep_features=False, median of {args.cli_runs} runs per size) peak growth "
        f"{small:,} -> {large:,} clips: {growth:+.1f} MiB"
    )
    check.ratio(
        f"streaming extraction peak growth / features of {large:,} clips",
        growth / feats_mib,
        1.0,
        at_least=False,
    )
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
