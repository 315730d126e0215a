"""``sept predict``: classify new clips with a tuned prompt, over any class names."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

from sept.cli.common import add_feature_args, positive_int

#: the confusion matrix is printed up to this many classes (always written to the JSON)
_PRINT_CONFUSION_UP_TO = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify new clips with a tuned prompt (any class names)",
        description="Load the prompt of a `sept run` folder and classify clips: per clip the top-k class names "
        "and their probabilities (CSV). The classes are --classes, else the labels of labelled clips, else the "
        "run's classes; class names the prompt never saw get prompts from their names with the learned context. "
        "With labels, also accuracy, macro-F1, per-class accuracy and the confusion matrix (JSON beside the CSV).",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (holds prompt.safetensors)")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="an audio file, a CSV path[,classname] (paths relative to the CSV, or absolute), a folder of "
        "audio files (unlabelled) or a folder per class (labelled)",
    )
    p.add_argument("--root", type=Path, default=None, help="folder the CSV paths are relative to")
    p.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="NAME",
        help="class names to choose from (space- or comma-separated; default: the clips' labels, else the run's)",
    )
    p.add_argument("--top-k", type=positive_int, default=1, metavar="K", help="labels per clip (default 1)")
    p.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    p.add_argument(
        "--metrics", type=Path, default=None, help="summary and metrics JSON (default: OUT with .json)"
    )
    add_feature_args(p)
    p.set_defaults(func=run)


def split_names(items: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (None stays None)."""
    if items is None:
        return None
    return [n.strip() for item in items for n in item.split(",") if n.strip()]


def classifier_from_args(args: argparse.Namespace, run_dir: Path):  # -> PromptClassifier
    from sept.inference import load_classifier
    from sept.protocols.common import FeatureOptions

    options = FeatureOptions(
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        batch_size=args.batch_size,
        workers=args.workers,
        on_bad_audio=args.on_bad_audio,
        progress=not args.no_progress,
    )
    return load_classifier(run_dir, features=options)


def print_notes(notes: list[str], warnings: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)


def format_confusion(confusion: list[list[int]], names: list[str]) -> str:
    """Rows = true class, columns = predicted class (columns numbered as the rows)."""
    width = max(len(n) for n in names)
    cell = max(len(str(len(names))), *(len(str(v)) for row in confusion for v in row)) + 1
    lines = [" " * (width + 5) + "".join(f"{j + 1:>{cell}}" for j in range(len(names)))]
    for i, (name, row) in enumerate(zip(names, confusion, strict=True)):
        lines.append(f"{i + 1:>3}. {name:{width}s}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sept.data.guards import check_clips, check_evaluated
    from sept.errors import DataError
    from sept.inference import prediction_inputs
    from sept.utils.atomic import atomic_write_json, atomic_write_text

    clips, labelled = prediction_inputs(args.data, args.root)
    if labelled:
        check_clips(clips, repr(str(args.data)))
    wanted = split_names(args.classes)
    start = time.perf_counter()
    clf = classifier_from_args(args, args.run_dir)
    names = wanted or (sorted({c.classname for c in clips}) if labelled else list(clf.classnames))
    if args.top_k > len(names):
        raise DataError(f"--top-k {args.top_k} exceeds the {len(names)} class(es) to choose from")
    summary: dict[str, Any] = {
        "run_dir": str(clf.run_dir),
        "method": clf.config.method,
        "backbone": clf.backbone.name,
        "backbone_identity": clf.backbone.identity,
        "data": str(args.data),
        "classnames": names,
        "prompt_names": {n: clf.prompt_name(n) for n in names},
        "trained_classnames": clf.train_classnames,
        "unseen_classes": clf.unseen(names),
        "top_k": args.top_k,
    }
    if labelled:
        preds, metrics = clf.evaluate(clips, names)
        summary.update(metrics.to_dict())
    else:
        preds, metrics = clf.predict(clips, names), None
        check_evaluated(len(preds.clips), preds.skipped, f"sept predict on {args.data}")
    summary.update(
        num_predicted=len(preds.clips),
        num_skipped=len(preds.skipped),
        skipped_files=[{"path": str(c.path), "reason": r} for c, r in preds.skipped],
        notes=preds.notes,
        warnings=list(clf.warnings),
        seconds=round(time.perf_counter() - start, 2),
    )
    top_names, top_scores = preds.top_k(args.top_k)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    ranks = [f"{col}_{r}" for r in range(1, args.top_k + 1) for col in ("pred", "score")]
    writer.writerow(["path", *(["classname", "correct"] if labelled else []), *ranks])
    for clip, row_names, row_scores in zip(preds.clips, top_names, top_scores.tolist(), strict=True):
        truth = [clip.classname, int(row_names[0] == clip.classname)] if labelled else []
        cells = [v for n, s in zip(row_names, row_scores, strict=True) for v in (n, f"{s:.6f}")]
        writer.writerow([clip.relpath, *truth, *cells])
    atomic_write_text(args.out, buf.getvalue())
    metrics_path = args.metrics or args.out.with_suffix(".json")
    if metrics_path == args.out:
        metrics_path = args.out.with_suffix(".metrics.json")
    atomic_write_json(metrics_path, summary)

    print_notes(preds.notes, clf.warnings)
    skipped = f", {len(preds.skipped)} skipped (listed in {metrics_path})" if preds.skipped else ""
    print(
        f"{clf.config.method} ({clf.run_dir}): {len(preds.clips)} clip(s) over {len(names)} classes{skipped}"
    )
    if metrics is not None:
        print(f"accuracy {metrics.accuracy:.2f}%  macro-F1 {metrics.macro_f1:.2f}%")
        if len(names) <= _PRINT_CONFUSION_UP_TO:
            print("confusion (rows: true class, columns: predicted):")
            print(format_confusion(metrics.confusion, names))
    print(f"predictions: {args.out}\nsummary: {metrics_path}")
    return 0
