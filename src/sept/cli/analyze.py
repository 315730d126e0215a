"""``sept analyze``: semantic structure of trained runs (Figure 1 heat maps, retention)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sept.errors import SeptError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="class-neighbour heat maps and semantic-structure retention of trained runs",
        description="For each run folder (or every run under a folder), plot the class-to-neighbour cosine "
        "heat maps before and after tuning (the SEPT paper's Figure 1) and print the retention.",
    )
    p.add_argument("runs", type=Path, nargs="+", help="run folders, or folders to search for them")
    p.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: each run folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sept.analysis.heatmap import plot_heatmaps
    from sept.analysis.structure import MATRICES_FILE, load_matrices, summarize
    from sept.runs.layout import PROMPT_FILE
    from sept.runs.store import prompt_problem

    folders = []
    for root in args.runs:
        if not root.exists():
            raise SeptError(f"{str(root)!r} does not exist")
        folders += [p.parent for p in sorted(root.rglob(MATRICES_FILE))]
    if not folders:
        raise SeptError(
            f"no {MATRICES_FILE} under {', '.join(map(str, args.runs))}: runs record it when a neighbour set "
            "covers their classes (sept run with a dataset that has one)"
        )
    damaged = 0
    for folder in folders:
        problem = prompt_problem(folder) if (folder / PROMPT_FILE).exists() else None
        try:
            if problem is not None:
                raise SeptError(problem)
            m = load_matrices(folder)
        except Exception as exc:  # a damaged run: say which and go on with the others
            print(f"{folder}: skipped, damaged: {exc}")
            damaged += 1
            continue
        name = "-".join(folder.parts[-6:]) if args.out else "semantic_structure.png"
        out = (args.out / f"{name}.png") if args.out else folder / name
        title = " / ".join(folder.parts[-5:])
        plot_heatmaps(m, out, title)
        s = summarize(m)
        print(
            f"{folder}: retention {s['retention']:.3f}, own-neighbour cos {s['intra_cos_frozen']:.3f} -> "
            f"{s['intra_cos_tuned']:.3f}, other {s['inter_cos_frozen']:.3f} -> {s['inter_cos_tuned']:.3f}  [{out}]"
        )
    return 1 if damaged else 0
