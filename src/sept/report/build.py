"""``build_report(run_root)``: tables (Markdown, CSV, LaTeX), PNG figures and a static HTML page.

Layout of the output folder (default ``<run_root>/report``)::

    report.html  report.md  tables/<key>.csv  tables/<key>.tex  figures/*.png

The semantic-structure figures are drawn from the features each run saved when it was trained
(:mod:`sept.analysis.structure`): the report loads no backbone and no prompt. Ablation families
(variants a grid declared with a ``family``) get one table each, with the delta of every variant
against its reference.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sept.errors import DataError
from sept.report.aggregate import Group, average_over_datasets, group_runs, sept_host
from sept.report.collect import METRICS, RunRecord, collect, find_results
from sept.report.html import Figure, Section, render_page
from sept.report.story import Story, tell
from sept.report.tables import TITLES, Table, build_tables, method_order
from sept.runs.layout import RESULTS_FILE
from sept.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: Path
    html: Path
    markdown: Path
    tables: list[Table]
    figures: list[Path] = field(default_factory=list)
    runs: int = 0
    story: Story = field(default_factory=Story)
    heatmaps: list[Path] = field(default_factory=list)  # Figure 1 of the story (CoOp vs CoOp+SEPT)


def _slug(*parts: object) -> str:
    return "-".join(
        re.sub(r"[^A-Za-z0-9._+-]+", "_", str(p)).strip("_") for p in parts if p not in (None, "")
    )


def _combos(groups: Sequence[Group]) -> list[tuple[str, int]]:
    return sorted({(g.key.backbone, g.key.shots) for g in groups})


# ---- figures ----------------------------------------------------------------------------------
def _bar_figures(protocol: str, groups: Sequence[Group], fig_dir: Path) -> list[Figure]:
    from sept.report.plots import grouped_bars, method_colors

    figures: list[Figure] = []
    colors = method_colors(sorted({g.key.method for g in groups}))
    combos = _combos(groups)
    for backbone, shots in combos:
        members = [g for g in groups if (g.key.backbone, g.key.shots) == (backbone, shots)]
        suffix = _slug(backbone, f"k{shots}") if len(combos) > 1 else ""
        tag = f" ({backbone}, K={shots})" if len(combos) > 1 else f" (K={shots})"
        if protocol == "base2new":
            metrics = list(METRICS[protocol])
            averages = {a.method: a.stats for a in average_over_datasets(members)}
            datasets = sorted({g.key.dataset for g in members}, key=str.lower)
            if len(datasets) > 1:
                path = grouped_bars(
                    averages,
                    metrics,
                    f"Base-to-new, average over {len(datasets)} datasets{tag}",
                    fig_dir / f"{_slug('base2new-average', suffix)}.png",
                    colors,
                )
                figures.append(Figure(f"figures/{path.name}", f"Average over datasets{tag}"))
            for d in datasets:
                values = {g.key.method: g.stats for g in members if g.key.dataset == d}
                path = grouped_bars(
                    values,
                    metrics,
                    f"{d}: base-to-new{tag}",
                    fig_dir / f"{_slug('base2new', d, suffix)}.png",
                    colors,
                )
                figures.append(Figure(f"figures/{path.name}", f"{d}{tag}"))
        else:
            metric = "accuracy" if protocol == "fewshot" else None
            for source in (
                sorted({g.key.dataset for g in members}, key=str.lower) if protocol == "xd" else [None]
            ):
                chosen = [g for g in members if source is None or g.key.dataset == source]
                if protocol == "xd":
                    keys = sorted(
                        {m for g in chosen for m in g.stats if m.startswith("target:")}, key=str.lower
                    )
                    keys = ["source", *keys, "mean_target"]
                    values = {g.key.method: g.stats for g in chosen}
                    xlabels = [
                        source or "",
                        *(k.removeprefix("target:") for k in keys[1:-1]),
                        "mean of targets",
                    ]
                    title = f"Cross-dataset transfer from {source}{tag}"
                else:
                    keys = sorted({g.key.dataset for g in chosen}, key=str.lower)
                    values = defaultdict(dict)
                    for g in chosen:
                        values[g.key.method][g.key.dataset] = g.stats.get(metric or "")
                    if len(keys) > 1:
                        for a in average_over_datasets(chosen):
                            values[a.method]["Average"] = a.stats.get(metric or "")
                        keys.append("Average")
                    xlabels, title = keys, f"Few-shot accuracy (all classes){tag}"
                path = grouped_bars(
                    dict(values),
                    keys,
                    title,
                    fig_dir / f"{_slug(protocol, source, suffix)}.png",
                    colors,
                    xlabels,
                )
                figures.append(Figure(f"figures/{path.name}", title, wide=len(keys) > 6))
    return figures


def _geometry_pairs(records: Sequence[RunRecord]) -> list[tuple[str, str, dict[str, Path]]]:
    """(dataset, host, {method: run folder}) for each base-to-new host with a +SEPT variant:
    the runs of the smallest seed and first fold that both have."""
    runs: dict[tuple[str, str, int, str], dict[tuple[int, str], Path]] = defaultdict(dict)
    for r in records:
        if r.protocol == "base2new":
            runs[(r.dataset, r.backbone, r.shots, r.method)][(r.seed, str(r.fold))] = r.path.parent
    out = []
    for (dataset, backbone, shots, method), folders in sorted(
        runs.items(), key=lambda kv: (kv[0][0].lower(), kv[0][1:3], method_order(kv[0][3]))
    ):
        host = sept_host(method)
        if host is None or (dataset, backbone, shots, host) not in runs:
            continue
        host_folders = runs[(dataset, backbone, shots, host)]
        shared = sorted(set(folders) & set(host_folders))
        if shared:
            key = shared[0]
            out.append((dataset, host, {host: host_folders[key], method: folders[key]}))
    return out


def _geometry_figures(
    records: Sequence[RunRecord], fig_dir: Path, echo: Callable[[str], None]
) -> list[Figure]:
    from sept.report.geometry import text_geometry
    from sept.report.plots import neighbour_heatmaps, projection

    figures = []
    for dataset, host, runs in _geometry_pairs(records):
        try:
            geo = text_geometry(runs)
        except DataError as exc:
            echo(f"report: no semantic-structure figures for {dataset} {host}: {exc}")
            continue
        folder = next(iter(runs.values()))
        where = (
            f"fold {folder.parent.parent.parent.name.removeprefix('fold-')}, {folder.name.replace('-', ' ')}"
        )
        heat = neighbour_heatmaps(geo, fig_dir / f"{_slug('neighbours', dataset, host)}.png")
        proj = projection(geo, fig_dir / f"{_slug('projection', dataset, host)}.png")
        figures.append(
            Figure(
                f"figures/{heat.name}",
                f"{dataset}, {host} vs {host}+sept ({where}): class-neighbour similarity",
                wide=True,
                key=("neighbours", dataset, host),
            )
        )
        figures.append(
            Figure(
                f"figures/{proj.name}",
                f"{dataset}, {host} vs {host}+sept ({where}): 2-D projection",
                wide=True,
            )
        )
    return figures


# ---- the report -------------------------------------------------------------------------------
def _skipped_rows(records: Sequence[RunRecord], run_root: Path) -> list[tuple[str, str, int]]:
    """(run folder, parts with counts, total) of every run that left undecodable files out."""
    rows = []
    for r in records:
        if r.num_skipped:
            folder = r.path.parent
            with contextlib.suppress(ValueError):
                folder = folder.relative_to(run_root)
            parts = ", ".join(f"{name} {n}" for name, n in r.skipped.items())
            rows.append((str(folder), parts, r.num_skipped))
    return rows


def _skipped_intro(rows: Sequence[tuple[str, str, int]]) -> str:
    total = sum(n for _, _, n in rows)
    return (
        f"{len(rows)} run(s) left {total} undecodable audio file(s) out of training or evaluation "
        f"(each run's {RESULTS_FILE} lists the files and the reasons). Their accuracies are over the clips "
        "that could be read."
    )


def _markdown(
    tables: Sequence[Table], run_root: Path, n_runs: int, skipped: Sequence[tuple[str, str, int]]
) -> str:
    lines = [f"# sept report: {run_root}", "", f"{n_runs} finished runs. Numbers are accuracies in %.", ""]
    if skipped:
        lines += [f"**Files left out.** {_skipped_intro(skipped)} See the end of this report.", ""]
    for t in tables:
        lines += [t.to_markdown(), ""]
    if skipped:
        lines += ["## Files left out", "", "| run | files left out | total |", "|---|---|---:|"]
        lines += [f"| {folder} | {parts} | {n} |" for folder, parts, n in skipped]
        lines.append("")
    return "\n".join(lines)


def _skipped_html(rows: Sequence[tuple[str, str, int]]) -> str:
    body = "".join(
        f"<tr><td><code>{html.escape(folder)}</code></td><td>{html.escape(parts)}</td><td>{n}</td></tr>"
        for folder, parts, n in rows
    )
    return f"<table><thead><tr><th>run</th><th>files left out</th><th>total</th></tr></thead><tbody>{body}</tbody></table>"


def build_report(
    run_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    plots: bool = True,
    geometry: bool = True,
    results: Sequence[str | os.PathLike[str]] | None = None,
    echo: Callable[[str], None] = print,
) -> Report:
    """Write the report of every finished run under ``run_root`` (or of the ``results`` files given)."""
    run_root = Path(run_root)
    records = collect(results if results is not None else find_results(run_root))
    if not records:
        raise DataError(f"no finished run ({RESULTS_FILE}) under {str(run_root)!r}")
    out = Path(out_dir) if out_dir is not None else run_root / "report"
    groups = group_runs(records)
    story = tell(groups)
    tables = [t for t in (story.table(), *build_tables(groups, records)) if t is not None]
    for t in tables:
        atomic_write_text(out / "tables" / f"{t.key}.csv", t.to_csv())
        atomic_write_text(out / "tables" / f"{t.key}.tex", t.to_latex())
    skipped = _skipped_rows(records, run_root)
    if skipped:
        echo(f"warning: {_skipped_intro(skipped)}")
    md = atomic_write_text(out / "report.md", _markdown(tables, run_root, len(records), skipped))
    sections: list[Section] = []
    figures: list[Figure] = []
    for protocol in ("base2new", "fewshot", "xd"):
        members = [g for g in groups if g.key.protocol == protocol]
        if not members:
            continue
        figs = _bar_figures(protocol, members, out / "figures") if plots else []
        figures += figs
        mine = [t for t in tables if t.key == protocol or t.key.startswith(f"{protocol}-")]
        sections.append(Section(TITLES[protocol], tables=[t.to_html() for t in mine if t.key != protocol]))
        if figs:
            sections.append(Section("Figures", figures=figs, level=3))
        sections.append(
            Section("Per dataset", tables=[t.to_html() for t in mine if t.key == protocol], level=3)
        )
    if plots and geometry:
        geo = _geometry_figures(records, out / "figures", echo)
        figures += geo
        if geo:
            sections.append(
                Section(
                    "Semantic structure: classes and their neighbour phrases",
                    "Before tuning: the frozen text tower on 'the sound of {}.'. After: each trained prompt encodes the "
                    "class names and the neighbour phrases. Heat maps give the mean cosine of a class (row) to the phrases "
                    "of a class (column): a bright diagonal and a darker rest mean the classes keep their semantic "
                    "neighbourhoods. The projections show the same features in 2-D (PCA, each panel rotated onto the "
                    "frozen one).",
                    figures=geo,
                )
            )
    story_section = story.section(figures)
    sections[:0] = [story_section] if story_section else []
    if skipped:
        sections.append(Section("Files left out", _skipped_intro(skipped), tables=[_skipped_html(skipped)]))
    backbones = sorted({r.backbone for r in records})
    meta = [
        f"Run root <code>{html.escape(str(run_root))}</code> · {len(records)} finished runs · backbone "
        f"{html.escape(', '.join(backbones))} · written {time.strftime('%Y-%m-%d %H:%M')}",
        "Tables as <a href='report.md'>Markdown</a> and in <a href='tables/'>tables/</a> (CSV, LaTeX). "
        "Accuracies in %, mean ± std over seeds (folds averaged first).",
    ]
    page = atomic_write_text(out / "report.html", render_page("sept benchmark report", meta, sections))
    heatmaps = [out / f.src for f in story_section.figures] if story_section else []
    return Report(out, page, md, tables, [out / f.src for f in figures], len(records), story, heatmaps)
