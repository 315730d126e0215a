"""``sept bench CONFIG``: run a YAML grid of benchmark cells, resumable and in parallel."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark grid (datasets x folds x methods x shots x seeds) from a YAML file",
        description="Expand the grid of CONFIG (see configs/*.yaml and sept.bench.grid) into cells, one run folder "
        "each; skip finished cells, resume interrupted ones, and run the rest in parallel (local processes, or "
        "Ray). Each cell logs to <run folder>/cell.log; a failed cell is reported at the end without stopping "
        "the sweep (exit status 1). Ends with the results table of the grid.",
    )
    p.add_argument("config", type=Path, help="grid YAML file")
    p.add_argument(
        "--run-root", type=Path, default=None, help="folder of run folders (default: the grid's run_root)"
    )
    p.add_argument(
        "--executor",
        choices=["local", "serial", "ray"],
        default=None,
        help="where cells run (default: the grid's, else local)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel cells (local: processes; ray: CPUs of a local Ray)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default 1)")
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster address, e.g. auto or ray://head:10001 (implies --executor ray)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="feature cache (default: the grid's, else $SEPT_CACHE_DIR)",
    )
    p.add_argument(
        "--on-bad-audio",
        choices=["skip", "fail"],
        default=None,
        help="skip undecodable files (counted in the results) or fail the cell (default: the grid's, else skip)",
    )
    p.add_argument("--force", action="store_true", help="train finished cells again")
    p.add_argument(
        "--dry-run", action="store_true", help="list the cells and which are finished; run nothing"
    )
    p.add_argument("--report", action="store_true", help="also write the HTML report of the run root")
    p.add_argument(
        "--estimate",
        action="store_true",
        help="run nothing: time a few training steps and the evaluation of each method on this device and "
        "print the projected wall time of the whole grid (per method and in total)",
    )
    p.add_argument(
        "--estimate-steps", type=int, default=3, help="training steps timed per method (default 3)"
    )
    p.add_argument(
        "--backbone-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option of the grid's backbone, e.g. device=cpu or model=/path/to/clap (repeatable)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="an option for every method that has it, after the grid's own overrides, e.g. precision=bf16 "
        "(repeatable; as the grid's `overrides`)",
    )
    p.set_defaults(func=run)


def _grid_from_args(args: argparse.Namespace):  # -> GridSpec
    from dataclasses import replace

    from sept.bench.grid import load_grid

    grid = load_grid(args.config)
    executor = grid.executor
    kind = "ray" if args.address else args.executor
    executor = replace(
        executor,
        **{
            k: v
            for k, v in {
                "kind": kind,
                "workers": args.workers,
                "threads": args.threads,
                "address": args.address,
            }.items()
            if v is not None
        },
    )
    options = dict(grid.backbone_options)
    for text in args.backbone_option:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            from sept.errors import ConfigError

            raise ConfigError(f"--backbone-option {text!r}: expected KEY=VALUE")
        options[key.strip()] = value
    return grid.with_changes(
        backbone_options=options if args.backbone_option else None,
        run_root=str(args.run_root) if args.run_root else None,
        cache_dir=str(args.cache_dir) if args.cache_dir else None,
        on_bad_audio=args.on_bad_audio,
        executor=executor,
        overrides=(*grid.overrides, *args.overrides) if args.overrides else None,
    )


def run(args: argparse.Namespace) -> int:
    from sept.bench.sweep import plan_sweep, run_sweep
    from sept.report.aggregate import group_runs
    from sept.report.collect import collect
    from sept.report.tables import build_tables
    from sept.runs.layout import results_path

    grid = _grid_from_args(args)
    if args.estimate:
        from sept.bench.estimate import estimate_grid

        if args.estimate_steps < 1:
            from sept.errors import ConfigError

            raise ConfigError(f"--estimate-steps must be >= 1, got {args.estimate_steps}")
        estimate = estimate_grid(grid, steps=args.estimate_steps, workers=args.workers)
        print(f"{grid.name}: projected on {_device_line()}")
        for line in estimate.lines():
            print(line)
        return 0
    if args.dry_run:
        plan, cells, pending = plan_sweep(grid, force=args.force)
        for cell in cells:
            print(f"{'to run ' if cell in pending else 'finished'}  {cell.id}")
        print(
            f"{len(cells)} cells: {len(cells) - len(pending)} finished, {len(pending)} to run (run root {plan.run_root})"
        )
        return 0
    result = run_sweep(grid, force=args.force, workers=args.workers)
    found = [p for p in map(results_path, result.run_dirs()) if p.exists()]
    if found:
        records = collect(found)
        one_dataset = len({r.dataset for r in records}) == 1
        print()
        for table in build_tables(group_runs(records), records):
            if not (one_dataset and table.key.endswith("-average")):  # the same numbers as the dataset's
                print(table.to_markdown())
    if args.report:
        from sept.report.build import build_report

        report = build_report(result.plan.run_root)
        print(f"report: {report.html}")
    ran = len(result.ran)
    print(
        f"{grid.name}: {ran} cell(s) ran, {len(result.cells) - ran - len(result.failed)} were finished already, "
        f"{len(result.failed)} failed ({result.seconds:.1f} s)"
    )
    for o in result.failed:
        print(f"  failed: {o.cell}: {o.error}" + (f" (log: {o.log})" if o.log else ""))
    return 1 if result.failed else 0


def _device_line() -> str:
    import os

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"the CPU ({os.cpu_count()} cores)"
