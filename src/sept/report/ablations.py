"""Ablation tables: one per family of variants, each variant against its reference.

A grid declares variants of a method with a ``family`` (``coop+sept@lam2`` in family ``lambda``)
and a ``reference`` (default: the plain method, e.g. ``coop+sept``). For every family and protocol
the table lists, per dataset and on average over the datasets every member has, the reference's
numbers, then each variant's numbers with Δ = variant minus reference, in points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sept.report.aggregate import Group, average_over_datasets
from sept.report.collect import METRICS, RunRecord
from sept.report.tables import TITLES, Delta, Table, Value, method_order


@dataclass(frozen=True)
class Family:
    """An ablation family: its reference variant and members with their options (``k=v, ...``)."""

    name: str
    reference: str
    members: dict[str, str]


def families_of(records: Iterable[RunRecord]) -> list[Family]:
    """The ablation families the runs declare (sorted by name; members in method order)."""
    found: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for r in records:
        family, reference = r.variant.get("family"), r.variant.get("reference")
        if family and reference:
            options = ", ".join(f"{k}={v}" for k, v in (r.variant.get("options") or {}).items())
            found[(family, reference)][r.method] = options
    return [
        Family(name, ref, dict(sorted(members.items(), key=lambda kv: method_order(kv[0]))))
        for (name, ref), members in sorted(found.items())
    ]


def _row(metrics: Sequence[str], stats: Mapping, ref: Mapping | None) -> list[Value]:
    out: list[Value] = []
    for m in metrics:
        value, base = stats.get(m), (ref or {}).get(m)
        out += [
            value,
            Delta(value.mean - base.mean)
            if ref is not None and value is not None and base is not None
            else None,
        ]
    return out


def ablation_table(protocol: str, groups: Sequence[Group], family: Family) -> Table | None:
    """Dataset | Variant | Options | metric, Δ ... | Seeds for one family (None: no runs of it)."""
    metrics = list(METRICS[protocol])
    names = [family.reference, *[m for m in family.members if m != family.reference]]
    by_key = {(g.key.dataset, g.key.method, g.key.backbone, g.key.shots): g for g in groups}
    combos = sorted({(g.key.backbone, g.key.shots) for g in groups if g.key.method in family.members})
    rows: list[list[Value]] = []
    for backbone, shots in combos:
        datasets = sorted(
            {d for (d, m, b, k) in by_key if m in family.members and (b, k) == (backbone, shots)},
            key=str.lower,
        )
        for dataset in datasets:
            ref = by_key.get((dataset, family.reference, backbone, shots))
            for name in names:
                g = by_key.get((dataset, name, backbone, shots))
                if g is None:
                    continue
                options = "reference" if name == family.reference else family.members.get(name, "")
                base = None if name == family.reference or ref is None else ref.stats
                rows.append([dataset, name, options, *_row(metrics, g.stats, base), len(g.seeds)])
        shared = [d for d in datasets if all((d, n, backbone, shots) in by_key for n in names)]
        if len(shared) > 1:
            chosen = [
                g
                for g in groups
                if (g.key.backbone, g.key.shots) == (backbone, shots) and g.key.method in names
            ]
            avg = {a.method: a.stats for a in average_over_datasets(chosen, shared)}
            for name in names:
                base = None if name == family.reference else avg.get(family.reference)
                rows.append([f"Average ({len(shared)})", name, "", *_row(metrics, avg[name], base), None])
    if not rows:
        return None
    columns = ["Dataset", "Variant", "Options"]
    for m in metrics:
        columns += [m if m != "h" else "H", "Δ"]
    columns.append("Seeds")
    columns = [c.capitalize() if c in ("base", "new", "accuracy", "source") else c for c in columns]
    notes = [
        f"Ablation family {family.name!r}: Δ = variant minus {family.reference} in points; "
        "mean ± std over seeds (folds averaged first)."
    ]
    return Table(
        f"{protocol}-ablation-{family.name}",
        f"{TITLES[protocol]}: ablation {family.name} (reference {family.reference})",
        columns,
        rows,
        notes,
    )


def ablation_tables(groups: Sequence[Group], families: Sequence[Family]) -> list[Table]:
    """Every family's table, protocol by protocol."""
    tables = []
    for protocol in ("base2new", "fewshot", "xd"):
        members = [g for g in groups if g.key.protocol == protocol]
        for family in families:
            table = ablation_table(protocol, members, family)
            if table is not None:
                tables.append(table)
    return tables
