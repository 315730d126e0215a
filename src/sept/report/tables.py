"""Report tables: built from aggregated groups, written as Markdown, CSV, LaTeX and HTML.

Per protocol present in the run root: the average over datasets per method, the per-dataset
table, and host vs host+SEPT with deltas (SEPT minus host, in points). Numbers are percentages,
``mean ± std`` over seeds (folds averaged first, see :mod:`sept.report.aggregate`).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from sept.report.aggregate import Group, Stat, average_over_datasets, sept_host
from sept.report.collect import METRICS, RunRecord

LABELS = {
    "base": "Base",
    "new": "New",
    "h": "H",
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "source": "Source",
    "mean_target": "Mean target",
    "retention": "Retention",
}
TITLES = {"base2new": "Base-to-new", "fewshot": "Few-shot (all classes)", "xd": "Cross-dataset transfer"}


@dataclass(frozen=True)
class Delta:
    """A difference in points (e.g. host+SEPT minus host); ``std``: its spread over seeds, if known."""

    value: float
    std: float | None = None


Value = str | int | Stat | Delta | None


@dataclass
class Table:
    """``key`` names the files (``<key>.csv``...); ``rows`` hold str, int, :class:`Stat`, :class:`Delta` or None."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Value]]
    notes: list[str] = field(default_factory=list)

    # ---- text forms -----------------------------------------------------------------------
    @staticmethod
    def _text(v: Value) -> str:
        if v is None:
            return "–"
        if isinstance(v, Stat):
            return f"{v.mean:.2f}" if v.std is None else f"{v.mean:.2f} ± {v.std:.2f}"
        if isinstance(v, Delta):
            return f"{v.value:+.2f}" if v.std is None else f"{v.value:+.2f} ± {v.std:.2f}"
        return str(v)

    def _numeric(self, j: int) -> bool:
        return any(isinstance(r[j], Stat | Delta | int) for r in self.rows)

    def to_markdown(self) -> str:
        head = f"| {' | '.join(self.columns)} |"
        align = "|" + "|".join("---:" if self._numeric(j) else "---" for j in range(len(self.columns))) + "|"
        body = [f"| {' | '.join(self._text(v) for v in row)} |" for row in self.rows]
        notes = [f"\n{n}" for n in self.notes]
        return "\n".join([f"**{self.title}**", "", head, align, *body, *notes]) + "\n"

    def to_csv(self) -> str:
        """Stats as two columns (``<name>``, ``<name> std``), full precision, no ± signs."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        stat_cols = {
            j
            for j in range(len(self.columns))
            if any(
                isinstance(r[j], Stat) or (isinstance(r[j], Delta) and r[j].std is not None)
                for r in self.rows
            )
        }
        header = []
        for j, c in enumerate(self.columns):
            header += [c, f"{c} std"] if j in stat_cols else [c]
        writer.writerow(header)
        for row in self.rows:
            out: list[object] = []
            for j, v in enumerate(row):
                if j in stat_cols:
                    if isinstance(v, Stat | Delta):
                        mean = v.mean if isinstance(v, Stat) else v.value
                        out += [repr(mean), "" if v.std is None else repr(v.std)]
                    else:
                        out += ["", ""]
                elif isinstance(v, Delta):
                    out.append(repr(v.value))
                else:
                    out.append("" if v is None else v)
            writer.writerow(out)
        return buf.getvalue()

    def to_latex(self) -> str:
        """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
        spec = "".join("r" if self._numeric(j) else "l" for j in range(len(self.columns)))
        lines = [
            f"% {self.title}",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(_latex_escape(c) for c in self.columns) + " \\\\",
            "\\midrule",
        ]
        for row in self.rows:
            cells = [_latex_escape(self._text(v)) for v in row]
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for v in row:
                cls = ""
                if isinstance(v, Delta):
                    cls = ' class="pos"' if v.value > 0 else ' class="neg"' if v.value < 0 else ""
                elif isinstance(v, Stat | int):
                    cls = ' class="num"'
                cells.append(f"<td{cls}>{html.escape(self._text(v))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in self.notes)
        return (
            f"<table id='{html.escape(self.key)}'><caption>{html.escape(self.title)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"
        )


def _latex_escape(text: str) -> str:
    out = text
    for a, b in (
        ("\\", "\\textbackslash{}"),
        ("&", "\\&"),
        ("%", "\\%"),
        ("_", "\\_"),
        ("#", "\\#"),
        ("$", "\\$"),
    ):
        out = out.replace(a, b)
    return out.replace("±", "$\\pm$").replace("–", "--").replace("Δ", "$\\Delta$").replace("·", "$\\cdot$")


# ---- building ---------------------------------------------------------------------------------
def method_order(method: str) -> tuple[int, str, int, str]:
    """zeroshot first, then each host followed by its +SEPT variant, then their named variants."""
    name, _, label = method.partition("@")
    host = sept_host(name)
    base = host or name
    return (0 if base == "zeroshot" else 1, label, base, 1 if host else 0)


def _metrics_of(protocol: str, groups: Sequence[Group], retention: bool = True) -> list[str]:
    metrics = list(METRICS[protocol])
    if protocol == "xd":
        targets = sorted({m for g in groups for m in g.stats if m.startswith("target:")}, key=str.lower)
        metrics = ["source", *targets, "mean_target"]
    if retention and any("retention" in g.stats for g in groups):
        metrics.append("retention")
    return metrics


def _label(metric: str) -> str:
    return LABELS.get(metric, metric.removeprefix("target:"))


def _extra_columns(groups: Sequence[Group]) -> tuple[bool, bool]:
    """Whether tables need a K column and a backbone column."""
    return len({g.key.shots for g in groups}) > 1, len({g.key.backbone for g in groups}) > 1


def dataset_table(protocol: str, groups: Sequence[Group]) -> Table:
    """Dataset | Method | [K] | [Backbone] | metrics... | Seeds | Folds (a count) | Time/run."""
    metrics = _metrics_of(protocol, groups)
    with_k, with_bb = _extra_columns(groups)
    columns = (
        ["Dataset" if protocol != "xd" else "Source", "Method"] + ["K"] * with_k + ["Backbone"] * with_bb
    )
    columns += [_label(m) for m in metrics] + ["Seeds", "Folds", "Time/run"]
    ordered = sorted(
        groups, key=lambda g: (g.key.dataset.lower(), g.key.backbone, g.key.shots, method_order(g.key.method))
    )
    rows: list[list[Value]] = []
    for g in ordered:
        row: list[Value] = [g.key.dataset, g.key.method] + [g.key.shots] * with_k + [g.key.backbone] * with_bb
        row += [g.stats.get(m) for m in metrics]
        row += [len(g.seeds), len(g.folds), _duration(g.seconds)]
        rows.append(row)
    title = f"{TITLES[protocol]}: per {'source ' if protocol == 'xd' else ''}dataset"
    notes = [
        "mean ± std over seeds; each seed's value is the mean over its folds. Folds: how many; "
        "Time/run: mean training time of one run (– for a method that does not train)."
    ]
    if protocol == "base2new":
        notes.append("H of a run = 2·Base·New/(Base+New); a dataset's H is the mean of its runs' H.")
    if "retention" in metrics:
        notes.append(
            "Retention: correlation of the class-to-neighbour cosines before and after tuning (1: the prompt "
            "keeps the frozen model's semantic structure; – where no neighbour set covers the classes)."
        )
    notes += evaluation_notes(ordered)
    return Table(protocol, title, columns, rows, notes)


def _duration(seconds: float | None) -> str | None:
    """``12.3 s``, ``4.2 min`` or ``1.5 h``; None when nothing was trained."""
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def evaluation_notes(groups: Sequence[Group], limit: int = 3) -> list[str]:
    """One line per method whose runs noted something about their evaluation (PALM on classes
    it was not trained on uses the frozen class-name feature), with the datasets concerned."""
    found: dict[str, dict[str, list[str]]] = {}
    for g in groups:
        for note in g.notes:
            found.setdefault(g.key.method, {}).setdefault(note, []).append(g.key.dataset)
    lines = []
    for method, per_note in sorted(found.items(), key=lambda kv: method_order(kv[0])):
        datasets = sorted({d for ds in per_note.values() for d in ds}, key=str.lower)
        example = next(iter(per_note))
        more = f" (and {len(per_note) - 1} similar note(s))" if len(per_note) > 1 else ""
        where = ", ".join(datasets[:limit]) + (
            f" and {len(datasets) - limit} more" if len(datasets) > limit else ""
        )
        lines.append(f"Note, {method} ({where}): {example}{more}.")
    return lines


def average_table(protocol: str, groups: Sequence[Group]) -> Table:
    """Method | [K] | [Backbone] | metrics... | Datasets: the mean of per-dataset means."""
    metrics = [m for m in _metrics_of(protocol, groups) if not m.startswith("target:")]
    with_k, with_bb = _extra_columns(groups)
    averages = sorted(
        average_over_datasets(groups), key=lambda a: (a.backbone, a.shots, method_order(a.method))
    )
    all_datasets = {g.key.dataset for g in groups}
    columns = (
        ["Method"] + ["K"] * with_k + ["Backbone"] * with_bb + [_label(m) for m in metrics] + ["Datasets"]
    )
    rows: list[list[Value]] = []
    partial = False
    for a in averages:
        count: Value = len(a.datasets)
        if set(a.datasets) != all_datasets:
            partial = True
            count = f"{len(a.datasets)} of {len(all_datasets)}"
        rows.append(
            [a.method]
            + [a.shots] * with_k
            + [a.backbone] * with_bb
            + [a.stats.get(m) for m in metrics]
            + [count]
        )
    notes = ["the mean of per-dataset values; ± is the std over seeds of the per-seed averages."]
    if partial:
        notes.append("a method with results on fewer datasets is averaged over those only.")
    notes += evaluation_notes(groups)
    return Table(f"{protocol}-average", f"{TITLES[protocol]}: average over datasets", columns, rows, notes)


def sept_table(protocol: str, groups: Sequence[Group]) -> Table | None:
    """Host vs host+SEPT per dataset and on average (over the datasets both have), with deltas."""
    metrics = [m for m in _metrics_of(protocol, groups, retention=False) if not m.startswith("target:")]
    by_key = {(g.key.backbone, g.key.dataset, g.key.method, g.key.shots): g for g in groups}
    pairs = sorted(
        {
            (g.key.backbone, g.key.shots, sept_host(g.key.method), g.key.method)
            for g in groups
            if sept_host(g.key.method)
        },
        key=lambda p: (p[0], p[1], method_order(p[2] or "")),
    )
    pairs = [p for p in pairs if any((p[0], g.key.dataset, p[2], p[1]) in by_key for g in groups)]
    if not pairs:
        return None
    with_k, with_bb = _extra_columns(groups)
    columns = ["Dataset", "Host"] + ["K"] * with_k + ["Backbone"] * with_bb
    for m in metrics:
        columns += [f"{_label(m)} host", f"{_label(m)} +SEPT", f"Δ{_label(m)}"]
    rows: list[list[Value]] = []
    for backbone, shots, host, sept in pairs:
        shared = sorted(
            {g.key.dataset for g in groups if (backbone, g.key.dataset, host, shots) in by_key}
            & {g.key.dataset for g in groups if (backbone, g.key.dataset, sept, shots) in by_key},
            key=str.lower,
        )
        if not shared:
            continue
        prefix = [host] + [shots] * with_k + [backbone] * with_bb
        for dataset in shared:
            h, s = by_key[(backbone, dataset, host, shots)], by_key[(backbone, dataset, sept, shots)]
            rows.append([dataset, *prefix, *_triples(metrics, h.stats, s.stats)])
        if len(shared) > 1:
            pair_groups = [g for g in groups if g.key.backbone == backbone and g.key.shots == shots]
            avg = {a.method: a for a in average_over_datasets(pair_groups, shared)}
            rows.append(
                [f"Average ({len(shared)})", *prefix, *_triples(metrics, avg[host].stats, avg[sept].stats)]
            )
    notes = ["Δ = host+SEPT minus host, in points; averages over the datasets both methods have."]
    return Table(f"{protocol}-sept", f"{TITLES[protocol]}: host vs host + SEPT", columns, rows, notes)


def _triples(metrics: Sequence[str], host: dict[str, Stat], sept: dict[str, Stat]) -> list[Value]:
    out: list[Value] = []
    for m in metrics:
        h, s = host.get(m), sept.get(m)
        out += [h, s, Delta(s.mean - h.mean) if h is not None and s is not None else None]
    return out


def build_tables(groups: Sequence[Group], records: Sequence[RunRecord] = ()) -> list[Table]:
    """Every table of the report, protocol by protocol (base2new, fewshot, xd), then one ablation
    table per family of variants the ``records`` declare (:mod:`sept.report.ablations`)."""
    from sept.report.ablations import ablation_tables, families_of

    tables: list[Table] = []
    for protocol in ("base2new", "fewshot", "xd"):
        members = [g for g in groups if g.key.protocol == protocol]
        if not members:
            continue
        tables.append(average_table(protocol, members))
        sept = sept_table(protocol, members)
        if sept is not None:
            tables.append(sept)
        tables.append(dataset_table(protocol, members))
    return tables + ablation_tables(groups, families_of(records))
