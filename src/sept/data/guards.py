"""Guard rails: inputs that would give a silently wrong number in a run or an evaluation.

``sept data check`` reports every problem of a dataset; these checks run on every strict load
(:meth:`sept.data.dataset.Dataset.split`), in the protocols and in ``sept eval`` / ``sept predict``,
and refuse, with one :class:`~sept.errors.DataError` naming the files, what would otherwise
be reported as a result:

- :func:`check_clips`: a file listed twice in one list (counted twice, or under two labels);
- :func:`check_split`: the same, for the train and the test list, plus test files that are
  train files (a leak: a run would score its own training clips);
- :func:`check_test_classes`: a test class the train list lacks (checked before a run);
- :func:`check_base_new`: base-to-new with fewer than 2 classes on a side (one class is 100%
  accuracy by construction, so "H 100.00");
- :func:`check_evaluated`: an evaluation in which every file was skipped (accuracy 0 over no clip).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sept.errors import DataError

if TYPE_CHECKING:
    from sept.data.clips import Clip
    from sept.data.dataset import Split

#: how many offending files an error message names before "and N more"
_SHOWN = 5


def _key(clip: Clip) -> str:
    return os.path.normpath(os.path.abspath(clip.path))


def _listing(items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def check_clips(clips: Sequence[Clip], source: str, where: str = "") -> None:
    """Refuse a file listed more than once in ``clips`` (same label or two labels).

    ``source`` names the list (a CSV or folder), ``where`` the dataset and fold for the message.
    """
    groups: dict[str, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(_key(clip), []).append(clip)
    dups = [g for g in groups.values() if len(g) > 1]
    if not dups:
        return
    labelled_twice = sum(len({c.classname for c in g}) > 1 for g in dups)
    listing = _listing(
        [f"{g[0].relpath!r} x{len(g)} ({', '.join(sorted({c.classname for c in g}))})" for g in dups]
    )
    two = f", {labelled_twice} of them under two or more classes" if labelled_twice else ""
    raise DataError(
        f"{where + ': ' if where else ''}{len(dups)} path(s) listed more than once in {source}{two}: "
        f"{listing}; each would count as a separate clip. Remove the duplicates "
        "(`sept data check` lists every problem)"
    )


def check_split(split: Split) -> None:
    """Refuse duplicates in either list and test files that are train files."""
    where = f"dataset {split.dataset!r}" + (f" fold {split.fold}" if split.fold is not None else "")
    check_clips(split.train, split.train_source, where)
    check_clips(split.test, split.test_source, where)
    train_paths = {_key(c) for c in split.train}
    leaked = [c.relpath for c in split.test if _key(c) in train_paths]
    if leaked:
        same = (
            " (the test list is the train list)" if len(leaked) == len(split.test) == len(split.train) else ""
        )
        raise DataError(
            f"{where}: {len(leaked)} of {len(split.test)} test file(s) are also train files{same}: "
            f"{_listing([repr(r) for r in leaked])}; a model would be tested on clips it was trained on. "
            "Give a test list disjoint from the train list (or --test-fraction F to hold clips out)"
        )


def check_test_classes(split: Split) -> None:
    """Refuse a test class that the train list lacks (a run could not label its clips)."""
    where = f"dataset {split.dataset!r}" + (f" fold {split.fold}" if split.fold is not None else "")
    known = set(split.classnames)
    unknown = sorted({c.classname for c in split.test if c.classname not in known})
    if unknown:
        raise DataError(
            f"{where}: the test list {split.test_source} has class(es) {', '.join(map(repr, unknown))} that the "
            f"train list {split.train_source} lacks (train classes: {', '.join(split.classnames)})"
        )


def check_base_new(base: Sequence[str], new: Sequence[str], dataset: str) -> None:
    """Refuse a base/new split with fewer than 2 classes on a side (its accuracy would be 100% by construction)."""
    if len(base) >= 2 and len(new) >= 2:
        return
    n = len(base) + len(new)
    raise DataError(
        f"dataset {dataset!r} has {n} class(es) (base: {', '.join(base) or 'none'}; new: "
        f"{', '.join(new) or 'none'}): base-to-new needs at least 2 classes on each side, so at least 4 "
        "classes; with one class a side scores 100% whatever the model does"
    )


def check_evaluated(n_kept: int, skipped: Sequence[tuple[Clip, str]], what: str) -> None:
    """Refuse an evaluation of ``what`` in which no clip could be used (every file skipped, or none given)."""
    if n_kept:
        return
    if not skipped:
        raise DataError(f"{what}: there is no clip to evaluate")
    reasons = _listing([f"{str(c.path)!r}: {r}" for c, r in skipped])
    raise DataError(
        f"{what}: every one of the {len(skipped)} file(s) was skipped as undecodable, so there is no "
        f"accuracy to report ({reasons})"
    )
