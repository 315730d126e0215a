"""``sept backbones``: list the registered backbones; ``sept backbones convert``: import a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list the registered backbones, or convert a reference checkpoint")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="backbones_command", metavar="ACTION")
    convert = actions.add_parser(
        "convert",
        help="convert a Pengi / MS-CLAP .pth checkpoint into a folder that create_backbone loads",
        description=(
            "Read a reference checkpoint with torch.load(weights_only=True) (anything that needs more is "
            "refused), keep its audio- and text-encoder tensors and write model.safetensors + "
            "sept_backbone.json into --out. Then: --backbone FAMILY --backbone-opt model=OUT."
        ),
    )
    convert.add_argument(
        "family", choices=["pengi", "msclap-2022", "msclap-2023"], help="the checkpoint's model family"
    )
    convert.add_argument(
        "checkpoint", type=Path, help="the .pth file (Pengi: base.pth; MS-CLAP: CLAP_weights_20xx.pth)"
    )
    convert.add_argument("--out", type=Path, required=True, help="folder to write")
    convert.add_argument(
        "--text-model",
        default=None,
        help="hub id or local folder of the text tokenizer + config to record (default: the family's)",
    )
    convert.set_defaults(func=run_convert)


def run(args: argparse.Namespace) -> int:
    from sept.backbones.registry import backbone_description, list_backbones

    for name in list_backbones():
        print(f"{name:30s} {backbone_description(name)}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from sept.backbones.convert import convert_checkpoint

    out = convert_checkpoint(args.family, args.checkpoint, args.out, text_model=args.text_model)
    print(f"wrote {out} (load it with --backbone {args.family} --backbone-opt model={out})")
    return 0
