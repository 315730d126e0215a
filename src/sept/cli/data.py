"""``sept data {list,check,download,sample}``: the benchmark datasets and users' own data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: how many relpaths an issue lists before "... and N more" (all of them are in --json)
MAX_ITEMS = 8


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="list, download, check and sample datasets",
        description="The 11 benchmark datasets (MahiA/<Name> on the Hugging Face Hub), the registered real sets "
        "us8k-mini and fsdd, and your own data (a CSV path,classname[,fold] or a folder per class). A dataset's "
        "folder is --root, else $SEPT_DATA_ROOT/<Name>.",
    )
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    ls = dsub.add_parser("list", help="registered datasets")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)

    ck = dsub.add_parser(
        "check",
        help="validate a dataset (read only)",
        description="Report per fold: clips per class in train and test, missing and undecodable files, paths "
        "escaping the root, duplicates, train/test overlap, classes in test but not train, suspicious folds. "
        "Exit status 1 when errors are found. The data folder is never modified.",
    )
    _add_dataset_args(ck)
    ck.add_argument(
        "--fold", type=int, action="append", default=None, help="check only this fold (repeatable)"
    )
    ck.add_argument(
        "--decode", action="store_true", help="decode every sample (default: read file headers only)"
    )
    ck.add_argument("--workers", type=int, default=None, help="file-checking threads (default: up to 8)")
    ck.add_argument("--json", action="store_true", help="print the full report as JSON")
    ck.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ck.set_defaults(func=run_check)

    dl = dsub.add_parser(
        "download",
        help="download a benchmark dataset from the Hugging Face Hub",
        description="Fetch MahiA/<NAME> (resumable; zipped datasets are unzipped). Rerun to resume.",
    )
    dl.add_argument("name", help="benchmark dataset name (`sept data list`)")
    dl.add_argument(
        "--root", type=Path, default=None, help="the dataset's folder (default $SEPT_DATA_ROOT/<NAME>)"
    )
    dl.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    dl.add_argument("--force", action="store_true", help="verify against the hub again even if complete")
    dl.add_argument("--delete-zips", action="store_true", help="delete each zip once extracted")
    dl.set_defaults(func=run_download)

    sm = dsub.add_parser(
        "sample",
        help="draw (or reuse) a few-shot manifest",
        description="K shots per class of the train split, drawn once per (dataset, fold, K, seed, classes) and "
        "written under RUN_ROOT/manifests/; every method reuses it.",
    )
    _add_dataset_args(sm)
    sm.add_argument("--fold", type=int, default=None, help="fold (default: the dataset's default fold)")
    sm.add_argument("--shots", type=int, default=16, help="clips per class (default 16)")
    sm.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sm.add_argument(
        "--run-root", type=Path, required=True, help="run folder; manifests go to RUN_ROOT/manifests/"
    )
    group = sm.add_mutually_exclusive_group()
    group.add_argument(
        "--subset", choices=["all", "base", "new"], default="all", help="class subset (default all)"
    )
    group.add_argument(
        "--classes", default=None, help="comma-separated class names to sample instead of a subset"
    )
    sm.add_argument("--with-replacement", action="store_true", help="allow classes with fewer than K clips")
    sm.add_argument("--json", action="store_true", help="print the manifest as JSON")
    sm.set_defaults(func=run_sample)


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="registered dataset name (`sept data list`) or a CSV / folder per class")
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the dataset's folder (default $SEPT_DATA_ROOT/<NAME>); for a CSV, the folder its paths are relative to",
    )
    p.add_argument(
        "--test", type=Path, default=None, help="for your own data: the test CSV or folder per class"
    )


def _dataset(args: argparse.Namespace):  # -> Dataset
    from sept.data.registry import open_dataset

    return open_dataset(args.name, args.root, test=args.test)


def _console():  # -> rich.console.Console
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: avoid wrapping tables at 80 columns
    return console


def run_list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from sept.data.registry import dataset_info, list_datasets

    infos = [dataset_info(n) for n in list_datasets()]
    if args.json:
        rows = [
            {
                "name": i.name,
                "task": i.task,
                "classes": len(i.classnames),
                "folds": i.folds,
                "hub_repo": i.hub_repo,
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="datasets (benchmark: the 11 hub datasets)")
    for col in ("name", "task", "classes", "split", "source"):
        table.add_column(col, justify="right" if col == "classes" else "left", no_wrap=col != "task")
    for i in infos:
        source = i.hub_repo + (" (zipped)" if i.zipped else "") if i.hub_repo else "local folder (--root)"
        table.add_row(
            escape(i.name), escape(i.task), str(len(i.classnames)), i.split_description, escape(source)
        )
    _console().print(table)
    return 0


def _short(text: str, root: str) -> str:
    return text.replace(root.rstrip("/") + "/", "")


def _items(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_ITEMS])
    return shown + (f", ... and {len(items) - MAX_ITEMS} more" if len(items) > MAX_ITEMS else "")


def _print_issue(console: Any, issue: Any, indent: str = "  ") -> None:
    from rich.text import Text

    style = "bold red" if issue.severity == "error" else "yellow"
    line = Text(indent)
    line.append(issue.severity.upper(), style=style)
    line.append(f" [{issue.kind}] {issue.message}")
    if issue.items:
        line.append(f": {_items(issue.items)}")
    console.print(line)


def print_check_report(report: Any, console: Any = None) -> None:
    """A table of clips per class for each fold, then the problems found."""
    from rich.markup import escape
    from rich.table import Table

    console = console or _console()
    what = "decoded" if report.decode else "headers read"
    console.print(
        escape(f"dataset {report.dataset} at {report.root}: {report.files_checked} files checked ({what})")
    )
    for fr in report.folds:
        title = "single train/test split" if fr.fold is None else f"fold {fr.fold}"
        if fr.train_source:
            title += f": train = {_short(fr.train_source, report.root)}, test = {_short(fr.test_source, report.root)}"
        console.print(escape(title), style="bold", soft_wrap=True)
        if fr.classnames:
            table = Table()
            table.add_column("class")
            table.add_column("readable")
            table.add_column("train", justify="right")
            table.add_column("test", justify="right")
            for c in fr.classnames:
                counts = str(fr.train_counts.get(c, 0)), str(fr.test_counts.get(c, 0))
                table.add_row(escape(c), escape(fr.readable.get(c, "")), *counts)
            table.add_section()
            table.add_row(f"total ({len(fr.classnames)} classes)", "", str(fr.n_train), str(fr.n_test))
            console.print(table)
        for issue in fr.issues:
            _print_issue(console, issue)
    for issue in report.issues:
        _print_issue(console, issue, indent="")
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        console.print(f"[bold red]{n_err} error(s)[/], {n_warn} warning(s)")
    else:
        console.print(f"[bold green]OK[/]: no errors, {n_warn} warning(s)")


def run_check(args: argparse.Namespace) -> int:
    from sept.data.check import check_dataset

    dataset = _dataset(args)
    report = check_dataset(
        dataset, folds=args.fold, decode=args.decode, workers=args.workers, progress=not args.no_progress
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_check_report(report)
    return 0 if report.ok else 1


def run_download(args: argparse.Namespace) -> int:
    from sept.data.download import download_dataset

    folder = download_dataset(
        args.name, args.root, revision=args.revision, force=args.force, delete_zips=args.delete_zips
    )
    print(f"{args.name} is in {folder}; check it with `sept data check {args.name} --root {folder}`")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from sept.data.manifest import few_shot_manifest, manifest_path
    from sept.data.sampling import resolve_subset

    split = _dataset(args).split(args.fold)
    subset: Any = args.subset
    if args.classes is not None:
        subset = [c.strip() for c in args.classes.split(",") if c.strip()]
    tag, _ = resolve_subset(split.classnames, subset)
    existed = manifest_path(
        args.run_root, split.dataset, split.fold, args.shots, args.seed, tag, args.with_replacement
    ).exists()
    manifest, path = few_shot_manifest(
        split,
        shots=args.shots,
        seed=args.seed,
        run_root=args.run_root,
        subset=subset,
        with_replacement=args.with_replacement,
    )
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))
        return 0
    fold = "single split" if split.fold is None else f"fold {split.fold}"
    print(
        f"{'reused' if existed else 'wrote'} {path}\n"
        f"{split.dataset} {fold}: {manifest.shots} shots x {len(manifest.classnames)} classes ({manifest.subset}), "
        f"seed {manifest.seed} -> {len(manifest.items)} clips"
    )
    return 0
