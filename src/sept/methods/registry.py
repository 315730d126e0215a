"""Method names: components found by file name, combinations parsed from ``a+b+c``.

Built-in components are discovered, not registered: the file ``learners/<name>.py``
(``regularizers/``, ``heads/``) defines one component class whose ``name`` is ``<name>``. Listing
names only scans the package folders; a module is imported when its component is used. Adding a
learner, a regulariser or a head to sept is therefore adding one file; code outside sept calls
:func:`register_method_component` (see docs/extending.md).

A method on the command line is a learner (or a named combination such as ``kgcoop``) followed
by ``+``-separated regularisers and at most one head: ``coop``, ``cocoop+kg``, ``kgcoop+dept``.
Named combinations carry per-protocol presets from their reference code (layered over the
learner's presets); a head's presets come last (its ``PRESETS``, then its ``HOST_PRESETS`` for the
method's first name: DePT's recipe differs for CoOp and KgCoOp).
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from sept.errors import UnknownNameError

#: component kind -> package holding one module per component
_PACKAGES = {
    "learner": "sept.methods.learners",
    "regularizer": "sept.methods.regularizers",
    "head": "sept.methods.heads",
}
#: components registered from outside the package: kind -> name -> class
_REGISTERED: dict[str, dict[str, type]] = {kind: {} for kind in _PACKAGES}


@dataclass(frozen=True)
class Combination:
    """A named method: a learner with regularisers, plus presets ``{protocol or '*': {key: value}}``."""

    learner: str
    regularizers: tuple[str, ...] = ()
    description: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


#: named combinations (KgCoOp = CoOp + KgCoOp's regulariser, with its reference batch and epochs)
COMBINATIONS: dict[str, Combination] = {
    "kgcoop": Combination(
        "coop",
        ("kg",),
        "KgCoOp: CoOp (4 vectors from a template) + w * (1 - mean cos(t_c, t_c^hand))",
        {
            "base2new": {"optim.batch_size": 128, "optim.epochs": 100},
            "xd": {"optim.batch_size": 128, "optim.epochs": 100},
        },
    ),
}


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name. ``name`` is canonical (``kgcoop+dept``); ``presets`` in layer order."""

    name: str
    learner: str
    regularizers: tuple[str, ...] = ()
    head: str | None = None
    presets: tuple[dict[str, dict[str, Any]], ...] = ()

    @property
    def trains(self) -> bool:
        """Whether the method has parameters to learn (a zero-shot learner alone has none)."""
        return bool(component_class("learner", self.learner).has_parameters or self.head)

    @property
    def components(self) -> list[tuple[str, str]]:
        """(kind, name) of every component, learner first."""
        out = [("learner", self.learner)] + [("regularizer", r) for r in self.regularizers]
        return out + ([("head", self.head)] if self.head else [])


def register_method_component(component: type, *, overwrite: bool = False) -> None:
    """Add a prompt learner, regulariser or head defined outside sept, under ``component.name``.

    ``component`` subclasses :class:`sept.methods.base.PromptLearner`, ``Regularizer`` or
    ``Head`` (its kind); it then composes like the built-in ones (``coop+myreg``,
    ``mylearner+sept``). A name already in use raises :class:`ValueError` unless ``overwrite``
    (built-in components cannot be replaced).
    """
    from sept.methods.base import Head, PromptLearner, Regularizer

    bases = {"learner": PromptLearner, "regularizer": Regularizer, "head": Head}
    kinds = [k for k, base in bases.items() if isinstance(component, type) and issubclass(component, base)]
    if len(kinds) != 1:
        raise TypeError(f"{component!r} must subclass one of PromptLearner, Regularizer or Head")
    kind, name = kinds[0], getattr(component, "name", "")
    if not name or name != name.strip().lower() or "+" in name:
        raise ValueError(f"{component.__name__}.name must be a lower-case name without '+', not {name!r}")
    if name in _builtin_components(kind) or name in COMBINATIONS:
        raise ValueError(f"{kind} {name!r} is built in and cannot be replaced")
    if name in _REGISTERED[kind] and not overwrite:
        raise ValueError(f"{kind} {name!r} is already registered (overwrite=True replaces it)")
    _REGISTERED[kind][name] = component


def _builtin_components(kind: str) -> list[str]:
    package = importlib.import_module(_PACKAGES[kind])
    return [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]


def list_components(kind: str) -> list[str]:
    """Names of the components of ``kind`` ("learner", "regularizer", "head"), sorted (registered ones included)."""
    if kind not in _PACKAGES:
        raise UnknownNameError("component kind", kind, sorted(_PACKAGES))
    from sept.plugins import load_plugins

    load_plugins()
    return sorted({*_builtin_components(kind), *_REGISTERED[kind]})


def list_methods(pattern: str = "*") -> list[str]:
    """Method names usable alone (learners and named combinations) matching ``pattern``, sorted.

    Any of them can be extended with ``+<regularizer>`` and ``+<head>`` (see :func:`list_components`).
    """
    names = set(list_components("learner")) | set(COMBINATIONS)
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def component_class(kind: str, name: str) -> type:
    """The class of component ``name`` of ``kind``; :class:`UnknownNameError` lists valid ones."""
    valid = list_components(kind)
    if name not in valid:
        raise UnknownNameError(kind, name, valid)
    if name in _REGISTERED[kind]:
        return _REGISTERED[kind][name]
    module = importlib.import_module(f"{_PACKAGES[kind]}.{name}")
    from sept.methods.base import Component

    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, Component)
            and obj.__module__ == module.__name__
            and obj.name == name
        ):
            return obj
    raise TypeError(f"module {module.__name__} defines no component class with name = {name!r}")


def parse_method(method: str) -> MethodSpec:
    """Parse ``learner[+regularizer...][+head]`` (a learner may be a named combination)."""
    parts = [p.strip().lower() for p in method.split("+")]
    if not method.strip() or any(not p for p in parts):
        raise UnknownNameError("method", method, list_methods())
    first, rest = parts[0], parts[1:]
    presets: list[dict[str, dict[str, Any]]] = []
    if first in COMBINATIONS:
        combo = COMBINATIONS[first]
        learner, regs = combo.learner, list(combo.regularizers)
        presets.append(combo.presets)
    elif first in list_components("learner"):
        learner, regs = first, []
    else:
        raise UnknownNameError("method", first, list_methods())
    learner_cls = component_class("learner", learner)
    presets.insert(0, getattr(learner_cls, "PRESETS", {}))
    reg_names, head_names = list_components("regularizer"), list_components("head")
    head = None
    for part in rest:
        if part in reg_names:
            if part in regs:
                raise UnknownNameError(f"method (duplicate {part!r} in {method!r})", part, reg_names)
            regs.append(part)
        elif part in head_names:
            if head is not None:
                raise UnknownNameError(f"method (one head at most in {method!r})", part, [head])
            head = part
        else:
            raise UnknownNameError("component", part, reg_names + head_names)
    if head is not None:  # a head's recipe (DePT's schedule), then its settings for this host
        head_cls = component_class("head", head)
        presets.append(getattr(head_cls, "PRESETS", {}))
        presets.append(getattr(head_cls, "HOST_PRESETS", {}).get(first, {}))
    name = "+".join([first, *rest])
    return MethodSpec(name, learner, tuple(regs), head, tuple(presets))
