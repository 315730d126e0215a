"""``sept run``: train and evaluate methods under a protocol (few-shot, base-to-new, cross-dataset)."""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.cli.common import add_backbone_args, add_feature_args, add_held_out_args
from sept.errors import ConfigError
from sept.runs.layout import CONFIG_FILE, PROMPT_FILE, RESULTS_FILE
from sept.runs.schema import PROTOCOLS

if TYPE_CHECKING:
    from sept.runs.schema import RunResults

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train and evaluate methods under a protocol",
        description="Train a method on cached audio features and evaluate it: --protocol fewshot (K shots of "
        "every class, test on all), base2new (train on K shots of the base classes; report Base, New and H) or "
        "xd (train on a source dataset, evaluate on --targets). Every fold (default) and seed is one run "
        "folder RUN_ROOT/<protocol>/<dataset>/fold-<k>/<method>[@options]/shots-<K>/seed-<s>/ with "
        f"{CONFIG_FILE}, {PROMPT_FILE} and {RESULTS_FILE}; options that differ from the method's defaults "
        "name the folder (@key=value). Finished runs are skipped; interrupted ones resume.",
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default=None, help="evaluation protocol (required)")
    p.add_argument(
        "--method",
        nargs="+",
        default=None,
        help="method(s): a learner or combination (`sept.methods.list_methods()`: coop, cocoop, kgcoop, palm, "
        "zeroshot) with +regularizers and +head, e.g. coop, kgcoop+dept, cocoop+kg",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="registered dataset name (`sept data list`) or a CSV path,classname[,fold] / folder per class "
        "(with train/ and test/ sub-folders, --test or --test-fraction); the source dataset for --protocol xd",
    )
    p.add_argument(
        "--root", type=Path, default=None, help="the dataset's folder (default $SEPT_DATA_ROOT/<NAME>)"
    )
    p.add_argument("--test", type=Path, default=None, help="for your own data: the test CSV or folder")
    add_held_out_args(p)
    p.add_argument(
        "--fold", type=int, action="append", default=None, help="run this fold only (repeatable; default all)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--shots", type=int, default=16, help="training clips per class (default 16)")
    p.add_argument(
        "--with-replacement", action="store_true", help="allow classes with fewer than --shots clips"
    )
    p.add_argument(
        "--config", type=Path, default=None, help="YAML file of config sections (optim, learner...)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. optim.lr=0.01, learner.n_ctx=16, kg.weight=4 (repeatable); "
        "applied to the methods that have the option (sept.weight=2 leaves coop alone)",
    )
    p.add_argument("--run-root", type=Path, default=Path("runs"), help="folder of run folders (default runs)")
    p.add_argument("--force", action="store_true", help="train finished runs again")
    p.add_argument(
        "--show-config",
        action="store_true",
        help="print the resolved config of each --method under --protocol (with --config/--set) and exit",
    )
    p.add_argument(
        "--list-methods", action="store_true", help="list methods, regularizers, heads and their options"
    )
    p.add_argument(
        "--targets",
        nargs="+",
        default=None,
        help="xd: target datasets (default: the other benchmark datasets)",
    )
    p.add_argument(
        "--target-fold",
        action="append",
        default=[],
        metavar="NAME=K",
        help="xd: the fold holding a target's test clips (required for a CSV target with folds; "
        "default for a registered dataset: every fold's test list; repeatable)",
    )
    p.add_argument(
        "--target-root",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="xd: folder of a target dataset (default $SEPT_DATA_ROOT/<NAME>; repeatable)",
    )
    add_backbone_args(p)
    add_feature_args(p)
    p.set_defaults(func=run)


def _targets(args: argparse.Namespace, source_name: str) -> list[Any]:
    from sept.cli.common import parse_key_values
    from sept.data.registry import BENCHMARK_DATASETS, open_dataset

    roots = {k: Path(str(v)) for k, v in parse_key_values(args.target_root, "--target-root").items()}
    folds = parse_key_values(args.target_fold, "--target-fold")
    names = args.targets or [n for n in BENCHMARK_DATASETS if n != source_name]
    targets = [open_dataset(n, roots.get(n)) for n in names]
    for name, target in zip(names, targets, strict=True):
        fold = folds.pop(name, folds.pop(target.name, None))
        if fold is not None:
            try:
                target.target_folds = (int(fold),)
            except (TypeError, ValueError):
                raise ConfigError(f"--target-fold {name}={fold!r}: the fold must be a number") from None
    if folds:
        raise ConfigError(f"--target-fold names no --targets entry: {', '.join(sorted(folds))}")
    return targets


def _mean_line(results: list[RunResults]) -> str:
    """Mean (± std over runs) of each summary number of one method's runs."""
    from sept.runs.schema import METRICS

    parts = []
    for key in METRICS[results[0].protocol]:
        values = [r.metrics()[key] for r in results]
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        parts.append(f"{key} {statistics.fmean(values):.2f}{spread}")
    return ", ".join(parts)


def _list_methods() -> None:
    import sys

    from sept.methods.options import describe_options
    from sept.methods.registry import COMBINATIONS, component_class, list_components

    for kind in ("learner", "regularizer", "head"):
        print(f"{kind}s:")
        for name in list_components(kind):
            cls = component_class(kind, name)
            doc = sys.modules[cls.__module__].__doc__ or cls.__doc__ or ""
            print(f"  {name}: {doc.strip().splitlines()[0]}")
            for field, default, doc in describe_options(cls.Options) if cls.Options else []:
                print(f"      {field} = {default!r}  {doc}")
    print("combinations:")
    for name, combo in COMBINATIONS.items():
        print(f"  {name} = {'+'.join([combo.learner, *combo.regularizers])}: {combo.description}")
    print("compose as learner[+regularizer...][+head], e.g. coop, cocoop+kg, kgcoop+dept")


def run(args: argparse.Namespace) -> int:
    import json

    from sept.cli.common import backbone_from_args, backbone_options_from_args, held_out_options
    from sept.data.registry import open_dataset
    from sept.errors import SeptError
    from sept.methods.registry import parse_method
    from sept.protocols import FeatureOptions, FeatureStore, ProtocolSettings, run_protocol
    from sept.protocols.common import check_overrides_apply
    from sept.protocols.preflight import preflight
    from sept.runs.schema import describe_summary, validate_results
    from sept.training.config import resolve_config

    if args.list_methods:
        _list_methods()
        return 0
    missing = [f"--{n}" for n in ("protocol", "method") if not getattr(args, n)]
    if not args.show_config and not args.dataset:
        missing.append("--dataset")
    if missing:
        raise SeptError(f"missing {', '.join(missing)} (see `sept run --help`)")
    if args.show_config:
        methods = [parse_method(m).name for m in args.method]
        check_overrides_apply(args.overrides, methods)
        for m in methods:
            config = resolve_config(
                m,
                args.protocol,
                config_file=args.config,
                settings={"backbone": args.backbone},
                aimed=args.overrides,
            )
            print(json.dumps(config.to_dict(), indent=2))
        return 0
    dataset = open_dataset(args.dataset, args.root, test=args.test, **held_out_options(args))
    settings = ProtocolSettings(
        run_root=args.run_root,
        shots=args.shots,
        seeds=args.seeds,
        folds=args.fold,
        config_file=args.config,
        settings={
            "backbone": args.backbone,
            "backbone_options": backbone_options_from_args(args),
        },
        overrides=args.overrides,
        with_replacement=args.with_replacement,
        force=args.force,
    )
    methods = [parse_method(m).name for m in args.method]
    check_overrides_apply(settings.overrides, methods)
    for m in methods:  # every config error before any compute
        resolve_config(
            m,
            args.protocol,
            config_file=args.config,
            settings=settings.settings,
            aimed=settings.overrides,
        )
    targets = _targets(args, dataset.name) if args.protocol == "xd" else None
    preflight(args.protocol, dataset, methods, settings, targets)  # every data error before any compute
    backbone = backbone_from_args(args)
    store = FeatureStore(
        backbone,
        FeatureOptions(
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            batch_size=args.batch_size,
            workers=args.workers,
            on_bad_audio=args.on_bad_audio,
            progress=not args.no_progress,
        ),
    )
    for m in methods:
        raw = run_protocol(args.protocol, backbone, dataset, m, settings, targets=targets, store=store)
        results = [validate_results(r) for r in raw]
        for r in results:
            fold = "" if r.fold is None else f" fold {r.fold}"
            skipped = sum(r.skipped().values())
            note = f"  ({skipped} undecodable file(s) skipped, listed in {RESULTS_FILE})" if skipped else ""
            print(
                f"{args.protocol} {r.dataset}{fold} {r.variant_name} K={r.shots} seed {r.seed}: "
                f"{describe_summary(r.protocol, r.summary)}{note}"
            )
            for warning in r.warnings:
                print(f"  warning: {warning}")
        if len(results) > 1:
            print(
                f"{args.protocol} {dataset.name} {results[0].variant_name} K={args.shots}, "
                f"mean of {len(results)} runs: {_mean_line(results)}"
            )
    from sept.runs.identity import dataset_id

    print(f"run folders under {args.run_root / args.protocol / dataset_id(dataset)}")
    return 0
