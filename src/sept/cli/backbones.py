"""``sept backbones``: list the registered backbones."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list the registered backbones")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sept.backbones.registry import backbone_description, list_backbones

    for name in list_backbones():
        print(f"{name:30s} {backbone_description(name)}")
    return 0
