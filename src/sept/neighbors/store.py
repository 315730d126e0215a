"""Find neighbour sets: the ones shipped with sept (by dataset name) or a user's JSON file."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sept.errors import UnknownNameError
from sept.neighbors.errors import MissingNeighborsError, NeighborFileError
from sept.neighbors.schema import NeighborSet, read_neighbor_file
from sept.neighbors.validate import normalize, readable


def _shipped_files() -> dict[str, Any]:
    """``{dataset name: Traversable}`` of the JSON files under ``sept/resources/neighbors``."""
    folder = resources.files("sept") / "resources" / "neighbors"
    if not folder.is_dir():
        return {}
    return {f.name[: -len(".json")]: f for f in folder.iterdir() if f.name.endswith(".json")}


def list_shipped() -> list[str]:
    """Dataset names that have a neighbour set shipped with sept, sorted."""
    return sorted(_shipped_files(), key=str.lower)


def shipped_json(dataset: str) -> tuple[str, Any]:
    """``(canonical name, parsed JSON)`` of a shipped set, unvalidated (for ``sept neighbors validate``)."""
    files = _shipped_files()
    by_lower = {name.lower(): name for name in files}
    name = by_lower.get(dataset.lower())
    if name is None:
        raise UnknownNameError("neighbour set", dataset, sorted(files, key=str.lower))
    try:
        return name, json.loads(files[name].read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise NeighborFileError(f"shipped neighbour set {name!r} is unreadable: {exc}") from None


def load_shipped(dataset: str) -> NeighborSet:
    """The shipped set of ``dataset`` (name matched case-insensitively); unknown names list the valid ones.

    Each file is read and validated once per process while it is unchanged (a sweep worker
    resolves the same set for every cell); a copy is returned.
    """
    name, obj = shipped_json(dataset)
    path = _shipped_files()[name]
    stat = path.stat() if isinstance(path, Path) else None
    key = (name, stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
    if key not in _SHIPPED:
        _SHIPPED[key] = NeighborSet.from_dict(obj, origin=f"shipped:{name}")
    return copy.deepcopy(_SHIPPED[key])


#: validated shipped sets by (name, file mtime, size) (:func:`load_shipped`)
_SHIPPED: dict[tuple, NeighborSet] = {}


def is_file_reference(target: str | os.PathLike[str]) -> bool:
    """True when ``target`` names a file rather than a shipped set: it exists, ends in .json or has a /."""
    text = os.fspath(target)
    return Path(text).is_file() or text.endswith(".json") or os.sep in text or "/" in text


def load_neighbors(dataset_or_path: str | os.PathLike[str]) -> NeighborSet:
    """A shipped set by dataset name (``"ESC50"``), or a neighbour JSON file by path.

    A value naming an existing file, or ending in ``.json``, is read as a file.
    """
    if is_file_reference(dataset_or_path):
        return read_neighbor_file(dataset_or_path)
    return load_shipped(os.fspath(dataset_or_path))


def _letters(name: str) -> str:
    """A class name's letters and digits only: ``"hip hop"``, ``"hiphop"`` and ``"Hip-Hop"`` meet."""
    return "".join(ch for ch in normalize(readable(name)) if ch.isalnum())


def neighbors_for(classnames: Sequence[str], neighbor_set: NeighborSet) -> dict[str, list[str]]:
    """Phrases for each of ``classnames`` (in that order), matched exactly, by readable name, or by
    the name's letters and digits alone.

    ``"dog_bark"`` finds a set's ``"dog bark"`` entry, and a dataset's readable ``"hip hop"`` a
    set's ``"hiphop"``. Classes with no entry raise :class:`MissingNeighborsError` naming them all
    and the set's origin.
    """
    by_key: dict[str, str] = {}
    by_letters: dict[str, str] = {}
    for name in neighbor_set.classes:
        by_key.setdefault(normalize(readable(name)), name)
        by_letters.setdefault(_letters(name), name)
    out: dict[str, list[str]] = {}
    missing: list[str] = []
    for classname in classnames:
        key = (
            classname
            if classname in neighbor_set.classes
            else by_key.get(normalize(readable(classname))) or by_letters.get(_letters(classname))
        )
        if key is None or not neighbor_set.classes[key]:
            missing.append(classname)
        else:
            out[classname] = list(neighbor_set.classes[key])
    if missing:
        raise MissingNeighborsError(
            f"neighbour set {neighbor_set.origin!r} has no phrases for {len(missing)} class(es): "
            f"{', '.join(repr(m) for m in missing)}; it covers: {', '.join(neighbor_set.classes)}. "
            "Write them with `sept neighbors generate --classes ...` and pass that file."
        )
    return out
