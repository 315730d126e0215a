"""The neighbour-set file: a dataclass, its JSON schema checks, and validated atomic load/save.

File layout (``schema_version`` 1; see ``README.md`` beside this module)::

    {"schema_version": 1,
     "dataset": "ESC50",                       # or null for a user-made set
     "provenance": {"source": "authored" | "llm" | "hf" | "wordnet",
                    "model": "...", "prompt": "...", "date": "YYYY-MM-DD", "notes": "..."},
     "classes": {"<raw class name>": ["phrase", ...], ...}}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sept.neighbors.errors import NeighborFileError
from sept.neighbors.validate import DEFAULT_RULES, Rules, check_classes
from sept.utils.atomic import atomic_write_text

SCHEMA_VERSION = 1
SOURCES = ("authored", "llm", "hf", "wordnet")
_TOP_KEYS = {"schema_version", "dataset", "provenance", "classes"}
_PROV_KEYS = {"source", "model", "prompt", "date", "notes"}


@dataclass(frozen=True)
class Provenance:
    """Where the phrases come from: enough to reproduce or audit them without rerunning the source."""

    source: str
    model: str | None = None
    prompt: str | None = None
    date: str | None = None
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model": self.model,
            "prompt": self.prompt,
            "date": self.date,
            "notes": self.notes,
        }


def today() -> str:
    """Today's UTC date as ``YYYY-MM-DD`` (the provenance date)."""
    return _dt.datetime.now(_dt.timezone.utc).date().isoformat()


@dataclass
class NeighborSet:
    """Neighbour phrases per raw class name, with their provenance.

    ``origin`` says where the set was read from (a path or ``shipped:<dataset>``) for error messages.
    """

    classes: dict[str, list[str]]
    provenance: Provenance
    dataset: str | None = None
    schema_version: int = SCHEMA_VERSION
    origin: str = field(default="<memory>", compare=False, repr=False)

    @property
    def classnames(self) -> list[str]:
        return list(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "dataset": self.dataset,
            "provenance": self.provenance.to_dict(),
            "classes": {c: list(p) for c, p in self.classes.items()},
        }

    def problems(self, rules: Rules = DEFAULT_RULES, min_per_class: int = 1) -> list[str]:
        """Every schema or phrase-rule violation, as readable messages (empty when valid)."""
        return structure_problems(self.to_dict()) or check_classes(self.classes, rules, min_per_class)

    def check(self, rules: Rules = DEFAULT_RULES, min_per_class: int = 1) -> NeighborSet:
        """Raise :class:`NeighborFileError` listing every problem; return ``self`` when valid."""
        problems = self.problems(rules, min_per_class)
        if problems:
            raise NeighborFileError(_format(self.origin, problems))
        return self

    @classmethod
    def from_dict(cls, obj: Any, origin: str = "<memory>", rules: Rules = DEFAULT_RULES) -> NeighborSet:
        """Build and validate a set from parsed JSON; raises :class:`NeighborFileError`."""
        problems = structure_problems(obj)
        if problems:
            raise NeighborFileError(_format(origin, problems))
        prov = obj["provenance"]
        ns = cls(
            classes={c: list(p) for c, p in obj["classes"].items()},
            provenance=Provenance(**{k: prov.get(k) for k in _PROV_KEYS}),
            dataset=obj.get("dataset"),
            schema_version=obj["schema_version"],
            origin=origin,
        )
        return ns.check(rules)


def structure_problems(obj: Any) -> list[str]:
    """Schema violations of a parsed neighbour file (types, keys, version), as messages."""
    if not isinstance(obj, dict):
        return [f"top level must be a JSON object, not {type(obj).__name__}"]
    problems = [
        f"unknown field {k!r} (known: {', '.join(sorted(_TOP_KEYS))})" for k in obj if k not in _TOP_KEYS
    ]
    problems += [f"missing field {k!r}" for k in ("schema_version", "provenance", "classes") if k not in obj]
    version = obj.get("schema_version")
    if "schema_version" in obj and version != SCHEMA_VERSION:
        problems.append(f"field 'schema_version' is {version!r}; this sept reads version {SCHEMA_VERSION}")
    if obj.get("dataset") is not None and not isinstance(obj.get("dataset"), str):
        problems.append("field 'dataset' must be a string or null")
    prov = obj.get("provenance")
    if "provenance" in obj:
        if not isinstance(prov, dict):
            problems.append("field 'provenance' must be an object")
        else:
            problems += [f"unknown field 'provenance.{k}'" for k in prov if k not in _PROV_KEYS]
            if prov.get("source") not in SOURCES:
                problems.append(
                    f"field 'provenance.source' is {prov.get('source')!r}; expected one of {SOURCES}"
                )
            for k in ("model", "prompt", "date", "notes"):
                if prov.get(k) is not None and not isinstance(prov.get(k), str):
                    problems.append(f"field 'provenance.{k}' must be a string or null")
            if isinstance(prov.get("date"), str):
                try:
                    _dt.date.fromisoformat(prov["date"])
                except ValueError:
                    problems.append(f"field 'provenance.date' is {prov['date']!r}, not a YYYY-MM-DD date")
    classes = obj.get("classes")
    if "classes" in obj:
        if not isinstance(classes, dict) or not classes:
            problems.append("field 'classes' must be a non-empty object {classname: [phrase, ...]}")
        else:
            for name, phrases in classes.items():
                if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
                    problems.append(f"field 'classes.{name}' must be a list of strings")
    return problems


def read_neighbor_file(path: str | os.PathLike[str], rules: Rules = DEFAULT_RULES) -> NeighborSet:
    """Read and validate a neighbour file; errors name the file and every problem found."""
    path = Path(path)
    return NeighborSet.from_dict(read_json(path), origin=str(path), rules=rules)


def read_json(path: Path) -> Any:
    """Parsed JSON of ``path``; a missing or malformed file raises :class:`NeighborFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NeighborFileError(f"cannot read neighbour file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise NeighborFileError(
            f"neighbour file {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NeighborFileError(
            f"neighbour file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise NeighborFileError(
            f"neighbour file {str(path)!r} is nested too deeply (a neighbour file is an object of lists)"
        ) from None


def write_neighbor_file(ns: NeighborSet, path: str | os.PathLike[str], rules: Rules = DEFAULT_RULES) -> Path:
    """Validate ``ns`` and write it atomically; an invalid set raises and leaves ``path`` untouched."""
    ns.check(rules)
    text = json.dumps(ns.to_dict(), indent=2, ensure_ascii=False)  # field order kept, classes in set order
    return atomic_write_text(path, text + "\n")


def _format(origin: str, problems: list[str], limit: int = 20) -> str:
    shown = "\n  - ".join(problems[:limit])
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"invalid neighbour set {origin!r} ({len(problems)} problem(s)):\n  - {shown}{more}"
