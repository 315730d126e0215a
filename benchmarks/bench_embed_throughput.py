"""Feature-extraction throughput: ``sept embed``'s pipeline vs the bare audio tower.

- ``sept embed``: :func:`sept.features.extract_features` exactly as the command calls it (default
  batch 32 and decoding threads, writing a fresh feature cache): read, hash, decode, resample and
  fit every file in a thread pool, overlapped with the batched audio tower.
- bare audio tower: ``backbone.embed_audio`` on batches of 32 waveforms decoded, resampled and
  fitted beforehand (not timed).

Both run on the same N distinct real clips (us8k-mini recordings plus gain-changed copies, so no
cache entry is shared), chunk by chunk interleaved so that background load hits both alike.
Target: clips/s of ``sept embed`` >= 0.9 x the bare tower's.

    python benchmarks/bench_embed_throughput.py [--backbone clap|offline] [--clips 1000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import benchlib


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", choices=["clap", "offline"], default="clap")
    parser.add_argument("--clips", type=int, default=1000, help="clips to embed (default 1000)")
    parser.add_argument("--chunk", type=int, default=200, help="clips per interleaved chunk (default 200)")
    parser.add_argument("--quick", action="store_true", help="200 clips in chunks of 100")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: the library's)")
    parser.add_argument("--device", default=None, help="clap backbone: cpu or cuda (default: cuda if any)")
    parser.add_argument(
        "--dtype", default=None, help="clap backbone weights: float32 (default), float16 or bfloat16"
    )
    args = parser.parse_args()
    if args.quick:
        args.clips, args.chunk = 200, 100

    import torch

    from sept.audio.io import load_audio
    from sept.data.clips import load_clips
    from sept.features.extract import default_workers, extract_features

    check = benchlib.Check(f"feature extraction throughput ({args.backbone} backbone)")
    clips = load_clips(benchlib.distinct_clips(args.clips))
    if args.dtype and args.backbone == "clap":
        backbone = benchlib.clap_backbone(
            dtype=args.dtype, **({"device": args.device} if args.device else {})
        )
    else:
        backbone = benchlib.backbone_by_name(args.backbone, args.device)
    print(
        f"{len(clips)} clips, batch {args.batch_size}, {args.workers or default_workers()} decoding threads, "
        f"torch {torch.get_num_threads()} threads"
    )
    with torch.inference_mode():  # warm-up
        backbone.embed_audio([backbone.prepare_audio(load_audio(clips[0].path, backbone.sample_rate))] * 2)
    times = {"sept embed": 0.0, "bare tower": 0.0}
    with tempfile.TemporaryDirectory(prefix="sept-bench-cache-") as cache_dir:
        for start in range(0, len(clips), args.chunk):
            part = clips[start : start + args.chunk]
            t0 = time.perf_counter()
            fs = extract_features(
                backbone, part, cache_dir, batch_size=args.batch_size, workers=args.workers, progress=False
            )
            times["sept embed"] += time.perf_counter() - t0
            if fs.computed != len(part):
                raise SystemExit(
                    f"expected {len(part)} computed features, got {fs.computed} ({fs.skipped[:3]})"
                )
            waves = [backbone.prepare_audio(load_audio(c.path, backbone.sample_rate)) for c in part]
            t0 = time.perf_counter()
            with torch.inference_mode():
                for b in range(0, len(waves), args.batch_size):
                    backbone.embed_audio(waves[b : b + args.batch_size]).cpu()  # .cpu(): waits for a GPU
            times["bare tower"] += time.perf_counter() - t0
            del waves
            done = start + len(part)
            print(
                f"  {done}/{len(clips)}: sept embed {done / times['sept embed']:.2f} clips/s, "
                f"bare tower {done / times['bare tower']:.2f} clips/s",
                flush=True,
            )
    rate = {k: len(clips) / v for k, v in times.items()}
    for k, v in rate.items():
        print(f"{k:10s}: {v:.2f} clips/s ({times[k]:.1f} s for {len(clips)} clips)")
    check.ratio(
        "throughput sept embed / bare audio tower",
        rate["sept embed"] / rate["bare tower"],
        0.9,
        at_least=True,
    )
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
