"""``sept eval``: evaluate a method on a dataset's cached features (zero-shot for now)."""

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
        help="evaluate a method (zero-shot) on a dataset",
        description="Zero-shot classification of a dataset with one or several templates. Writes accuracy, "
        "macro-F1, per-class accuracy and the confusion matrix as JSON.",
    )
    p.add_argument("--method", default="zeroshot", help="method to evaluate (zeroshot)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="CSV of path,classname[,fold] or a folder per class")
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

    if args.method != "zeroshot":
        raise SeptError(
            f"sept eval supports --method zeroshot; evaluate trained methods with `sept run` (got {args.method!r})"
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
