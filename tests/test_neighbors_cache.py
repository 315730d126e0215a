"""A shipped neighbour set is validated once per process (sweep workers resolve it every cell)."""

from __future__ import annotations

from sept.neighbors import load_shipped, store
from sept.neighbors.schema import NeighborSet


def test_a_shipped_set_is_validated_once_and_callers_get_copies(monkeypatch):
    monkeypatch.setattr(store, "_SHIPPED", {})
    calls: list[str] = []
    real = NeighborSet.from_dict.__func__

    def counting(cls, obj, *args, **kwargs):
        calls.append(kwargs.get("origin", ""))
        return real(cls, obj, *args, **kwargs)

    monkeypatch.setattr(NeighborSet, "from_dict", classmethod(counting))
    first = load_shipped("ESC50")
    second = load_shipped("esc50")
    assert calls == ["shipped:ESC50"]
    assert first.classes == second.classes and first is not second
    some = next(iter(first.classes))
    first.classes[some].append("changed by a caller")
    assert "changed by a caller" not in load_shipped("ESC50").classes[some]
