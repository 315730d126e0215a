"""A run's resolved configuration: typed, validated, layered, saved as JSON with every run.

Layers, later ones win:

1. dataclass defaults (below, and each component's ``Options``);
2. the protocol's preset (:data:`PROTOCOL_PRESETS`);
3. the method's presets: the learner's ``PRESETS``, then a named combination's (``kgcoop``), then
   a head's (``dept``: its ``PRESETS``, then its ``HOST_PRESETS`` for the host);
4. a YAML config file;
5. ``--set key=value`` overrides (values parsed as YAML: ``0.01``, ``null``, ``[a, b]``).

Keys are dotted: ``seed``, ``optim.lr``, ``learner.n_ctx`` (or ``coop.n_ctx``), ``kg.weight``
(or ``regularizers.kg.weight``), ``dept.lr_mult`` (or ``head.dept.lr_mult``),
``backbone_options.model``. A YAML file may hold sections of components the method does not use
(so one file can serve a sweep): they are ignored. Presets skip keys the method lacks; a file or
``--set`` key that names no option is an error, as is any value out of range, all before any
compute.

Defaults follow the reference code; docs/METHOD.md ("Recipes") lists every default with its source:

- ``base2new`` and ``xd``: CoOp's base-to-new variant, SGD lr 0.002 (momentum 0.9, weight decay
  5e-4), cosine schedule after 1 warm-up epoch at 1e-5, batch 32, logit scale 100 (or the
  backbone's own); CoOp 200 epochs, CoCoOp batch 1 x 10 epochs, KgCoOp batch 128 x 100 epochs
  (w = 8), DePT lr 0.0035, batch 4, 10 epochs (head at 6.5x; CoOp host: 16 random vectors; KgCoOp
  host: w = 2), PALM its own (lr 0.05, no weight decay, no schedule, batch 16, 50 epochs).
- ``fewshot``: PALM's code for every method: 16 context vectors drawn N(0, 0.02), SGD lr 0.05,
  momentum 0.9, no weight decay, no schedule, 50 epochs, batch 16.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sept.backbones.registry import DEFAULT_BACKBONE, check_backbone_options
from sept.data.sampling import MAX_SEED
from sept.errors import ConfigError
from sept.methods.options import option, options_from_dict, options_to_dict
from sept.methods.registry import MethodSpec, component_class, list_components, parse_method
from sept.runs.schema import PROTOCOLS
from sept.utils.hashing import hash_json

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.methods.compose import ComposedMethod

log = logging.getLogger(__name__)


#: per-protocol presets (layer 2)
PROTOCOL_PRESETS: dict[str, dict[str, Any]] = {
    # PALM's code (main.py: SGD lr 0.05, momentum 0.9, no weight decay; 16 random context vectors)
    "fewshot": {
        "learner.n_ctx": 16,
        "learner.ctx_init": None,
        "optim.lr": 0.05,
        "optim.weight_decay": 0.0,
        "optim.scheduler": "none",
        "optim.warmup_epochs": 0,
        "optim.epochs": 50,
        "optim.batch_size": 16,
    },
    "base2new": {},
    "xd": {},
}


@dataclass
class OptimConfig:
    """Optimiser and schedule (defaults: CoOp's; epochs are set by each method's presets, 50 is PALM's
    few-shot schedule; see the module doc)."""

    name: Literal["sgd", "adam", "adamw"] = option("sgd", "optimiser")
    lr: float = option(0.002, "learning rate of the prompt (a head scales it by its lr_mult)", gt=0)
    momentum: float = option(0.9, "SGD momentum", ge=0, le=1)
    weight_decay: float = option(5e-4, "weight decay", ge=0)
    scheduler: Literal["cosine", "none"] = option("cosine", "per-epoch schedule after the warm-up")
    warmup_epochs: int = option(1, "epochs at the constant warmup_lr before the schedule", ge=0)
    warmup_lr: float = option(1e-5, "learning rate during warm-up", gt=0)
    epochs: int = option(50, "training epochs", ge=1)
    batch_size: int = option(32, "clips per step", ge=1)

    def validate(self, section: str) -> None:
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"{section}.warmup_epochs ({self.warmup_epochs}) must be < {section}.epochs ({self.epochs})"
            )


@dataclass
class GeneralConfig:
    """Run-level settings (top-level keys)."""

    seed: int = option(0, "seed of parameter init, batch order and any sampling", ge=0, le=MAX_SEED)
    backbone: str = option(DEFAULT_BACKBONE, "backbone name (sept.backbones.list_backbones())")
    backbone_options: dict[str, Any] = field(
        default_factory=dict, metadata={"doc": "options of the backbone, e.g. model=<path>"}
    )
    logit_scale: float | None = option(None, "fixed logit scale; null: the backbone's (100 by default)", gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto", "auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU; the device is the backbone's"
    )
    eval_batch_size: int = option(256, "clips per evaluation batch", ge=1)
    class_names: Literal["readable", "raw"] = option(
        "readable",
        "what the prompts name: readable names (dog_bark -> dog bark; sept.data.names) or the dataset's raw "
        "labels as they are (PALM's code)",
    )


_GENERAL_FIELDS = [f.name for f in dataclasses.fields(GeneralConfig)]
#: top-level fields that do not change what is learned (ignored when matching a checkpoint)
_NOT_TRAINING = ("eval_batch_size",)


@dataclass(kw_only=True)
class RunConfig(GeneralConfig):
    """Everything a run needs besides data. ``learner`` / ``regularizers`` / ``head`` hold the
    components' options dataclasses (``head``: at most one entry)."""

    method: str
    protocol: Literal["fewshot", "base2new", "xd"] = "base2new"
    optim: OptimConfig = field(default_factory=OptimConfig)
    learner: Any = None
    regularizers: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> MethodSpec:
        return parse_method(self.method)

    def component_options(self) -> dict[str, Any]:
        """Options by component name, as :func:`sept.methods.build_method` takes them."""
        return {self.spec.learner: self.learner, **self.regularizers, **self.head}

    def build_method(self, backbone: Backbone, train_classnames: Sequence[str]) -> ComposedMethod:
        """The configured method, set up for ``train_classnames`` (init seeded by ``seed``)."""
        from sept.methods.compose import build_method

        return build_method(
            self.spec,
            backbone,
            train_classnames,
            options=self.component_options(),
            logit_scale=self.logit_scale,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "protocol": self.protocol}
        out.update({name: getattr(self, name) for name in _GENERAL_FIELDS})
        out["backbone_options"] = dict(self.backbone_options)
        out["optim"] = options_to_dict(self.optim)
        out["learner"] = {"name": self.spec.learner, **_opts_dict(self.learner)}
        out["regularizers"] = {k: _opts_dict(v) for k, v in self.regularizers.items()}
        out["head"] = {k: _opts_dict(v) for k, v in self.head.items()}
        return out

    def training_hash(self) -> str:
        """Hash of everything that changes what is learned (checkpoints must match it to resume)."""
        data = self.to_dict()
        for key in _NOT_TRAINING:
            data.pop(key, None)
        return hash_json(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> RunConfig:
        """Rebuild a saved config (every value checked; no presets applied)."""
        data = dict(data)
        for key in ("method", "protocol"):
            if key not in data:
                raise ConfigError(f"{source}: missing {key!r}")
        spec = parse_method(str(data.pop("method")))
        protocol = data.pop("protocol")
        learner = dict(data.pop("learner", None) or {})
        name = learner.pop("name", spec.learner)
        if name != spec.learner:
            raise ConfigError(f"{source}: learner.name {name!r} does not match method {spec.name!r}")
        tree = {
            "general": {k: data.pop(k) for k in list(data) if k in _GENERAL_FIELDS},
            "optim": data.pop("optim", None) or {},
            "learner": learner,
            "regularizers": data.pop("regularizers", None) or {},
            "head": data.pop("head", None) or {},
        }
        if data:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(data))}")
        return _build(spec, protocol, tree, source)


def _opts_dict(obj: Any) -> dict[str, Any]:
    return options_to_dict(obj) if obj is not None and dataclasses.is_dataclass(obj) else {}


def _options_cls(kind: str, name: str) -> type | None:
    return component_class(kind, name).Options


def _field_names(cls: type | None) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if cls is not None else set()


def _build(spec: MethodSpec, protocol: Any, tree: dict[str, Any], source: str) -> RunConfig:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{source}: protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    general = options_from_dict(GeneralConfig, tree["general"], "")
    optim = options_from_dict(OptimConfig, tree["optim"], "optim")

    def component(kind: str, name: str, data: Mapping[str, Any] | None, section: str) -> Any:
        cls = _options_cls(kind, name)
        if cls is None:
            if data:
                raise ConfigError(f"{source}: {section} ({name}) takes no options, got {', '.join(data)}")
            return None
        return options_from_dict(cls, data, section)

    learner = component("learner", spec.learner, tree["learner"], "learner")
    extra = set(tree["regularizers"]) - set(spec.regularizers)
    if extra:
        raise ConfigError(f"{source}: regularizers {sorted(extra)} are not part of method {spec.name!r}")
    regs = {r: component("regularizer", r, tree["regularizers"].get(r), r) for r in spec.regularizers}
    if set(tree["head"]) - {spec.head}:
        raise ConfigError(f"{source}: head {sorted(tree['head'])} is not part of method {spec.name!r}")
    heads = (
        {spec.head: component("head", spec.head, tree["head"].get(spec.head), spec.head)} if spec.head else {}
    )
    return RunConfig(
        **{name: getattr(general, name) for name in _GENERAL_FIELDS},
        method=spec.name,
        protocol=protocol,
        optim=optim,
        learner=learner,
        regularizers=regs,
        head=heads,
    )


# ---- layered resolution ----------------------------------------------------------------------
class _Tree:
    """Nested override values, filled layer by layer from dotted keys."""

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec
        self.data: dict[str, Any] = {
            "general": {},
            "optim": {},
            "learner": {},
            "regularizers": {},
            "head": {},
        }
        self.option_sources: dict[str, str] = {}  # backbone option -> where it was set
        self.targets = {
            "optim": _field_names(OptimConfig),
            "learner": _field_names(_options_cls("learner", spec.learner)),
        }
        for r in spec.regularizers:
            self.targets[f"regularizers.{r}"] = _field_names(_options_cls("regularizer", r))
        if spec.head:
            self.targets[f"head.{spec.head}"] = _field_names(_options_cls("head", spec.head))
        self.others = {n for kind in ("learner", "regularizer", "head") for n in list_components(kind)} - {
            spec.learner,
            *spec.regularizers,
            spec.head,
        }

    def _route(self, key: str, source: str) -> tuple[str, str] | None:
        """(section, field) for a dotted key; None for a component the method does not use."""
        parts = key.split(".")
        first, spec = parts[0], self.spec
        if first in ("method", "protocol"):
            raise ConfigError(f"{source}: {first!r} cannot be set here; name it on the command line")
        if first == "backbone_options":
            return ("general", key)
        if first in _GENERAL_FIELDS:
            if len(parts) == 1:
                return ("general", first)
        elif first == "optim" and len(parts) == 2:
            return ("optim", parts[1])
        elif first in ("learner", spec.learner) and len(parts) == 2:
            return ("learner", parts[1])
        elif first in ("regularizers", "head") and len(parts) == 3:
            if parts[1] in self.others:
                return None
            return (f"{first}.{parts[1]}", parts[2])
        elif first in spec.regularizers and len(parts) == 2:
            return (f"regularizers.{first}", parts[1])
        elif first == spec.head and len(parts) == 2:
            return (f"head.{first}", parts[1])
        elif first in self.others:
            return None
        sections = ["optim", "learner", spec.learner, *spec.regularizers] + ([spec.head] if spec.head else [])
        raise ConfigError(
            f"{source}: unknown key {key!r}; keys are {', '.join(_GENERAL_FIELDS)} or <section>.<option> "
            f"with section one of {', '.join(sections)}"
        )

    def set(self, key: str, value: Any, source: str, strict: bool, aimed: bool = False) -> None:
        """Set ``key``; ``strict``: it must name a component of the method; ``aimed``: a value the
        user gave (applied whenever the component exists, never dropped as a preset's would be)."""
        route = self._route(key, source)
        if route is None:
            if strict:
                raise ConfigError(f"{source}: method {self.spec.name!r} has no component for key {key!r}")
            log.debug("%s: ignoring %s (not part of method %s)", source, key, self.spec.name)
            return
        section, name = route
        if section == "general":
            if name.startswith("backbone_options"):
                opts = self.data["general"].setdefault("backbone_options", {})
                if name == "backbone_options":
                    if not isinstance(value, Mapping):
                        raise ConfigError(f"{source}: backbone_options must be a mapping, got {value!r}")
                    opts.update(value)
                    self.option_sources.update(dict.fromkeys(map(str, value), source))
                else:
                    opts[name.split(".", 1)[1]] = value
                    self.option_sources[name.split(".", 1)[1]] = source
                return
            self.data["general"][name] = value
            return
        if not strict and not aimed and name not in self.targets.get(section, set()):
            return  # a preset key this method lacks (e.g. learner.n_ctx for palm)
        node = self.data
        for part in section.split("."):
            node = node.setdefault(part, {})
        node[name] = value


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path != "backbone_options":
            yield from _flatten(value, f"{path}.")
        else:
            yield path, value


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (or JSON) mapping of config sections; :class:`ConfigError` names the file on failure."""
    import yaml

    from sept.utils.yaml_load import safe_load

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.01"`` -> ``("optim.lr", 0.01)`` (the value parsed as YAML)."""
    import yaml

    from sept.utils.yaml_load import safe_load

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value")
    try:
        value = safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def resolve_config(
    method: str,
    protocol: str = "base2new",
    *,
    config_file: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
    aimed: Iterable[str] = (),
) -> RunConfig:
    """The run config of ``method`` under ``protocol``: defaults, presets, file, then overrides.

    ``settings``: dotted keys from Python or CLI flags (``{"seed": 1}``); ``overrides``:
    ``"key=value"`` strings from ``--set`` that must apply to the method; ``aimed``: such strings
    applied only where the method has the component (``sept.weight=2`` skips ``coop``), applied
    before ``overrides``. Raises :class:`ConfigError` on any invalid value.
    """
    spec = parse_method(method)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    tree = _Tree(spec)
    for key, value in PROTOCOL_PRESETS[protocol].items():
        tree.set(key, value, f"{protocol} preset", strict=False)
    for presets in spec.presets:
        for scope in ("*", protocol):
            for key, value in presets.get(scope, {}).items():
                tree.set(key, value, f"{spec.name} preset", strict=False)
    if config_file is not None:
        for key, value in _flatten(load_config_file(config_file)):
            tree.set(key, value, f"config file {str(config_file)!r}", strict=False)
            _check_known(tree, key, f"config file {str(config_file)!r}")
    for key, value in (settings or {}).items():
        tree.set(key, value, "settings", strict=True)
        _check_known(tree, key, "settings")
    for text in aimed:
        key, value = parse_override(text)
        _check_known(tree, key, f"--set {text!r}")
        tree.set(key, value, f"--set {text!r}", strict=False, aimed=True)
    for text in overrides:
        key, value = parse_override(text)
        tree.set(key, value, f"--set {text!r}", strict=True)
        _check_known(tree, key, f"--set {text!r}")
    _check_backbone_options(tree)
    return _build(spec, protocol, tree.data, "config")


def override_applies(method: str, key: str) -> bool:
    """Whether ``--set key=...`` names a component that ``method`` has (an unknown key raises)."""
    tree = _Tree(parse_method(method))
    return tree._route(key, f"--set {key!r}") is not None


def _check_backbone_options(tree: _Tree) -> None:
    """Every backbone option must be one the final backbone takes; the error names where it was set."""
    general = tree.data["general"]
    backbone = general.get("backbone", DEFAULT_BACKBONE)
    if not isinstance(backbone, str):
        return  # _build reports the type
    for key, value in general.get("backbone_options", {}).items():
        check_backbone_options(backbone, {key: value}, tree.option_sources.get(key, "settings"))


def _check_known(tree: _Tree, key: str, source: str) -> None:
    """A file or override key must name an existing option of a component the method has."""
    route = tree._route(key, source)
    if route is None or route[0] == "general":
        return
    section, name = route
    valid = tree.targets.get(section, set())
    if name not in valid:
        raise ConfigError(
            f"{source}: unknown option {key!r}; options of {section}: {', '.join(sorted(valid)) or '(none)'}"
        )
