"""Backbones by name: ``list_backbones()`` and ``create_backbone(name, **options)``.

The registry is data (name -> module, class, default options), imported lazily, so naming a
backbone never depends on an import side effect and ``import sept`` stays light.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sept.backbones.base import Backbone
from sept.errors import ConfigError, UnknownNameError

#: the backbone used when none is named: runs offline on any machine
DEFAULT_BACKBONE = "yamnet-minilm"


@dataclass(frozen=True)
class BackboneSpec:
    module: str
    cls: str
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, BackboneSpec] = {
    "yamnet-minilm": BackboneSpec(
        "sept.backbones.yamnet_minilm",
        "YamnetMiniLMBackbone",
        {},
        "offline default: YAMNet (AudioSet, ONNX) bridged into all-MiniLM-L6-v2's text space",
    ),
    "clap": BackboneSpec(
        "sept.backbones.clap",
        "ClapBackbone",
        {"model": "laion/clap-htsat-unfused"},
        "Hugging Face CLAP (transformers.ClapModel); model= a hub id or a local folder",
    ),
    "clap-htsat-unfused": BackboneSpec(
        "sept.backbones.clap",
        "ClapBackbone",
        {"model": "laion/clap-htsat-unfused"},
        "LAION CLAP HTSAT unfused",
    ),
    "clap-htsat-fused": BackboneSpec(
        "sept.backbones.clap", "ClapBackbone", {"model": "laion/clap-htsat-fused"}, "LAION CLAP HTSAT fused"
    ),
    "larger-clap-general": BackboneSpec(
        "sept.backbones.clap",
        "ClapBackbone",
        {"model": "laion/larger_clap_general"},
        "LAION larger CLAP (general)",
    ),
    "larger-clap-music-and-speech": BackboneSpec(
        "sept.backbones.clap",
        "ClapBackbone",
        {"model": "laion/larger_clap_music_and_speech"},
        "LAION larger CLAP (music and speech)",
    ),
    "pengi": BackboneSpec(
        "sept.backbones.pengi",
        "PengiBackbone",
        {},
        "Pengi (HTSAT + CLIP text), PALM's backbone; model= a folder from `sept backbones convert pengi`",
    ),
    "msclap-2022": BackboneSpec(
        "sept.backbones.msclap",
        "MsClap2022Backbone",
        {"model": "microsoft/msclap"},
        "MS-CLAP 2022 (CNN14 + BERT); model= hub repo, CLAP_weights_2022.pth or a converted folder",
    ),
    "msclap-2023": BackboneSpec(
        "sept.backbones.msclap",
        "MsClap2023Backbone",
        {"model": "microsoft/msclap"},
        "MS-CLAP 2023 (HTSAT + GPT-2); model= hub repo, CLAP_weights_2023.pth or a converted folder",
    ),
}


def register_backbone(
    name: str,
    backbone: type[Backbone] | str,
    defaults: dict[str, Any] | None = None,
    description: str = "",
    *,
    overwrite: bool = False,
) -> None:
    """Make ``create_backbone(name, **options)`` build ``backbone`` with ``defaults`` under ``options``.

    ``backbone``: a :class:`Backbone` subclass, or ``"package.module:ClassName"`` (imported only
    when the backbone is created). A name already registered raises :class:`ValueError` unless
    ``overwrite``. Example::

        register_backbone("my-clap", "my_package.model:MyClap", {"model": "org/my-clap"}, "my CLAP")
    """
    if not name or not name.strip() or name != name.strip():
        raise ValueError(f"a backbone name must be non-empty without surrounding spaces, not {name!r}")
    if isinstance(backbone, str):
        module, sep, cls = backbone.partition(":")
        if not sep or not module or not cls:
            raise ValueError(f"backbone {backbone!r} is not 'package.module:ClassName'")
    elif isinstance(backbone, type) and issubclass(backbone, Backbone):
        module, cls = backbone.__module__, backbone.__qualname__
    else:
        raise TypeError(f"backbone must be a Backbone subclass or 'module:Class', not {backbone!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"backbone {name!r} is already registered (overwrite=True replaces it)")
    _REGISTRY[name] = BackboneSpec(module, cls, dict(defaults or {}), description)


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a glob ``pattern``, sorted (plugins included)."""
    from sept.plugins import load_plugins

    load_plugins()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def backbone_description(name: str) -> str:
    return _spec(name).description


def _spec(name: str) -> BackboneSpec:
    if name not in _REGISTRY:
        from sept.plugins import load_plugins

        load_plugins()
    if name not in _REGISTRY:
        raise UnknownNameError("backbone", name, list_backbones())
    return _REGISTRY[name]


def create_backbone(name: str = DEFAULT_BACKBONE, **options: Any) -> Backbone:
    """Build the backbone ``name``; ``options`` override its registered defaults.

    Example: ``create_backbone("clap", model="/path/to/saved_clap")``.
    """
    spec = _spec(name)
    check_backbone_options(name, options, f"backbone {name!r}")
    cls = _backbone_class(spec)
    return cls(**{**spec.defaults, **options})


def _backbone_class(spec: BackboneSpec) -> Any:
    """The class ``spec`` names (``spec.cls`` may be a nested class's qualified name)."""
    cls: Any = importlib.import_module(spec.module)
    for part in spec.cls.split("."):
        cls = getattr(cls, part)
    return cls


def backbone_option_names(name: str) -> list[str]:
    """The options ``create_backbone(name, **options)`` accepts (its class's keyword arguments), sorted."""
    cls = _backbone_class(_spec(name))
    params = inspect.signature(cls.__init__).parameters.values()
    return sorted(
        p.name for p in params if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def check_backbone_options(name: str, options: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` from ``where`` naming the first option ``name`` does not take, with
    the valid ones (as ``--set`` lists the keys of a section)."""
    if not options:
        return
    valid = backbone_option_names(name)
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"{where}: unknown backbone option {key!r} of {name!r}; options are {', '.join(valid)}"
            )
