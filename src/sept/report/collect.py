"""Read every finished run under a run root into flat :class:`RunRecord` rows.

Runs are read through :mod:`sept.runs` (layout and schema): a run's numbers are the summary
metrics of its protocol (:data:`sept.runs.schema.METRICS`), the semantic-structure ``retention``
when the run recorded it, and for cross-dataset one ``target:<dataset>`` per target. A run's
``method`` in the report is its variant (``coop+sept@lam2``); its ``dataset`` is the dataset's
display name, or its id when two different datasets share a display name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sept.errors import DataError
from sept.runs.layout import iter_result_files
from sept.runs.schema import METRICS, DamagedResultsError, RunResults, read_results
from sept.runs.store import prompt_problem

log = logging.getLogger(__name__)

__all__ = ["METRICS", "RunRecord", "collect", "collect_run_root", "find_results", "read_record"]


@dataclass(frozen=True)
class RunRecord:
    """One finished run: where it sits in the grid and its summary numbers (percentages)."""

    protocol: str
    dataset: str
    fold: int | None
    method: str
    shots: int
    seed: int
    backbone: str
    metrics: dict[str, float] = field(hash=False)
    path: Path = field(hash=False, compare=False)
    #: undecodable files the run left out, by part ("train", "test", "base", "new", "source",
    #: "target:<dataset>"); only parts that left some out
    skipped: dict[str, int] = field(default_factory=dict, hash=False, compare=False)
    dataset_id: str = field(default="", compare=False)
    #: the variant: {name, label, options, family, reference}
    variant: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    seconds: float | None = field(default=None, hash=False, compare=False)
    notes: tuple[str, ...] = field(default=(), hash=False, compare=False)
    warnings: tuple[str, ...] = field(default=(), hash=False, compare=False)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def base_method(self) -> str:
        """The method without its variant label (``coop+sept@lam2`` -> ``coop+sept``)."""
        return self.method.split("@", 1)[0]


def record_of(results: RunResults) -> RunRecord:
    """The report row of one run's validated results."""
    return RunRecord(
        protocol=results.protocol,
        dataset=results.dataset,
        fold=results.fold,
        method=results.variant_name,
        shots=results.shots,
        seed=results.seed,
        backbone=results.backbone,
        metrics=results.metrics(),
        path=results.path or Path("."),
        skipped=results.skipped(),
        dataset_id=results.dataset_id,
        variant=results.variant,
        seconds=results.seconds,
        notes=tuple(results.notes()),
        warnings=tuple(results.warnings),
    )


def read_record(path: str | os.PathLike[str]) -> RunRecord:
    """One run's results file; :class:`DataError` names the file and what is wrong (a damaged
    prompt file of the run included)."""
    results = read_results(path)
    problem = prompt_problem(Path(path).parent)
    if problem is not None:
        raise DamagedResultsError(f"run {str(Path(path).parent)!r}: {problem}")
    return record_of(results)


def find_results(run_root: str | os.PathLike[str]) -> list[Path]:
    """Every finished run's results file under ``run_root`` (sorted), outside the sweep's own folders."""
    root = Path(run_root)
    if not root.is_dir():
        raise DataError(f"run root {str(root)!r} is not a folder")
    return sorted(iter_result_files(root))


def _display_names(records: list[RunRecord]) -> list[RunRecord]:
    """Records whose display name is shared by two dataset ids show the id instead."""
    ids: dict[str, set[str]] = {}
    for r in records:
        ids.setdefault(r.dataset, set()).add(r.dataset_id)
    return [replace(r, dataset=r.dataset_id) if len(ids[r.dataset]) > 1 else r for r in records]


def collect(paths: Iterable[str | os.PathLike[str]]) -> list[RunRecord]:
    """Records of the given results files; damaged ones are logged (with their path) and left out."""
    records = []
    for path in paths:
        try:
            records.append(read_record(path))
        except DataError as exc:
            log.warning("%s (left out of the report)", exc)
    return _display_names(records)


def collect_run_root(run_root: str | os.PathLike[str]) -> list[RunRecord]:
    """Records of every finished run under ``run_root``."""
    return collect(find_results(run_root))
