"""Few-shot manifests and held-out test splits: each is drawn once, written under the run root and
reused by every method.

A manifest lives at ``<run_root>/manifests/<dataset>/fold-<k>/k<K>-seed<s>-<subset>.json`` (``fold-none``
for a single split, ``-repl`` appended when drawn with replacement). It lists the chosen relpaths and
class names with the parameters, a hash of the train list they were drawn from, and a hash of all
of that (``hash``), so an edited or damaged file is noticed. An existing manifest whose parameters
match is reused, never redrawn; one that disagrees raises :class:`DataError` rather than silently
changing the shots. A damaged one (not JSON, malformed, its hash not matching its content, or not K
clips per class) is never used: it is drawn again, with a warning (the sampler is deterministic, so
the draw gives the same shots while the train list is unchanged), and rewritten. A held-out test
split (:func:`held_out_split`, ``--test-fraction F --split-seed S``) lives at
``<run_root>/manifests/<dataset>/test-split-f<F>-seed<S>.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sept.data.clips import Clip
from sept.data.dataset import Fold, Split
from sept.data.sampling import resolve_subset, sample_few_shot
from sept.errors import DataError
from sept.utils.atomic import atomic_write_json
from sept.utils.hashing import hash_json
from sept.utils.paths import safe_name

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
#: how the shots were drawn (bump if the sampler changes, so old manifests are never misread)
SAMPLER = "per-class-permutation/numpy-pcg64/v1"
#: parameters that must match for a manifest to be reused
_PARAMS = (
    "version",
    "sampler",
    "dataset",
    "fold",
    "shots",
    "seed",
    "subset",
    "classnames",
    "with_replacement",
)


@dataclass(frozen=True)
class Manifest:
    """The few-shot train sample of (dataset, fold, shots, seed, class subset).

    ``items``: (relpath, classname) per shot, grouped by sorted class; ``pool_hash``: hash of the
    sorted (relpath, classname) train list of the sampled classes.
    """

    dataset: str
    fold: Fold
    shots: int
    seed: int
    subset: str
    classnames: tuple[str, ...]
    with_replacement: bool
    pool_hash: str
    items: tuple[tuple[str, str], ...]
    version: int = MANIFEST_VERSION
    sampler: str = SAMPLER

    def params(self) -> dict[str, Any]:
        d = self.to_dict()
        return {k: d[k] for k in _PARAMS}

    def to_dict(self) -> dict[str, Any]:
        """The JSON record, with ``hash``: :func:`content_hash` of the rest."""
        d = asdict(self)
        d["classnames"] = list(self.classnames)
        d["items"] = [{"path": p, "classname": c} for p, c in self.items]
        d["hash"] = content_hash(d)
        return d

    def problems(self) -> list[str]:
        """Why the items cannot be this sample: a class without exactly ``shots`` items, an item of
        a class not sampled, or a clip drawn twice without replacement."""
        counts = Counter(c for _, c in self.items)
        out = [
            f"class {c!r} has {counts[c]} item(s), not {self.shots}"
            for c in self.classnames
            if counts[c] != self.shots
        ]
        foreign = sorted(set(counts) - set(self.classnames))
        if foreign:
            out.append(f"items of class(es) not sampled: {', '.join(map(repr, foreign))}")
        if not self.with_replacement and len(set(self.items)) != len(self.items):
            out.append("a clip is listed twice (drawn without replacement)")
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<manifest>") -> Manifest:
        try:
            return cls(
                dataset=str(d["dataset"]),
                fold=None if d["fold"] is None else int(d["fold"]),
                shots=int(d["shots"]),
                seed=int(d["seed"]),
                subset=str(d["subset"]),
                classnames=tuple(str(c) for c in d["classnames"]),
                with_replacement=_bool(d["with_replacement"]),
                pool_hash=str(d["pool_hash"]),
                items=tuple((str(i["path"]), str(i["classname"])) for i in d["items"]),
                version=int(d["version"]),
                sampler=str(d["sampler"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"manifest {where} is malformed: {type(exc).__name__}: {exc}") from exc


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"with_replacement must be true or false, got {value!r}")
    return value


def manifest_path(
    run_root: str | os.PathLike[str],
    dataset: str,
    fold: Fold,
    shots: int,
    seed: int,
    subset: str = "all",
    with_replacement: bool = False,
) -> Path:
    """Where the manifest of these parameters lives (``subset``: a tag from :func:`resolve_subset`)."""
    fold_dir = "fold-none" if fold is None else f"fold-{fold}"
    stem = f"k{shots}-seed{seed}-{safe_name(subset)}" + ("-repl" if with_replacement else "")
    return Path(run_root) / "manifests" / safe_name(dataset) / fold_dir / f"{stem}.json"


def content_hash(record: dict[str, Any]) -> str:
    """Hash of a manifest record without its ``hash`` key (parameters, pool hash and items)."""
    return hash_json({k: v for k, v in record.items() if k != "hash"})


class DamagedManifestError(DataError):
    """A manifest file that cannot be trusted: unreadable, malformed, edited or not K per class."""


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest; :class:`DamagedManifestError` names the file and what is wrong.

    A manifest written before manifests carried a ``hash`` is checked for K clips per class only.
    """
    path = Path(path)
    where = repr(str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read manifest {where}: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deeply
        raise DamagedManifestError(
            f"manifest {where} is not valid JSON: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise DamagedManifestError(f"manifest {where} is not a JSON object")
    if "hash" in data and data["hash"] != content_hash(data):
        raise DamagedManifestError(
            f"manifest {where} was edited or damaged: its content does not match its hash"
        )
    try:
        manifest = Manifest.from_dict(data, where)
    except DataError as exc:
        raise DamagedManifestError(str(exc)) from None
    problems = manifest.problems()
    if problems:
        raise DamagedManifestError(
            f"manifest {where} is not {manifest.shots} shots per class: {'; '.join(problems)}"
        )
    return manifest


def _pool_hash(clips: Iterable[Clip], classes: set[str]) -> str:
    return hash_json(sorted({(c.relpath, c.classname) for c in clips if c.classname in classes}))


def few_shot_manifest(
    split: Split,
    *,
    shots: int,
    seed: int,
    run_root: str | os.PathLike[str],
    subset: str | Iterable[str] = "all",
    with_replacement: bool = False,
) -> tuple[Manifest, Path]:
    """Load the manifest of these parameters from ``run_root`` or draw it once and write it atomically.

    ``subset``: "all", "base", "new" (see :func:`sept.data.sampling.base_new_split`) or a list of
    class names. Returns the manifest and its path.
    """
    tag, classes = resolve_subset(split.classnames, subset)
    pool_hash = _pool_hash(split.train, set(classes))
    path = manifest_path(run_root, split.dataset, split.fold, shots, seed, tag, with_replacement)
    wanted = Manifest(
        dataset=split.dataset,
        fold=split.fold,
        shots=shots,
        seed=seed,
        subset=tag,
        classnames=tuple(classes),
        with_replacement=with_replacement,
        pool_hash=pool_hash,
        items=(),
    )
    existing = None
    if path.exists():
        try:
            existing = read_manifest(path)
        except DamagedManifestError as exc:
            log.warning("%s; drawing it again (same shots while the train list is unchanged)", exc)
    if existing is not None:
        diff = {k: (v, wanted.params()[k]) for k, v in existing.params().items() if v != wanted.params()[k]}
        if diff:
            listing = "; ".join(f"{k}: file has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise DataError(f"manifest {str(path)!r} does not match the requested sample ({listing})")
        if existing.pool_hash != pool_hash:
            raise DataError(
                f"manifest {str(path)!r} was drawn from a different train list of dataset {split.dataset!r} "
                f"fold {split.fold} (the dataset changed since); use a new run root, or delete the manifest "
                "to draw again (methods compared across the two draws would not share shots)"
            )
        return existing, path
    chosen = sample_few_shot(
        split.train,
        classes,
        shots,
        seed,
        key=(split.dataset, split.fold),
        with_replacement=with_replacement,
    )
    manifest = replace(wanted, items=tuple((c.relpath, c.classname) for c in chosen))
    atomic_write_json(path, manifest.to_dict())
    return manifest, path


def manifest_clips(manifest: Manifest, split: Split) -> list[Clip]:
    """The train clips [K * n_classes] a manifest names, looked up in ``split`` (same dataset and fold)."""
    if (manifest.dataset, manifest.fold) != (split.dataset, split.fold):
        raise DataError(
            f"manifest of dataset {manifest.dataset!r} fold {manifest.fold} used with dataset {split.dataset!r} "
            f"fold {split.fold}"
        )
    by_rel: dict[str, Clip] = {}
    for clip in split.train:
        by_rel.setdefault(clip.relpath, clip)
    out = []
    for relpath, classname in manifest.items:
        clip = by_rel.get(relpath)
        if clip is None or clip.classname != classname:
            found = "absent" if clip is None else f"labelled {clip.classname!r}"
            raise DataError(
                f"manifest clip {relpath!r} ({classname!r}) is {found} in the train list of dataset "
                f"{split.dataset!r} fold {split.fold}"
            )
        out.append(clip)
    return out


# ---- held-out test splits ------------------------------------------------------------------------
#: how a held-out test split is drawn (bump if :func:`sept.data.sampling.stratified_split` changes)
SPLITTER = "stratified-per-class-permutation/numpy-pcg64/v1"
_SPLIT_PARAMS = ("version", "splitter", "dataset", "test_fraction", "split_seed")


def split_manifest_path(
    manifest_dir: str | os.PathLike[str], dataset: str, test_fraction: float, seed: int
) -> Path:
    """``<manifest_dir>/<dataset>/test-split-f<F>-seed<S>.json``."""
    return Path(manifest_dir) / safe_name(dataset) / f"test-split-f{test_fraction:g}-seed{seed}.json"


def held_out_split(
    clips: list[Clip],
    *,
    dataset: str,
    test_fraction: float,
    seed: int,
    manifest_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[Clip], list[Clip]]:
    """(train, test) of ``clips`` with a stratified ``test_fraction`` of each class held out.

    With ``manifest_dir`` the split is drawn once and written to :func:`split_manifest_path`;
    every later load (every method, seed and protocol of the run root) reads it back. A manifest
    drawn from a different list of clips (the data changed) raises :class:`DataError` instead of
    silently changing the test set.
    """
    from sept.data.sampling import stratified_split

    wanted = {
        "version": MANIFEST_VERSION,
        "splitter": SPLITTER,
        "dataset": dataset,
        "test_fraction": float(test_fraction),
        "split_seed": int(seed),
    }
    pool_hash = hash_json(sorted({(c.relpath, c.classname) for c in clips}))
    path = (
        split_manifest_path(manifest_dir, dataset, test_fraction, seed) if manifest_dir is not None else None
    )
    if path is not None and path.exists():
        data = _read_json(path)
        diff = {k: (data.get(k), v) for k, v in wanted.items() if data.get(k) != v}
        if diff:
            listing = "; ".join(f"{k}: file has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise DataError(f"held-out split {str(path)!r} does not match the requested one ({listing})")
        if data.get("pool_hash") != pool_hash:
            raise DataError(
                f"held-out split {str(path)!r} was drawn from a different list of clips of dataset {dataset!r} "
                "(the data changed since); use a new run root, or delete the manifest and the runs made with it"
            )
        try:
            held = {(str(i["path"]), str(i["classname"])) for i in data["test"]}
        except (KeyError, TypeError) as exc:
            raise DataError(
                f"held-out split {str(path)!r} is malformed: {type(exc).__name__}: {exc}"
            ) from None
        return (
            [c for c in clips if (c.relpath, c.classname) not in held],
            [c for c in clips if (c.relpath, c.classname) in held],
        )
    train, test = stratified_split(clips, test_fraction, seed, key=(dataset,))
    if path is not None:
        record = {
            **wanted,
            "pool_hash": pool_hash,
            "num_train": len(train),
            "test": [{"path": c.relpath, "classname": c.classname} for c in test],
        }
        atomic_write_json(path, record)
    return train, test


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read manifest {str(path)!r}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"manifest {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"manifest {str(path)!r} is not a JSON object")
    return data
