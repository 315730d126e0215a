"""Read every ``results.json`` under a run root into flat :class:`RunRecord` rows.

A run's numbers are its ``summary``: base-to-new ``base``, ``new``, ``h``; few-shot
``accuracy``, ``macro_f1``; cross-dataset ``source``, ``mean_target`` and one
``target:<dataset>`` per target; and, when the run recorded it, the semantic-structure
``retention`` of its prompt (:mod:`sept.analysis.structure`). Folders the sweep keeps beside the runs (``manifests``,
``bench``, ``report``, hidden ones) are not searched.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sept.errors import DataError

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
_NOT_RUNS = {"manifests", "bench", "report", "logs"}

#: the summary numbers of each protocol, in table order
METRICS: dict[str, tuple[str, ...]] = {
    "base2new": ("base", "new", "h"),
    "fewshot": ("accuracy", "macro_f1"),
    "xd": ("source", "mean_target"),
}


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

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())


#: the evaluated parts of each protocol's results (each holds ``num_skipped``)
_EVALUATED = {"base2new": ("base", "new"), "fewshot": ("test",), "xd": ("source",)}


def _skipped(protocol: str, data: dict[str, Any]) -> dict[str, int]:
    parts = {"train": data.get("train")}
    parts.update({name: data.get(name) for name in _EVALUATED[protocol]})
    if protocol == "xd":
        parts.update({f"target:{t}": m for t, m in (data.get("targets") or {}).items()})
    counts = {name: int((part or {}).get("num_skipped") or 0) for name, part in parts.items()}
    return {name: n for name, n in counts.items() if n}


def _metrics(protocol: str, data: dict[str, Any]) -> dict[str, float]:
    summary = data["summary"]
    out = {k: float(summary[k]) for k in METRICS[protocol]}
    retention = (data.get("semantic_structure") or {}).get("all", {}).get("retention")
    if retention is not None:  # recorded by runs whose classes have a neighbour set
        out["retention"] = float(retention)
    if protocol == "xd":
        out.update({f"target:{name}": float(v) for name, v in summary.get("targets", {}).items()})
    return out


def read_record(path: str | os.PathLike[str]) -> RunRecord:
    """One ``results.json``; :class:`DataError` names the file and the missing field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read results {str(path)!r}: {exc}") from exc
    try:
        protocol = data["protocol"]
        if protocol not in METRICS:
            raise DataError(f"results {str(path)!r}: unknown protocol {protocol!r}")
        return RunRecord(
            protocol=protocol,
            dataset=str(data["dataset"]),
            fold=data["fold"],
            method=str(data["method"]),
            shots=int(data["shots"]),
            seed=int(data["seed"]),
            backbone=str(data.get("backbone", "?")),
            metrics=_metrics(protocol, data),
            path=path,
            skipped=_skipped(protocol, data),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"results {str(path)!r} lack a field or hold a bad value: {type(exc).__name__}: {exc}"
        ) from exc


def find_results(run_root: str | os.PathLike[str]) -> list[Path]:
    """Every ``results.json`` under ``run_root`` (sorted), outside the sweep's own folders."""
    root = Path(run_root)
    if not root.is_dir():
        raise DataError(f"run root {str(root)!r} is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _NOT_RUNS)
        if RESULTS_FILE in filenames:
            found.append(Path(dirpath) / RESULTS_FILE)
    return sorted(found)


def collect(paths: Iterable[str | os.PathLike[str]]) -> list[RunRecord]:
    """Records of the given ``results.json`` files; unreadable ones are logged and left out."""
    records = []
    for path in paths:
        try:
            records.append(read_record(path))
        except DataError as exc:
            log.warning("%s (left out of the report)", exc)
    return records


def collect_run_root(run_root: str | os.PathLike[str]) -> list[RunRecord]:
    """Records of every finished run under ``run_root``."""
    return collect(find_results(run_root))
