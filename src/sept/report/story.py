"""The Base-New Tradeoff at a glance: what tuning costs the new classes and what SEPT gives back.

For every (backbone, dataset, shots) of the base-to-new runs that has zero-shot runs and at least
one host with its ``+sept`` variant (CoOp and CoOp + SEPT, ...):

- a side-by-side table: New of zero-shot, host and host + SEPT, the host's drop below zero-shot
  and SEPT's change, then Base and H of the three;
- one sentence written from those numbers: whether a tradeoff is present and how much SEPT
  changed New and H, with the seed spread.

Differences are paired by seed: for each seed both methods ran, ``b(seed) - a(seed)`` (folds
averaged first, as everywhere in the report); a difference is given as mean ± std over those
seeds. A host *trades New for Base* when, against zero-shot, its mean Base difference is
positive and its mean New difference negative and larger in size than that difference's std
over seeds (with one seed: negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sept.report.aggregate import Group, Stat, sept_host, stat
from sept.report.html import Figure, Section
from sept.report.tables import Delta, Table, Value, method_order

#: how method components are written in sentences
_PRETTY = {
    "zeroshot": "zero-shot",
    "coop": "CoOp",
    "cocoop": "CoCoOp",
    "kgcoop": "KgCoOp",
    "palm": "PALM",
    "dept": "DePT",
    "sept": "SEPT",
    "kg": "KG",
}
KEY = "story-base2new"
ZERO_SHOT = "zeroshot"


def pretty(method: str) -> str:
    """``"coop+dept"`` -> ``"CoOp+DePT"``; a variant keeps its options in parentheses:
    ``"coop@optim.epochs=50"`` -> ``"CoOp (optim.epochs=50)"``."""
    name, at, options = method.partition("@")
    written = "+".join(_PRETTY.get(part, part) for part in name.split("+"))
    return f"{written} ({options})" if at else written


def paired(a: Group, b: Group, metric: str) -> Stat | None:
    """``b - a`` on ``metric``, per seed both have: mean, std over seeds and count (None: no shared seed)."""
    xa, xb = a.per_seed.get(metric, {}), b.per_seed.get(metric, {})
    seeds = sorted(set(xa) & set(xb))
    return stat([xb[s] - xa[s] for s in seeds]) if seeds else None


def _beyond_spread(d: Stat) -> bool:
    return abs(d.mean) > (d.std or 0.0)


@dataclass
class HostStory:
    """A host, its +SEPT variant and the zero-shot runs of the same dataset."""

    zeroshot: Group
    host: Group
    sept: Group

    @property
    def name(self) -> str:
        return self.host.key.method

    def vs_zeroshot(self, metric: str) -> Stat | None:
        """host - zero-shot on ``metric``, paired by seed."""
        return paired(self.zeroshot, self.host, metric)

    def sept_change(self, metric: str) -> Stat | None:
        """host+SEPT - host on ``metric``, paired by seed."""
        return paired(self.host, self.sept, metric)

    @property
    def trades(self) -> bool:
        """The host lifts Base over zero-shot and drops New below it by more than the seed spread."""
        base, new = self.vs_zeroshot("base"), self.vs_zeroshot("new")
        return base is not None and new is not None and base.mean > 0 and new.mean < 0 and _beyond_spread(new)


@dataclass
class DatasetStory:
    """The hosts of one (backbone, dataset, shots), in method order."""

    backbone: str
    dataset: str
    shots: int
    hosts: list[HostStory]

    @property
    def seeds(self) -> int:
        return len(self.hosts[0].zeroshot.seeds)

    def sentence(self) -> str:
        """One sentence from the numbers (see the module doc for the rule on a tradeoff)."""
        zs = self.hosts[0].zeroshot.stats
        traders = [h for h in self.hosts if h.trades]
        others = [h for h in self.hosts if not h.trades]
        against = f"against zero-shot (Base {zs['base'].mean:.1f}%, New {zs['new'].mean:.1f}%)"
        if traders:
            one = len(traders) == 1
            drops = _join([_signed(h.vs_zeroshot("new")) for h in traders])
            head = (
                f"a Base-New tradeoff is present: {against}, {_join([pretty(h.name) for h in traders])} "
                f"{'gains' if one else 'gain'} Base but {'loses' if one else 'lose'} New ({drops} points)"
            )
            if others:
                rest = _join([f"{pretty(h.name)} {_signed(h.vs_zeroshot('new'))}" for h in others])
                head += f", while New of {rest} is not below zero-shot beyond the seed spread"
        else:
            rest = _join([f"{pretty(h.name)} {_signed(h.vs_zeroshot('new'))}" for h in self.hosts])
            head = (
                f"no Base-New tradeoff appears: {against}, no host loses New beyond the seed spread "
                f"(New minus zero-shot: {rest} points)"
            )
        new = _join(
            [f"{_signed(h.sept_change('new'))} ({pretty(h.name)}{_recovered(h)})" for h in self.hosts]
        )
        hm = _join([f"{_signed(h.sept_change('h'))} ({pretty(h.name)})" for h in self.hosts])
        n = self.seeds
        return (
            f"On {self.dataset} ({self.shots} shots, {n} seed{'s' if n != 1 else ''}), {head}; adding SEPT "
            f"changes New by {new} and H by {hm} points; {_verdict(self.hosts)} "
            f"(mean ± std over seeds of per-seed differences)."
        )

    def rows(self, with_backbone: bool, with_k: bool) -> list[list[Value]]:
        rows: list[list[Value]] = []
        for h in self.hosts:
            z, a, b = h.zeroshot.stats, h.host.stats, h.sept.stats
            row: list[Value] = [self.dataset, pretty(h.name)]
            row += [self.shots] * with_k + [self.backbone] * with_backbone
            row += [z.get("new"), a.get("new"), b.get("new")]
            row += [_delta(h.vs_zeroshot("new")), _delta(h.sept_change("new"))]
            row += [z.get("base"), a.get("base"), b.get("base"), z.get("h"), a.get("h"), b.get("h")]
            row.append(_delta(h.sept_change("h")))
            rows.append(row)
        return rows


def _signed(d: Stat | None) -> str:
    if d is None:
        return "n/a"
    mean = f"{d.mean:+.1f}".replace("-", "−")
    return mean if d.std is None else f"{mean} ± {d.std:.1f}"


def _delta(d: Stat | None) -> Delta | None:
    return None if d is None else Delta(d.mean, d.std)


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _recovered(h: HostStory) -> str:
    """ ", 40% of its drop" for a host that trades New for Base and gains New with SEPT."""
    drop, gain = h.vs_zeroshot("new"), h.sept_change("new")
    if not h.trades or drop is None or gain is None or gain.mean <= 0:
        return ""
    return f", {100 * gain.mean / -drop.mean:.0f}% of its drop"


def _verdict(hosts: Sequence[HostStory]) -> str:
    """How SEPT's New changes compare with the seed spread, counted over hosts."""
    changes = [d for d in (h.sept_change("new") for h in hosts) if d is not None]
    up = sum(1 for d in changes if d.mean > 0 and _beyond_spread(d))
    down = sum(1 for d in changes if d.mean < 0 and _beyond_spread(d))
    if up == len(changes):
        return "every host gains New beyond the seed spread"
    if down == len(changes):
        return "every host loses New beyond the seed spread"
    parts = []
    if up:
        parts.append(
            f"{up} of {len(changes)} hosts {'gain' if up > 1 else 'gains'} New beyond the seed spread"
        )
    if down:
        parts.append(f"{down} of {len(changes)} {'lose' if down > 1 else 'loses'} New beyond it")
    return " and ".join(parts) if parts else "no host's New changes beyond the seed spread"


@dataclass
class Story:
    """Every dataset's story, the side-by-side table and the Figure 1 heat maps of CoOp vs CoOp + SEPT."""

    datasets: list[DatasetStory] = field(default_factory=list)

    @property
    def sentences(self) -> list[str]:
        return [d.sentence() for d in self.datasets]

    def table(self) -> Table | None:
        """The side-by-side table; the sentences are its notes (so report.md carries them)."""
        if not self.datasets:
            return None
        with_k = len({d.shots for d in self.datasets}) > 1
        with_bb = len({d.backbone for d in self.datasets}) > 1
        columns = ["Dataset", "Host"] + ["K"] * with_k + ["Backbone"] * with_bb
        columns += ["New zero-shot", "New host", "New +SEPT", "ΔNew host − zero-shot", "ΔNew SEPT"]
        columns += [
            "Base zero-shot",
            "Base host",
            "Base +SEPT",
            "H zero-shot",
            "H host",
            "H +SEPT",
            "ΔH SEPT",
        ]
        rows = [r for d in self.datasets for r in d.rows(with_bb, with_k)]
        notes = [*self.sentences, _EXPLAIN]
        return Table(KEY, "Base-to-new: the tradeoff and SEPT, side by side", columns, rows, notes)

    def section(self, figures: Sequence[Figure] = ()) -> Section | None:
        """The report's first section: the sentences, the table and the CoOp vs CoOp+SEPT heat maps
        among ``figures`` (those whose ``key`` is ``("neighbours", dataset, "coop")``)."""
        table = self.table()
        if table is None:
            return None
        shown = replace(table, notes=[_EXPLAIN])
        wanted = {("neighbours", d.dataset, "coop") for d in self.datasets}
        heat = [f for f in figures if f.key in wanted]
        intro = " ".join(self.sentences)
        return Section(
            "The Base-New Tradeoff at a glance", intro, tables=[shown.to_html()], figures=heat, level=2
        )


_EXPLAIN = (
    "New/Base/H: mean ± std over seeds. Δ columns: per-seed differences (host minus zero-shot; host+SEPT "
    "minus host), mean ± std over seeds, in points."
)


def tell(groups: Sequence[Group]) -> Story:
    """The story of the base-to-new ``groups`` (from :func:`sept.report.aggregate.group_runs`)."""
    by_key = {
        (g.key.backbone, g.key.dataset, g.key.shots, g.key.method): g
        for g in groups
        if g.key.protocol == "base2new"
    }
    story = Story()
    cells = sorted({k[:3] for k in by_key}, key=lambda c: (c[0], c[1].lower(), c[2]))
    for backbone, dataset, shots in cells:
        zs = by_key.get((backbone, dataset, shots, ZERO_SHOT))
        if zs is None:
            continue
        hosts = []
        for (bb, ds, k, method), g in sorted(by_key.items(), key=lambda kv: method_order(kv[0][3])):
            host = sept_host(method)
            if (bb, ds, k) != (backbone, dataset, shots) or host is None:
                continue
            if (bb, ds, k, host) in by_key:
                hosts.append(HostStory(zs, by_key[(bb, ds, k, host)], g))
        if hosts:
            story.datasets.append(DatasetStory(backbone, dataset, shots, hosts))
    return story
