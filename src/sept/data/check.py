"""``check_dataset``: validate a dataset without modifying it, fold by fold.

Reports clips per class for train and test, files listed but missing, undecodable files, paths
that escape the dataset root (never opened), duplicate paths, files in both train and test,
classes in test but not train, suspicious folds (a test list larger than its train list, or far
from 1/K of a K-fold dataset, as in the swapped TUT2017 fold CSVs of PALM; not for a fold whose
train list is the other folds' test lists, as a fold column gives: it cannot be swapped), k-fold test lists that
overlap, and class names that differ from the registry's. The report is plain data (``to_dict``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sept.data.clips import Clip
from sept.data.dataset import Dataset, Fold, Split
from sept.errors import DataError

Severity = Literal["error", "warning"]

#: a fold whose test list exceeds this multiple of its train list is flagged (equal halves are not)
SUSPICIOUS_TEST_RATIO = 1.2


@dataclass
class Issue:
    """One problem: ``kind`` is a stable keyword, ``items`` the relpaths or names concerned."""

    severity: Severity
    kind: str
    message: str
    fold: Fold = None
    split: str | None = None
    items: list[str] = field(default_factory=list)


@dataclass
class FoldReport:
    """Counts and problems of one fold (``fold=None``: the single train/test split)."""

    fold: Fold
    train_source: str = ""
    test_source: str = ""
    classnames: list[str] = field(default_factory=list)  # sorted train + test classes
    readable: dict[str, str] = field(default_factory=dict)
    train_counts: dict[str, int] = field(default_factory=dict)
    test_counts: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def n_train(self) -> int:
        return sum(self.train_counts.values())

    @property
    def n_test(self) -> int:
        return sum(self.test_counts.values())


@dataclass
class CheckReport:
    dataset: str
    root: str
    decode: bool
    files_checked: int = 0
    folds: list[FoldReport] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)  # across folds

    def all_issues(self) -> list[Issue]:
        return [i for f in self.folds for i in f.issues] + self.issues

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.all_issues() if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.all_issues() if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for fd, fr in zip(d["folds"], self.folds, strict=True):
            fd["n_train"], fd["n_test"] = fr.n_train, fr.n_test
        d["ok"] = self.ok
        return d


def _norm(path: Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def _escaping(clips: Iterable[Clip], base: Path, absolute_ok: bool = False) -> list[Clip]:
    """Clips outside ``base`` (an absolute path a user's own list names is fine with ``absolute_ok``)."""
    base_norm = _norm(base).rstrip(os.sep) + os.sep
    return [
        c
        for c in clips
        if not (_norm(c.path) + os.sep).startswith(base_norm)
        and not (absolute_ok and os.path.isabs(c.relpath))
    ]


def check_file(path: Path, decode: bool = False) -> tuple[str, str] | None:
    """None if ``path`` reads as audio, else ("missing" | "undecodable", reason).

    Reads the header (``soundfile.info``); ``decode=True`` decodes every sample too, block by block.
    """
    import soundfile as sf

    if not os.path.isfile(path):
        return ("missing", "no such file") if not os.path.exists(path) else ("missing", "not a regular file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        return "undecodable", f"libsndfile cannot read the header ({exc})"
    if info.frames <= 0:
        return "undecodable", "the file holds zero samples"
    if decode:
        from sept.audio.io import scan_audio
        from sept.errors import AudioDecodeError

        try:
            scan_audio(path)  # block by block: memory does not grow with the file
        except AudioDecodeError as exc:
            return "undecodable", exc.reason
    return None


def _file_results(
    paths: list[Path], decode: bool, workers: int | None, progress: bool
) -> dict[str, tuple[str, str] | None]:
    from sept.utils.verbosity import progress_bar

    workers = workers or min(8, os.cpu_count() or 1)
    results: dict[str, tuple[str, str] | None] = {}
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(len(paths), "checking files", "file", enabled=progress) as bar,
    ):
        for path, result in zip(paths, pool.map(lambda p: check_file(p, decode), paths), strict=True):
            results[_norm(path)] = result
            bar.update(1)
    return results


def _duplicates(clips: Iterable[Clip]) -> list[str]:
    seen: dict[str, list[Clip]] = {}
    for clip in clips:
        seen.setdefault(_norm(clip.path), []).append(clip)
    out = []
    for group in seen.values():
        if len(group) > 1:
            labels = sorted({c.classname for c in group})
            extra = f" with labels {', '.join(labels)}" if len(labels) > 1 else ""
            out.append(f"{group[0].relpath} (x{len(group)}{extra})")
    return out


def _complement_folds(dataset: Dataset, splits: list[Split]) -> set[Fold]:
    """Folds whose train list is exactly the union of the other folds' test lists (the layout of
    a fold column); the other folds' lists are read when they were not checked."""
    if len(dataset.folds) < 2:
        return set()
    tests: dict[Fold, set[str]] = {s.fold: {_norm(c.path) for c in s.test} for s in splits}
    for fold in dataset.folds:
        if fold not in tests:
            try:
                tests[fold] = {_norm(c.path) for c in dataset.split(fold, strict=False).test}
            except DataError:
                return set()
    out = set()
    for split in splits:
        others = set().union(*(t for f, t in tests.items() if f != split.fold))
        if {_norm(c.path) for c in split.train} == others:
            out.add(split.fold)
    return out


def _fold_issues(
    split: Split, n_folds: int, absolute_ok: bool = False, complement: bool = False
) -> list[Issue]:
    """Problems visible from the lists alone (no file access).

    ``complement``: the fold's train list is every other fold's test list (a fold column), so
    train and test cannot be swapped whatever their sizes: no suspicious-fold warning.
    """
    issues: list[Issue] = []

    def add(severity: Severity, kind: str, message: str, side: str | None, items: list[str]) -> None:
        issues.append(Issue(severity, kind, message, split.fold, side, items))

    for side, clips, base in (
        ("train", split.train, split.train_root),
        ("test", split.test, split.test_root),
    ):
        escaping = [c.relpath for c in _escaping(clips, base, absolute_ok)]
        if escaping:
            add(
                "error",
                "escaping",
                f"{len(escaping)} {side} path(s) escape the dataset root {base}",
                side,
                escaping,
            )
        dups = _duplicates(clips)
        if dups:
            add("error", "duplicate", f"{len(dups)} {side} path(s) listed more than once", side, dups)
    test_paths = {_norm(c.path) for c in split.test}
    overlap = sorted({c.relpath for c in split.train if _norm(c.path) in test_paths})
    if overlap:
        add("error", "overlap", f"{len(overlap)} file(s) are in both train and test", None, overlap)
    train_classes = {c.classname for c in split.train}
    test_classes = {c.classname for c in split.test}
    test_only = sorted(test_classes - train_classes)
    if test_only:
        add(
            "error",
            "test-only-class",
            f"{len(test_only)} class(es) in test but not in train",
            "test",
            test_only,
        )
    train_only = sorted(train_classes - test_classes)
    if train_only:
        add(
            "warning",
            "train-only-class",
            f"{len(train_only)} class(es) have no test clips",
            "train",
            train_only,
        )
    n_train, n_test = len(split.train), len(split.test)
    reasons = []
    if not complement and n_test > SUSPICIOUS_TEST_RATIO * n_train:
        reasons.append(f"the test list is larger than the train list ({n_test} vs {n_train} clips)")
    if not complement and n_folds >= 3 and n_train + n_test:
        frac, expected = n_test / (n_train + n_test), 1 / n_folds
        if not expected / 2 <= frac <= 2 * expected:
            reasons.append(
                f"test is {frac:.0%} of the clips where {n_folds}-fold CV gives about {expected:.0%}"
            )
    if reasons:
        add("warning", "suspicious-fold", "; ".join(reasons) + ": train and test may be swapped", None, [])
    return issues


def _cross_fold_issues(splits: list[Split]) -> list[Issue]:
    issues = []
    tests = [(s.fold, {_norm(c.path) for c in s.test}) for s in splits]
    for i, (fa, a) in enumerate(tests):
        for fb, b in tests[i + 1 :]:
            shared = len(a & b)
            if shared:
                issues.append(
                    Issue(
                        "warning",
                        "fold-overlap",
                        f"the test lists of folds {fa} and {fb} share {shared} clip(s); k-fold test sets should "
                        "be disjoint",
                        None,
                        "test",
                        [str(fa), str(fb)],
                    )
                )
    return issues


def _registry_issue(dataset: Dataset, splits: list[Split]) -> list[Issue]:
    info = dataset.info
    if info is None or not splits:
        return []
    found = {dataset.readable_name(c) for s in splits for c in s.classnames}
    expected = {dataset.readable_name(c) for c in info.classnames}
    missing, extra = sorted(expected - found), sorted(found - expected)
    if not missing and not extra:
        return []
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"unexpected {', '.join(extra)}"] if extra else []
    )
    return [
        Issue(
            "warning",
            "registry-classes",
            f"train classes differ from the {len(expected)} registered for {info.name}: {'; '.join(parts)}",
            None,
            "train",
            missing + extra,
        )
    ]


def check_dataset(
    dataset: Dataset,
    *,
    folds: Iterable[Fold] | None = None,
    decode: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> CheckReport:
    """Check every fold (or ``folds``) of ``dataset``; files are only read, never written.

    ``decode=False`` reads each file's header; ``decode=True`` decodes every sample (slower).
    Each file is checked once even when several folds list it.
    """
    report = CheckReport(dataset.name, str(dataset.root), decode)
    if not dataset.root.is_dir():
        hint = f"; download it with `sept data download {dataset.name} --root DIR`" if dataset.info else ""
        report.issues.append(
            Issue("error", "load", f"dataset folder {str(dataset.root)!r} does not exist{hint}")
        )
        return report
    try:
        fold_list = list(folds) if folds is not None else list(dataset.folds or (None,))
        fold_list = [dataset.resolve_fold(f) for f in fold_list]
    except DataError as exc:
        report.issues.append(Issue("error", "load", str(exc)))
        return report
    n_folds = len(dataset.folds)
    loaded: list[tuple[Split, FoldReport]] = []
    for fold in fold_list:
        fr = FoldReport(fold)
        report.folds.append(fr)
        try:
            split = dataset.split(fold, strict=False)
        except DataError as exc:
            fr.issues.append(Issue("error", "load", str(exc), fold))
            continue
        loaded.append((split, fr))
        fr.train_source, fr.test_source = split.train_source, split.test_source
        fr.train_counts = dict(sorted(Counter(c.classname for c in split.train).items()))
        fr.test_counts = dict(sorted(Counter(c.classname for c in split.test).items()))
        fr.classnames = sorted(set(fr.train_counts) | set(fr.test_counts))
        fr.readable = {c: dataset.readable_name(c) for c in fr.classnames}

    complements = _complement_folds(dataset, [s for s, _ in loaded])
    for split, fr in loaded:
        fr.issues.extend(_fold_issues(split, n_folds, dataset.absolute_paths, split.fold in complements))

    splits = [s for s, _ in loaded]
    # every file once, escaping ones never opened
    to_check: dict[str, Path] = {}
    for split in splits:
        for clips, base in ((split.train, split.train_root), (split.test, split.test_root)):
            outside = {id(c) for c in _escaping(clips, base, dataset.absolute_paths)}
            for clip in clips:
                key = _norm(clip.path)
                if key not in to_check and id(clip) not in outside:
                    to_check[key] = clip.path
    results = _file_results(list(to_check.values()), decode, workers, progress)
    report.files_checked = len(results)
    for split, fr in loaded:
        for side, clips in (("train", split.train), ("test", split.test)):
            bad: dict[str, list[str]] = {"missing": [], "undecodable": []}
            for clip in clips:
                result = results.get(_norm(clip.path))
                if result is not None:
                    kind, reason = result
                    bad[kind].append(clip.relpath if kind == "missing" else f"{clip.relpath}: {reason}")
            for kind, items in bad.items():
                if items:
                    what = "listed but missing" if kind == "missing" else "undecodable"
                    fr.issues.append(
                        Issue("error", kind, f"{len(items)} {side} file(s) {what}", split.fold, side, items)
                    )
    if n_folds > 1:
        report.issues.extend(_cross_fold_issues(splits))
    report.issues.extend(_registry_issue(dataset, splits))
    return report
