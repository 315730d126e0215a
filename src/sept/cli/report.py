"""``sept report RUN_ROOT``: tables (Markdown, CSV, LaTeX), PNG figures and an HTML page of a run root."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="tables, plots and an HTML report of every finished run under a run root",
        description="Collect every finished run under RUN_ROOT; per protocol, dataset, method (variant) and shots: "
        "mean and std over seeds (folds averaged first), the average over datasets (mean of per-dataset values), "
        "host vs host+SEPT with deltas, and one table per ablation family (variants against their reference). "
        "Damaged runs are named and left out. Writes report.md, tables/*.csv, tables/*.tex, figures/*.png and report.html "
        "into --out (default RUN_ROOT/report) and prints the Markdown tables.",
    )
    p.add_argument("run_root", type=Path, help="folder of run folders (as given to sept run / sept bench)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_ROOT/report)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument(
        "--no-structure",
        action="store_true",
        help="skip the class-neighbour heat maps and projections (drawn from the features the runs saved)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sept.report.build import build_report

    report = build_report(args.run_root, args.out, plots=not args.no_plots, geometry=not args.no_structure)
    if not getattr(args, "quiet", 0):  # -q: only the path of the HTML report
        for table in report.tables:
            print(table.to_markdown())
        print(f"{report.runs} runs; {len(report.figures)} figures; tables in {report.out_dir / 'tables'}")
    print(f"HTML report: {report.html}")
    return 0
