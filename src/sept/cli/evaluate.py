"""``sept eval``: zero-shot, or a tuned prompt (``--prompt RUN_DIR``), on a dataset's cached features."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sept.cli.common import add_backbone_args, add_feature_args, backbone_from_args, extract_from_args
from sept.errors import DataError, SeptError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        aliases=["evaluate"],
        help="evaluate zero-shot or a tuned prompt (--prompt RUN_DIR) on a dataset",
        description="Zero-shot classification of a dataset with one or several templates, or (--prompt RUN_DIR) "
        "the tuned prompt of a `sept run` folder over the dataset's classes. Writes accuracy, macro-F1, "
        "per-class accuracy and the confusion matrix as JSON.",
    )
    p.add_argument("--method", default=None, help="method to evaluate: zeroshot (default)")
    p.add_argument(
        "--prompt",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="evaluate the tuned prompt of a `sept run` folder instead (any class names; see `sept predict`)",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data",
        type=Path,
        help="CSV of path,classname[,fold] or a folder per class (train/ and test/ folders: --fold test)",
    )
    src.add_argument("--dataset", help="a registered dataset name (`sept data list`), with --root")
    p.add_argument(
        "--root", type=Path, default=None, help="dataset root (or the folder CSV paths are relative to)"
    )
    p.add_argument(
        "--fold", default=None, help="evaluate the clips of this fold only (the test split of fold K)"
    )
    p.add_argument(
        "--template",
        action="append",
        default=None,
        help='prompt template with {} for the class name (repeatable; default "the sound of {}.")',
    )
    p.add_argument("--ensemble", action="store_true", help="average the 5 built-in templates")
    p.add_argument("--logit-scale", type=float, default=None, help="default: the backbone's")
    p.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    add_backbone_args(p)
    add_feature_args(p)
    p.set_defaults(func=run)


def _load_eval_clips(args: argparse.Namespace):
    """(clips to evaluate, sorted raw class names, readable names) from --data/--dataset and --fold."""
    from sept.data.clips import class_names, load_clips
    from sept.data.guards import check_clips
    from sept.data.names import readable_name

    if args.dataset:
        from sept.data import get_dataset

        ds = get_dataset(args.dataset, root=args.root)
        fold = args.fold if args.fold is None or not str(args.fold).isdigit() else int(args.fold)
        split = ds.split(fold=fold if fold is not None else ds.default_fold)
        split.labels(split.test)  # a test class absent from train: DataError naming it, before any compute
        return list(split.test), list(split.classnames), list(split.readable)
    else:
        clips = load_clips(args.data, args.root)
        check_clips(clips, repr(str(args.data)))  # a file listed twice would count twice
        names = class_names(clips)
        if args.fold is not None:
            clips = [c for c in clips if c.fold == str(args.fold)]
            if not clips:
                raise DataError(f"no clip of {str(args.data)!r} is in fold {args.fold!r}")
        readable = [readable_name(n) for n in names]
    return clips, names, readable


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from sept.data.guards import check_evaluated
    from sept.evaluation.metrics import classification_metrics
    from sept.evaluation.zeroshot import (
        DEFAULT_TEMPLATES,
        ENSEMBLE_TEMPLATES,
        predict,
        zeroshot_class_features,
    )
    from sept.utils.atomic import atomic_write_json

    if args.prompt is not None:
        return _run_prompt(args)
    if args.method not in (None, "zeroshot"):
        raise SeptError(
            f"sept eval --method supports zeroshot; evaluate a trained method with --prompt RUN_DIR "
            f"(a `sept run` folder) or train one with `sept run` (got {args.method!r})"
        )
    templates = tuple(args.template or ()) + (ENSEMBLE_TEMPLATES if args.ensemble else ())
    templates = templates or DEFAULT_TEMPLATES
    clips, names, readable = _load_eval_clips(args)
    start = time.perf_counter()
    backbone = backbone_from_args(args)
    fs = extract_from_args(backbone, clips, args)
    check_evaluated(len(fs.clips), fs.skipped, f"sept eval on {args.data or args.dataset}")
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[c.classname] for c in fs.clips], dtype=np.int64)
    scale = args.logit_scale if args.logit_scale is not None else backbone.default_logit_scale
    class_feats = zeroshot_class_features(backbone, readable, templates)
    preds = predict(fs.features, class_feats, scale).numpy()
    metrics = classification_metrics(labels, preds, names)
    result = {
        "method": "zeroshot",
        "backbone": backbone.name,
        "backbone_identity": backbone.identity,
        "data": str(args.data or args.dataset),
        "fold": args.fold,
        "templates": list(templates),
        "prompt_names": dict(zip(names, readable, strict=True)),
        "logit_scale": scale,
        "skipped_files": [{"path": str(c.path), "reason": r} for c, r in fs.skipped],
        "num_skipped": len(fs.skipped),
        "seconds": round(time.perf_counter() - start, 2),
        **metrics.to_dict(),
    }
    if args.out:
        atomic_write_json(args.out, result)
    print(
        f"zero-shot {backbone.name} on {args.data or args.dataset}"
        + (f" fold {args.fold}" if args.fold else "")
        + f": accuracy {metrics.accuracy:.2f}%  macro-F1 {metrics.macro_f1:.2f}%  "
        f"({metrics.num_clips} clips, {len(fs.skipped)} skipped)"
    )
    width = max(len(n) for n in names)
    for n in names:
        if n in metrics.per_class_accuracy:
            print(f"  {n:{width}s}  {metrics.per_class_accuracy[n]:6.2f}%")
    if args.out:
        print(f"results: {args.out}")
    return 0


def _run_prompt(args: argparse.Namespace) -> int:
    """``sept eval --prompt RUN_DIR``: the tuned prompt on the clips and classes of --data / --dataset."""
    from sept.cli.predict import classifier_from_args, print_notes
    from sept.utils.atomic import atomic_write_json

    given = [
        f
        for f, v in (
            ("--method", args.method),
            ("--template", args.template),
            ("--logit-scale", args.logit_scale),
        )
        if v
    ]
    if args.ensemble:
        given.append("--ensemble")
    if given:
        raise SeptError(f"{', '.join(given)} cannot be combined with --prompt: the run's prompt defines them")
    clips, names, readable = _load_eval_clips(args)
    start = time.perf_counter()
    clf = classifier_from_args(args, args.prompt)
    prompts = readable if args.dataset else [clf.prompt_name(n) for n in names]
    preds, metrics = clf.evaluate(clips, names, readable=prompts)
    result = {
        "method": clf.config.method,
        "run_dir": str(clf.run_dir),
        "backbone": clf.backbone.name,
        "backbone_identity": clf.backbone.identity,
        "data": str(args.data or args.dataset),
        "fold": args.fold,
        "prompt_names": dict(zip(names, prompts, strict=True)),
        "trained_classnames": clf.train_classnames,
        "unseen_classes": [n for n, p in zip(names, prompts, strict=True) if p not in clf.train_classnames],
        "notes": preds.notes,
        "warnings": list(clf.warnings),
        "logit_scale": clf.method.logit_scale,
        "skipped_files": [{"path": str(c.path), "reason": r} for c, r in preds.skipped],
        "num_skipped": len(preds.skipped),
        "seconds": round(time.perf_counter() - start, 2),
        **metrics.to_dict(),
    }
    if args.out:
        atomic_write_json(args.out, result)
    print_notes(preds.notes, clf.warnings)
    print(
        f"{clf.config.method} ({clf.run_dir}) on {args.data or args.dataset}"
        + (f" fold {args.fold}" if args.fold else "")
        + f": accuracy {metrics.accuracy:.2f}%  macro-F1 {metrics.macro_f1:.2f}%  "
        f"({metrics.num_clips} clips, {len(preds.skipped)} skipped)"
    )
    if args.out:
        print(f"results: {args.out}")
    return 0
