"""The one YAML reader of sept: PyYAML's safe loader with aliases and nesting bounded.

``yaml.safe_load`` never builds arbitrary objects, but a 1 kB document of nested aliases
("billion laughs": ``b: [*a, *a, ...]``, ``c: [*b, *b, ...]``) stands for billions of values; it is
built as shared references and then expands, in whatever walks it (hashing, JSON, copying), until
memory runs out. :func:`safe_load` counts the values the document stands for, each alias counted
as the whole value it repeats, and refuses more than :data:`MAX_EXPANDED_VALUES`; it also refuses
a document nested too deeply for the recursive composer. Both refusals are a :class:`yaml.YAMLError`
(:class:`YAMLBoundError`), so a caller's ``except yaml.YAMLError`` reports them with the file name.
"""

from __future__ import annotations

from typing import Any

import yaml

#: most values (scalars, lists, mappings, keys included) a document may stand for once its
#: aliases are expanded; grid and config files hold a few hundred
MAX_EXPANDED_VALUES = 100_000


class YAMLBoundError(yaml.YAMLError):
    """A document that expands beyond :data:`MAX_EXPANDED_VALUES` or nests too deeply."""


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_VALUES) -> int:
    """Values ``root`` stands for with every alias expanded; stops counting past ``limit``.

    Each node is sized once (aliases share the node they repeat), so this costs the size of the
    document, not of its expansion. A recursive alias (``&a [*a]``) counts as beyond the limit.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        if key in sizes:
            continue
        if key in on_path:
            return limit + 1  # a value that contains itself expands forever
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that sizes each document before building it."""

    def construct_document(self, node: yaml.Node) -> Any:
        size = expanded_size(node)
        if size > MAX_EXPANDED_VALUES:
            raise YAMLBoundError(
                f"its aliases expand to more than {MAX_EXPANDED_VALUES:,} values (nested or recursive "
                "anchors); write the values out or use fewer aliases"
            )
        return super().construct_document(node)


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)`` with bounded alias expansion and nesting.

    Raises :class:`yaml.YAMLError` for invalid YAML, a tag the safe loader does not know
    (``!!python/object``), or a document beyond the bounds (:class:`YAMLBoundError`).
    """
    try:
        loader = _BoundedSafeLoader(text)  # a SafeLoader: never builds arbitrary objects
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except RecursionError:
        raise YAMLBoundError("it is nested too deeply") from None
