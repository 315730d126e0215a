"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from sept.backbones.registry import DEFAULT_BACKBONE, list_backbones
from sept.errors import SeptError
from sept.utils.yaml_load import safe_load


def add_backbone_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backbone",
        default=DEFAULT_BACKBONE,
        help=f"backbone name (default {DEFAULT_BACKBONE}; `sept backbones` lists them: {', '.join(list_backbones())})",
    )
    parser.add_argument(
        "--backbone-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backbone option, e.g. model=/path/to/clap or device=cuda (repeatable; values parsed as YAML)",
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse then names the option in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_feature_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="feature cache (default $SEPT_CACHE_DIR or ~/.cache/sept)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="compute features without reading or writing the cache"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, help="clips per audio-tower batch (default 32)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="decoding threads (default: one per core)"
    )
    parser.add_argument(
        "--on-bad-audio",
        choices=["skip", "fail"],
        default="skip",
        help="skip undecodable files (counted in the results) or stop at the first one (default skip)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def add_held_out_args(parser: argparse.ArgumentParser) -> None:
    """``--test-fraction F --split-seed S``: hold out a stratified test split of a user's clips."""
    parser.add_argument(
        "--test-fraction",
        type=fraction,
        default=None,
        metavar="F",
        help="for your own data without a test list: hold out a stratified fraction F of each class for "
        "test, drawn once into RUN_ROOT/manifests/<dataset>/test-split-f<F>-seed<S>.json and reused by every "
        "method",
    )
    parser.add_argument(
        "--split-seed", type=int, default=0, metavar="S", help="seed of the --test-fraction split (default 0)"
    )


def held_out_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`sept.data.registry.open_dataset` for ``--test-fraction``."""
    if args.test_fraction is None:
        return {}
    return {
        "test_fraction": args.test_fraction,
        "split_seed": args.split_seed,
        "manifest_dir": Path(args.run_root) / "manifests",
    }


def parse_key_values(items: list[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SeptError(f"{what} {item!r} is not KEY=VALUE")
        try:
            out[key.strip()] = safe_load(value) if value.strip() else ""
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SeptError(f"{what} {item!r}: the value is not a plain YAML value ({first})") from None
    return out


def backbone_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--backbone-opt KEY=VALUE`` items as a dict; an option ``--backbone`` does not take is refused
    naming the item and listing the valid options."""
    from sept.backbones.registry import check_backbone_options

    options = parse_key_values(args.backbone_opt, "--backbone-opt")
    for item in args.backbone_opt:
        key = item.partition("=")[0].strip()
        check_backbone_options(args.backbone, {key: options[key]}, f"--backbone-opt {item!r}")
    return options


def backbone_from_args(args: argparse.Namespace):  # -> Backbone (import kept lazy)
    from sept.backbones.registry import create_backbone

    return create_backbone(args.backbone, **backbone_options_from_args(args))


def extract_from_args(backbone, clips, args: argparse.Namespace, keep_features: bool = True):  # -> FeatureSet
    from sept.features.extract import extract_features

    return extract_features(
        backbone,
        clips,
        args.cache_dir,
        use_cache=not args.no_cache,
        batch_size=args.batch_size,
        workers=args.workers,
        on_bad_audio=args.on_bad_audio,
        progress=not args.no_progress,
        keep_features=keep_features,
    )
