"""``sept embed``: compute (or reuse) the cached audio features of a dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sept.cli.common import add_backbone_args, add_feature_args, backbone_from_args, extract_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="compute and cache frozen audio features of a dataset",
        description="Embed every clip of a CSV (path,classname[,fold]) or a folder per class with a backbone's "
        "audio tower. Features are cached per (backbone, settings, file content): a rerun reuses them and an "
        "interrupted run resumes.",
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="CSV of path,classname[,fold] or a folder per class (or train/ and test/ folders of them)",
    )
    p.add_argument(
        "--root", type=Path, default=None, help="folder the CSV paths are relative to (default: the CSV's)"
    )
    add_backbone_args(p)
    add_feature_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sept.data.clips import load_clips

    clips = load_clips(args.data, args.root)
    start = time.perf_counter()
    backbone = backbone_from_args(args)
    fs = extract_from_args(backbone, clips, args, keep_features=False)  # fill the cache, stream
    took = time.perf_counter() - start
    print(
        f"{len(fs.clips)} clips embedded with {backbone.identity} in {took:.1f} s: "
        f"{fs.cache_hits} from cache, {fs.computed} computed, {len(fs.skipped)} skipped"
    )
    for clip, reason in fs.skipped:
        print(f"  skipped {clip.path}: {reason}")
    return 0
