"""``sept demo``: the offline base-to-new demo on real audio, ending with the story, the report and its time."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the offline demo benchmark (base-to-new, 7 methods, 3 seeds) and write its report",
        description="Base-to-new on real audio with the offline backbone yamnet-minilm: 32 General MIDI "
        "instruments rendered with fluidsynth (cached after the first render; train and test clips play "
        "different notes) and us8k-mini from DATA_ROOT when it is there (train fold 1, test fold 2). Methods "
        "zeroshot, coop, coop+sept, kgcoop, kgcoop+sept, coop+dept, coop+dept+sept with their reference "
        "hyper-parameters; 4 shots; seeds 0 1 2. Finished runs are reused; prints the tables, one sentence "
        "per dataset on the Base-New Tradeoff and SEPT, the path of the HTML report, and its own wall and "
        "CPU time.",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding us8k-mini/ (default $SEPT_DATA_ROOT, else ../shared/data if present)",
    )
    p.add_argument("--run-root", type=Path, default=Path("runs/demo"), help="run folders (default runs/demo)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: one per core)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    p.add_argument(
        "--shots",
        type=int,
        default=None,
        help="training clips per base class (default 4, which fits the demo in a few minutes; "
        "16 is the SEPT paper's protocol, about 4x the training time)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="training and evaluation arithmetic: bf16 autocast or fp32; auto (default): bf16 where the CPU "
        "multiplies bf16 in hardware (AVX512-BF16 or AMX; about 2x faster there), else fp32",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sept.demo.run import default_data_root, run_demo

    data_root = args.data_root if args.data_root is not None else default_data_root()
    return run_demo(
        data_root,
        args.run_root,
        workers=args.workers,
        seeds=args.seeds,
        shots=args.shots,
        precision=args.precision,
    )
