"""The results of one run: a typed, versioned schema, checked when read.

A results file is a JSON object. Every protocol writes

    format       "sept-results/2"
    protocol     fewshot | base2new | xd
    dataset      the dataset's display name;  dataset_id  its identity (sept.runs.identity)
    fold, shots, seed
    method       the method (coop+sept);  variant  {name, label, options, family, reference}
    backbone, backbone_identity, logit_scale, config (the resolved config), neighbor_set
    train        the training summary (clips, history, seconds, manifest, ...)
    summary      the protocol's summary numbers (:data:`METRICS`), in %
    warnings     loud warnings about the data, also printed when the run ran

and per protocol: ``base``/``new`` metrics with ``base_classes``/``new_classes`` (base2new),
``test`` (fewshot), ``source``/``targets`` (xd). Files of format ``sept-results/1`` (no
``dataset_id``, no ``variant``) are read as the same run with the method as its variant.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sept.errors import DataError
from sept.runs.layout import RunKey

PROTOCOLS = ("fewshot", "base2new", "xd")
RESULTS_FORMAT = "sept-results/2"
_OLDER_FORMATS = ("sept-results/1",)

#: the summary numbers of each protocol, in table order
METRICS: dict[str, tuple[str, ...]] = {
    "base2new": ("base", "new", "h"),
    "fewshot": ("accuracy", "macro_f1"),
    "xd": ("source", "mean_target"),
}
#: the evaluated parts of each protocol's results (each a metrics mapping with ``accuracy``)
EVALUATED: dict[str, tuple[str, ...]] = {"base2new": ("base", "new"), "fewshot": ("test",), "xd": ("source",)}
_EXTRA_KEYS = {"base2new": ("base_classes", "new_classes"), "fewshot": (), "xd": ("targets",)}


class DamagedResultsError(DataError):
    """A results file that cannot be read or does not follow the schema (its path is in the message)."""


@dataclass(frozen=True)
class RunResults:
    """A validated results mapping (``data``) and where it was read from."""

    data: dict[str, Any]
    path: Path | None = None

    # ---- identity ---------------------------------------------------------------------------
    @property
    def key(self) -> RunKey:
        """Where the run sits (:func:`sept.runs.layout.run_dir` of it is its folder)."""
        return RunKey(self.protocol, self.dataset_id, self.fold, self.variant_name, self.shots, self.seed)

    @property
    def protocol(self) -> str:
        return str(self.data["protocol"])

    @property
    def dataset(self) -> str:
        return str(self.data["dataset"])

    @property
    def dataset_id(self) -> str:
        return str(self.data["dataset_id"])

    @property
    def fold(self) -> int | None:
        return self.data["fold"]

    @property
    def method(self) -> str:
        return str(self.data["method"])

    @property
    def variant(self) -> dict[str, Any]:
        return dict(self.data["variant"])

    @property
    def variant_name(self) -> str:
        return str(self.data["variant"]["name"])

    @property
    def shots(self) -> int:
        return int(self.data["shots"])

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def backbone(self) -> str:
        return str(self.data.get("backbone", "?"))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.data["config"])

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.data["summary"])

    @property
    def warnings(self) -> list[str]:
        return [str(w) for w in self.data.get("warnings") or []]

    @property
    def neighbor_set(self) -> dict[str, Any] | None:
        return self.data.get("neighbor_set")

    @property
    def seconds(self) -> float | None:
        """Training time of the run in seconds (None when it did not train)."""
        value = (self.data.get("train") or {}).get("seconds")
        return float(value) if isinstance(value, int | float) else None

    # ---- numbers ----------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """The summary numbers (:data:`METRICS`), the semantic-structure ``retention`` when recorded,
        and for xd one ``target:<dataset>`` per target."""
        summary = self.data["summary"]
        out = {k: float(summary[k]) for k in METRICS[self.protocol]}
        retention = (self.data.get("semantic_structure") or {}).get("all", {}).get("retention")
        if retention is not None:
            out["retention"] = float(retention)
        if self.protocol == "xd":
            out.update({f"target:{name}": float(v) for name, v in summary.get("targets", {}).items()})
        return out

    def skipped(self) -> dict[str, int]:
        """Undecodable files left out, by part (``train``, ``base``, ``target:<name>`` ...); only parts
        that left some out."""
        parts = {"train": self.data.get("train")}
        parts.update({name: self.data.get(name) for name in EVALUATED[self.protocol]})
        if self.protocol == "xd":
            parts.update({f"target:{t}": m for t, m in (self.data.get("targets") or {}).items()})
        counts = {name: int((part or {}).get("num_skipped") or 0) for name, part in parts.items()}
        return {name: n for name, n in counts.items() if n}

    def notes(self) -> list[str]:
        """Notes of every evaluated part (e.g. PALM's fallback to the class name on unseen classes)."""
        parts = [self.data.get(n) for n in EVALUATED[self.protocol]]
        parts += list((self.data.get("targets") or {}).values())
        return list(dict.fromkeys(n for p in parts if isinstance(p, dict) for n in p.get("notes") or []))


def _fail(source: str, message: str) -> DamagedResultsError:
    return DamagedResultsError(f"results {source!r}: {message}")


def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    if key not in data:
        raise _fail(source, f"missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise _fail(source, f"field {key!r} holds {type(value).__name__} {str(value)[:40]!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _number(value: Any, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(source, f"{where} is not a finite number: {value!r}")
    return float(value)


def validate_results(data: Any, source: str = "<results>") -> RunResults:
    """Check ``data`` against the schema (upgrading older formats); :class:`DamagedResultsError`
    names the field at fault."""
    if not isinstance(data, dict):
        raise _fail(source, f"expected a JSON object, got {type(data).__name__}")
    data = dict(data)
    fmt = data.get("format")
    if fmt in _OLDER_FORMATS:
        data.setdefault("dataset_id", data.get("dataset"))
        data.setdefault("variant", {"name": data.get("method"), "label": None, "options": {}})
        data["format"] = RESULTS_FORMAT
    elif fmt != RESULTS_FORMAT:
        raise _fail(source, f"unknown format {fmt!r} (this sept reads {RESULTS_FORMAT})")
    protocol = _need(data, "protocol", str, source)
    if protocol not in PROTOCOLS:
        raise _fail(source, f"unknown protocol {protocol!r}")
    for key in ("dataset", "dataset_id", "method", "backbone"):
        _need(data, key, str, source)
    for key in ("shots", "seed"):
        _need(data, key, int, source)
    if "fold" not in data or not (data["fold"] is None or isinstance(data["fold"], int)):
        raise _fail(source, "field 'fold' must be an integer or null")
    variant = _need(data, "variant", dict, source)
    if not isinstance(variant.get("name"), str):
        raise _fail(source, "field 'variant' has no name")
    for key in ("config", "train", "summary"):
        _need(data, key, dict, source)
    for key in METRICS[protocol]:
        _number(data["summary"].get(key), f"summary.{key}", source)
    for part in EVALUATED[protocol]:
        metrics = _need(data, part, dict, source)
        _number(metrics.get("accuracy"), f"{part}.accuracy", source)
    for key in _EXTRA_KEYS[protocol]:
        _need(data, key, (list, dict), source)
    if protocol == "xd":
        for name, metrics in data["targets"].items():
            if not isinstance(metrics, dict):
                raise _fail(source, f"targets.{name} is not a mapping")
            _number(metrics.get("accuracy"), f"targets.{name}.accuracy", source)
    if not isinstance(data.get("warnings", []), list):
        raise _fail(source, "field 'warnings' must be a list")
    return RunResults(data, Path(source) if source != "<results>" else None)


def read_results(path: str | os.PathLike[str]) -> RunResults:
    """Read and validate one results file; :class:`DamagedResultsError` names it when it is
    unreadable, truncated, not UTF-8 or off the schema."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise DamagedResultsError(f"cannot read results {str(path)!r}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedResultsError(f"results {str(path)!r} are damaged (not valid UTF-8 JSON): {exc}") from exc
    return validate_results(data, str(path))


def describe_summary(protocol: str, summary: Mapping[str, Any]) -> str:
    """One line of a run's summary numbers (Base/New/H, accuracy/macro-F1, or source/targets)."""
    if protocol == "base2new":
        return f"Base {summary['base']:6.2f}  New {summary['new']:6.2f}  H {summary['h']:6.2f}"
    if protocol == "xd":
        n = len(summary.get("targets", {}))
        return f"source {summary['source']:6.2f}  targets {summary['mean_target']:6.2f} (mean of {n})"
    return f"accuracy {summary['accuracy']:6.2f}  macro-F1 {summary['macro_f1']:6.2f}"
