"""Which neighbour set a run uses: the one rule, asked by SEPT, preflight, analysis and runs.

For training classes ``classes`` (readable or raw names), a requested set and the run's dataset:

1. a requested set (``sept.neighbors``: a shipped dataset name or a JSON file; ``{dataset}`` in
   it becomes the run's dataset name, so one grid line serves every dataset) must cover every
   class (:class:`~sept.neighbors.errors.MissingNeighborsError` otherwise), origin ``requested``;
2. else the set shipped for the dataset (name matched case-insensitively), when it covers every
   class, origin ``dataset``;
3. else the first shipped set (sorted by name) that covers every class, origin ``covering``;
4. else :class:`~sept.neighbors.errors.MissingNeighborsError` naming the classes.

The result records the set's name, its origin and the hash of the phrases it gives these classes,
so a run's config and results say exactly which set was used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sept.neighbors.errors import MissingNeighborsError
from sept.neighbors.schema import NeighborSet
from sept.utils.hashing import hash_json

Origin = Literal["requested", "dataset", "covering"]


@dataclass(frozen=True)
class ResolvedNeighbors:
    """The set (``name`` as ``sept.neighbors`` takes it), how it was chosen, and {class: phrases}."""

    name: str
    origin: Origin
    by_class: dict[str, list[str]]
    neighbor_set: NeighborSet

    @property
    def hash(self) -> str:
        """Content hash of the phrases per class (changes when an edited file changes them)."""
        return hash_json(self.by_class)[:16]

    def record(self) -> dict[str, Any]:
        """What runs record: name, origin and hash."""
        return {"name": self.name, "origin": self.origin, "hash": self.hash}


def resolve_neighbors(
    classes: Sequence[str], requested: str | os.PathLike[str] | None = None, dataset: str | None = None
) -> ResolvedNeighbors:
    """The neighbour set for ``classes`` under the rule of the module doc."""
    from sept.neighbors.store import list_shipped, load_neighbors, load_shipped, neighbors_for

    classes = list(classes)
    if requested:
        target = os.fspath(requested)
        if "{dataset}" in target:
            if not dataset:
                raise MissingNeighborsError(
                    f"sept.neighbors {target!r} names {{dataset}} but the run has no dataset"
                )
            target = target.replace("{dataset}", dataset)
        ns = load_neighbors(target)
        return ResolvedNeighbors(target, "requested", neighbors_for(classes, ns), ns)
    shipped = list_shipped()
    if dataset:
        own = next((n for n in shipped if n.lower() == dataset.lower()), None)
        if own is not None:
            ns = load_shipped(own)
            try:
                return ResolvedNeighbors(own, "dataset", neighbors_for(classes, ns), ns)
            except MissingNeighborsError:
                pass
    for name in shipped:
        ns = load_shipped(name)
        try:
            return ResolvedNeighbors(name, "covering", neighbors_for(classes, ns), ns)
        except MissingNeighborsError:
            continue
    raise MissingNeighborsError(
        f"no shipped neighbour set covers the classes {', '.join(classes)}; generate one with "
        "`sept neighbors generate` and pass it as sept.neighbors=FILE"
    )
