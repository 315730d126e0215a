"""A benchmark grid from YAML: datasets x folds x protocols x methods x shots x seeds.

The file (every key but ``datasets`` and ``methods`` optional)::

    run_root: runs/demo                  # folder of run folders (`sept bench --run-root` wins)
    backbone: yamnet-minilm              # or {name: clap, options: {model: laion/clap-htsat-unfused}}
    cache_dir: null                      # feature cache (default $SEPT_CACHE_DIR or ~/.cache/sept)
    on_bad_audio: skip                   # skip undecodable files (counted in results) or fail the cell
    protocols: [base2new]                # fewshot, base2new, xd (`protocol: base2new` also works)
    datasets:
      - name: us8k-mini                  # a registered dataset (`sept data list`)...
        root: data/us8k-mini             # ...read from root (default $SEPT_DATA_ROOT/<Name>)
        folds: default                   # this dataset's folds (else the grid's `folds`)
      - data: my_clips.csv               # or your own CSV path,classname[,fold] / folder per class
        test: my_test.csv                # optional test list of your own data
        name: mine                       # optional display name of your data (default: the stem)
        set: [sept.neighbors=mine.json]  # options for this dataset's runs (where a method has them)
    folds: all                           # all | default (the dataset's default fold) | [1, 2]
    methods: [zeroshot, coop, coop+sept, {name: kgcoop+sept, set: [sept.weight=2]}, coop+sept@lam2]
    variants:                            # named variants of a method: coop+sept@lam2 is coop+sept with
      coop+sept@lam2: {set: [sept.weight=2], family: lambda}   # these options; `family` groups
      # ablations (one report table each, deltas against `reference`, default the plain method)
    shots: [16]
    seeds: [0, 1, 2]
    with_replacement: false              # allow classes with fewer train clips than shots
    config: {optim: {epochs: 50}}        # config sections as `sept run --config` takes them
    config_file: null                    # ...or such a YAML file (not both)
    overrides: [optim.lr=0.002]          # `--set key=value` for every method
    xd: {sources: [ESC50], targets: null}  # xd: sources among the datasets; targets default to the others
                                         # (a target's test data: its `folds: [K]`, else every test fold
                                         # of a registered dataset; a CSV with folds must name K)
    executor: {kind: local, workers: null, threads: 1, address: null, num_cpus: 1, num_gpus: 0}

Relative paths are relative to the current directory, as on the command line; ``$VAR`` and
``~`` are expanded. Keys of ``config`` / ``config_file``, ``overrides`` and a dataset's ``set``
are aimed: they apply to the methods that have the component (one file serves the whole grid; a
key no method has is an error); a method's or variant's own ``set`` must apply to it. Every cell is
one (protocol, dataset, fold, variant, shots, seed) run; its folder is named by
:mod:`sept.runs.identity`, so variants and datasets never share one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.data.sampling import MAX_SEED
from sept.errors import ConfigError
from sept.runs.schema import PROTOCOLS

if TYPE_CHECKING:
    from sept.data.dataset import Dataset

EXECUTORS = ("local", "serial", "ray")
_TOP_KEYS = {
    "name",
    "run_root",
    "backbone",
    "cache_dir",
    "on_bad_audio",
    "protocol",
    "protocols",
    "datasets",
    "folds",
    "methods",
    "shots",
    "seeds",
    "with_replacement",
    "config",
    "config_file",
    "overrides",
    "xd",
    "executor",
    "variants",
}


def expand_path(text: str | os.PathLike[str]) -> str:
    """``$VAR`` and ``~`` expanded; relative paths stay relative (to the current directory)."""
    return os.path.expanduser(os.path.expandvars(os.fspath(text)))


@dataclass(frozen=True)
class DatasetRef:
    """How to open one dataset of the grid: a registered ``name`` (with ``root``) or ``data`` (a path).

    ``folds``: None (the grid's setting), "all", "default" or a tuple of fold numbers.
    """

    name: str | None = None
    root: str | None = None
    data: str | None = None
    test: str | None = None
    folds: str | tuple[int, ...] | None = None
    overrides: tuple[str, ...] = ()

    def open(self) -> Dataset:
        """The dataset; explicit ``folds`` also name its test folds when it is an xd target."""
        from sept.data.registry import open_dataset

        if self.data:
            ds = open_dataset(self.data, self.root, test=self.test, name=self.name)
        else:
            ds = open_dataset(self.name or "", self.root)
        if isinstance(self.folds, tuple):
            ds.target_folds = self.folds
        return ds

    @property
    def label(self) -> str:
        return self.name or self.data or "?"


@dataclass(frozen=True)
class MethodEntry:
    """A method (``coop+sept``) or a named variant of one (``label``: ``lam2`` of ``coop+sept@lam2``)
    with its own ``--set`` overrides, its ablation ``family`` and the ``reference`` it is compared with."""

    name: str
    overrides: tuple[str, ...] = ()
    label: str | None = None
    family: str | None = None
    reference: str | None = None

    @property
    def variant(self) -> Any:  # -> sept.runs.identity.VariantSpec
        from sept.runs.identity import VariantSpec

        return VariantSpec(self.label, self.family, self.reference)

    @property
    def display(self) -> str:
        return f"{self.name}@{self.label}" if self.label else self.name


@dataclass(frozen=True)
class ExecutorSettings:
    """Where cells run. ``workers``/``threads`` for local; ``address``, ``num_cpus``, ``num_gpus`` for Ray."""

    kind: str = "local"
    workers: int | None = None
    threads: int = 1
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    pre_embed: bool = True
    ray_init: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridSpec:
    """A validated grid; :func:`sept.bench.cells.expand` turns it into cells."""

    source: str
    run_root: str
    datasets: tuple[DatasetRef, ...]
    methods: tuple[MethodEntry, ...]
    protocols: tuple[str, ...] = ("base2new",)
    backbone: str | None = None
    backbone_options: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    on_bad_audio: str = "skip"
    folds: str | tuple[int, ...] = "all"
    shots: tuple[int, ...] = (16,)
    seeds: tuple[int, ...] = (0, 1, 2)
    with_replacement: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    overrides: tuple[str, ...] = ()
    xd_sources: tuple[str, ...] | None = None
    xd_targets: tuple[DatasetRef, ...] | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    name: str = "grid"

    def with_changes(self, **changes: Any) -> GridSpec:
        """A copy with some fields replaced (command-line flags over the file)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# ---- parsing --------------------------------------------------------------------------------
def _err(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"grid {source!r}: {where}: {message}")


def _int_list(
    value: Any, source: str, where: str, minimum: int, maximum: int | None = None
) -> tuple[int, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    top = float("inf") if maximum is None else maximum
    if not items or not all(
        isinstance(v, int) and not isinstance(v, bool) and minimum <= v <= top for v in items
    ):
        within = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise _err(source, where, f"expected an integer {within} or a non-empty list of them, got {value!r}")
    return tuple(dict.fromkeys(items))


def _check_backbone_options(backbone: str, options: Mapping[str, Any], source: str) -> None:
    """Refuse, before any cell runs, an option the backbone does not take (listing those it does)."""
    from sept.backbones.registry import check_backbone_options

    check_backbone_options(backbone, options, f"grid {source!r}: backbone.options")


def _bool(value: Any, source: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise _err(source, where, f"expected true or false (unquoted), got {value!r}")
    return value


def _folds(value: Any, source: str, where: str) -> str | tuple[int, ...]:
    if value in ("all", "default"):
        return value
    return _int_list(value, source, where, 0)


def _strings(value: Any, source: str, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise _err(source, where, f"expected a string or a list of strings, got {value!r}")
    return tuple(v.strip() for v in items)


def _mapping(value: Any, source: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _err(source, where, f"expected a mapping, got {type(value).__name__}")
    return dict(value)


def _dataset(item: Any, source: str, where: str) -> DatasetRef:
    if isinstance(item, str):
        return DatasetRef(name=item)
    d = _mapping(item, source, where)
    unknown = set(d) - {"name", "root", "data", "test", "folds", "set"}
    if unknown:
        raise _err(
            source, where, f"unknown key(s) {', '.join(sorted(unknown))} (name, root, data, test, folds, set)"
        )
    if not d.get("name") and not d.get("data"):
        raise _err(
            source, where, "give `name` (a registered dataset) or `data` (a CSV or folder, `name` optional)"
        )
    if d.get("name") is not None and (not isinstance(d["name"], str) or not d["name"].strip()):
        raise _err(source, f"{where}.name", f"expected a non-empty string, got {d['name']!r}")

    def path(key: str) -> str | None:
        return expand_path(str(d[key])) if d.get(key) is not None else None

    folds = _folds(d["folds"], source, f"{where}.folds") if d.get("folds") is not None else None
    name = str(d["name"]) if d.get("name") else None
    sets = _strings(d["set"], source, f"{where}.set") if d.get("set") else ()
    return DatasetRef(
        name=name, root=path("root"), data=path("data"), test=path("test"), folds=folds, overrides=sets
    )


def _method(item: Any, source: str, where: str, variants: Mapping[str, Any]) -> MethodEntry:
    """A method entry: ``coop``, ``{name: coop, set: [...]}``, or a variant ``coop+sept@lam2``
    declared inline (``{name: coop+sept@lam2, set: [...], family: ...}``) or under ``variants``."""
    from sept.errors import UnknownNameError
    from sept.methods.registry import parse_method

    if isinstance(item, str):
        d: dict[str, Any] = {"name": item}
    else:
        d = _mapping(item, source, where)
    unknown = set(d) - {"name", "set", "family", "reference"}
    if unknown or not isinstance(d.get("name"), str):
        raise _err(
            source,
            where,
            "a method is a string or {name: METHOD[@LABEL], set: [key=value, ...], family, reference}",
        )
    text = d["name"].strip()
    base, at, label = text.partition("@")
    if at:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", label):
            raise _err(source, where, f"variant label {label!r}: use letters, digits, '.', '_' or '-'")
        declared = variants.get(text)
        if declared is not None:
            if set(d) - {"name"}:
                raise _err(source, where, f"variant {text!r} is declared under `variants`; name it only")
            d = {"name": text, **declared}
        elif not (set(d) - {"name"}):
            raise _err(source, where, f"variant {text!r} is not declared under `variants` and has no `set`")
    try:
        canonical = parse_method(base).name
    except UnknownNameError as exc:
        raise _err(source, where, str(exc)) from exc
    for key in ("family", "reference"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise _err(source, f"{where}.{key}", f"expected a string, got {d[key]!r}")
    sets = _strings(d.get("set") or [], source, f"{where}.set") if d.get("set") else ()
    return MethodEntry(canonical, tuple(sets), label or None, d.get("family"), d.get("reference"))


def _variants(value: Any, source: str) -> dict[str, dict[str, Any]]:
    """The ``variants`` block: ``{METHOD@LABEL: {set: [...], family: F, reference: R}}``."""
    out = {}
    for name, spec in _mapping(value, source, "variants").items():
        where = f"variants.{name}"
        if not isinstance(name, str) or "@" not in name:
            raise _err(source, where, "a variant is named METHOD@LABEL, e.g. coop+sept@lam2")
        d = _mapping(spec, source, where)
        unknown = set(d) - {"set", "family", "reference"}
        if unknown:
            raise _err(source, where, f"unknown key(s) {', '.join(sorted(unknown))} (set, family, reference)")
        out[name] = d
    return out


def _executor(value: Any, source: str) -> ExecutorSettings:
    d = _mapping(value, source, "executor")
    known = {f for f in ExecutorSettings.__dataclass_fields__}
    unknown = set(d) - known
    if unknown:
        raise _err(
            source, "executor", f"unknown key(s) {', '.join(sorted(unknown))} ({', '.join(sorted(known))})"
        )
    kind = d.get("kind", "local")
    if kind not in EXECUTORS:
        raise _err(source, "executor.kind", f"{kind!r} is not one of {', '.join(EXECUTORS)}")
    if d.get("workers") is not None:
        _int_list(d["workers"], source, "executor.workers", 1)
    _int_list(d.get("threads", 1), source, "executor.threads", 1)
    for key in ("num_cpus", "num_gpus"):
        v = d.get(key)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v < 0):
            raise _err(source, f"executor.{key}", f"expected a number >= 0, got {v!r}")
    d["ray_init"] = _mapping(d.get("ray_init"), source, "executor.ray_init")
    return ExecutorSettings(**d)


def parse_grid(data: Mapping[str, Any], source: str = "<grid>") -> GridSpec:
    """Validate a grid mapping (as read from YAML); :class:`ConfigError` names the key at fault."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"grid {source!r} must be a mapping, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _err(
            source,
            "top level",
            f"unknown key(s) {', '.join(sorted(unknown))}; keys: {', '.join(sorted(_TOP_KEYS))}",
        )
    for key in ("datasets", "methods"):
        if not data.get(key):
            raise _err(source, key, "missing or empty")
    protocols = _strings(data.get("protocols", data.get("protocol", "base2new")), source, "protocols")
    for p in protocols:
        if p not in PROTOCOLS:
            raise _err(source, "protocols", f"{p!r} is not one of {', '.join(PROTOCOLS)}")
    backbone = data.get("backbone")
    options: dict[str, Any] = {}
    if isinstance(backbone, Mapping):
        b = dict(backbone)
        if set(b) - {"name", "options"} or not isinstance(b.get("name"), str):
            raise _err(source, "backbone", "a backbone is a name or {name: NAME, options: {...}}")
        backbone, options = b["name"], _mapping(b.get("options"), source, "backbone.options")
        _check_backbone_options(backbone, options, source)
    elif backbone is not None and not isinstance(backbone, str):
        raise _err(source, "backbone", f"expected a name, got {backbone!r}")
    if data.get("config") and data.get("config_file"):
        raise _err(source, "config", "give `config` (inline sections) or `config_file`, not both")
    on_bad_audio = data.get("on_bad_audio", "skip")
    if on_bad_audio not in ("skip", "fail"):
        raise _err(source, "on_bad_audio", f"expected skip or fail, got {on_bad_audio!r}")
    datasets = tuple(_dataset(d, source, f"datasets[{i}]") for i, d in enumerate(_list(data["datasets"])))
    xd = _mapping(data.get("xd"), source, "xd")
    if set(xd) - {"sources", "targets"}:
        raise _err(source, "xd", "keys are sources and targets")
    targets = xd.get("targets")
    return GridSpec(
        source=source,
        name=str(data.get("name") or Path(source).stem),
        run_root=expand_path(str(data.get("run_root") or "runs")),
        datasets=datasets,
        methods=_methods(data, source),
        protocols=protocols,
        backbone=backbone,
        backbone_options=options,
        cache_dir=expand_path(str(data["cache_dir"])) if data.get("cache_dir") else None,
        on_bad_audio=on_bad_audio,
        folds=_folds(data.get("folds", "all"), source, "folds"),
        shots=_int_list(data.get("shots", 16), source, "shots", 1),
        seeds=_int_list(data.get("seeds", [0, 1, 2]), source, "seeds", 0, MAX_SEED),
        with_replacement=_bool(data.get("with_replacement", False), source, "with_replacement"),
        config=_mapping(data.get("config"), source, "config"),
        config_file=expand_path(str(data["config_file"])) if data.get("config_file") else None,
        overrides=_strings(data.get("overrides") or [], source, "overrides") if data.get("overrides") else (),
        xd_sources=_strings(xd["sources"], source, "xd.sources") if xd.get("sources") else None,
        xd_targets=(
            tuple(_dataset(t, source, f"xd.targets[{i}]") for i, t in enumerate(_list(targets)))
            if targets
            else None
        ),
        executor=_executor(data.get("executor"), source),
    )


def _methods(data: Mapping[str, Any], source: str) -> tuple[MethodEntry, ...]:
    variants = _variants(data.get("variants"), source)
    methods = tuple(
        _method(m, source, f"methods[{i}]", variants) for i, m in enumerate(_list(data["methods"]))
    )
    listed = {m.display for m in methods}
    unused = sorted(set(variants) - listed)
    if unused:
        raise _err(source, "variants", f"declared but not listed under methods: {', '.join(unused)}")
    return methods


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else [value]


def load_grid(path: str | os.PathLike[str]) -> GridSpec:
    """Read and validate a grid YAML file."""
    import yaml

    from sept.utils.yaml_load import safe_load

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read grid file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"grid file {str(path)!r} is not valid YAML: {exc}") from exc
    return parse_grid(data or {}, str(path))
