"""Typed option dataclasses: documented defaults, range checks, building from plain dicts.

Every component (and the trainer) declares its options as a dataclass whose fields are made with
:func:`option`, so the default, its documentation and its valid range sit on one line. Values
from YAML or ``--set key=value`` are checked against the field's type and range by
:func:`options_from_dict`, which raises :class:`ConfigError` naming the field and the value.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union

from sept.errors import ConfigError


def option(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field with a doc string and an optional range (``gt``/``ge``/``le``).

    For mutable defaults use ``dataclasses.field(default_factory=..., metadata={"doc": ...})``.
    """
    meta = {"doc": doc, "gt": gt, "ge": ge, "le": le}
    return dataclasses.field(default=default, metadata=meta)


def describe_options(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, doc) for each field of an options dataclass."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, default, f.metadata.get("doc", "")))
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked (and int->float widened) against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _check_range(value: Any, meta: typing.Mapping[str, Any], where: str) -> None:
    if value is None or isinstance(value, (bool, str, list, dict)):
        return
    if isinstance(value, float) and not math.isfinite(value):  # YAML reads .nan / .inf as floats
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if meta.get("gt") is not None and not value > meta["gt"]:
        raise ConfigError(f"{where} must be > {meta['gt']}, got {value!r}")
    if meta.get("ge") is not None and not value >= meta["ge"]:
        raise ConfigError(f"{where} must be >= {meta['ge']}, got {value!r}")
    if meta.get("le") is not None and not value <= meta["le"]:
        raise ConfigError(f"{where} must be <= {meta['le']}, got {value!r}")


def options_from_dict(cls: type, data: typing.Mapping[str, Any] | None, section: str) -> Any:
    """Build ``cls`` from ``data`` (missing keys take defaults), checking names, types and ranges.

    ``section`` prefixes field names in error messages (e.g. ``"optim"`` -> ``"optim.lr"``).
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{section}." if section else ""
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid options{f' of {section!r}' if section else ''}: {', '.join(names) or '(none)'}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        where = prefix + f.name
        value = _coerce(data[f.name], hints[f.name], where)
        _check_range(value, f.metadata, where)
        kwargs[f.name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(section)
    return obj


def options_to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-able dict of an options dataclass."""
    return dataclasses.asdict(obj)
