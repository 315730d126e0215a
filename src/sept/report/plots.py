"""The report's figures as PNG files (matplotlib, Agg backend, no display needed).

- grouped bars of Base / New / H (or any metric) per method, one figure per dataset and one for
  the average, with the std over seeds as error bars;
- class-neighbour heat maps: mean cosine of each class to the neighbour phrases of every class,
  before tuning (frozen template) and after tuning with each method;
- a 2-D projection (PCA per panel, rotated onto the frozen panel) of class and neighbour features.

A host and its +SEPT variant share a hue (light: host, dark and hatched: +SEPT); zero-shot is grey.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sept.report.aggregate import Stat, sept_host
from sept.report.tables import LABELS, method_order
from sept.utils.atomic import atomic_write

if TYPE_CHECKING:
    from sept.report.geometry import TextGeometry

DPI = 150
_GREY = "#9a9a9a"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False}
    )
    return plt


def method_colors(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{method: (colour, hatch)}: hosts light, their +SEPT variants dark and hatched."""
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].colors
    families = sorted(
        {sept_host(m) or m for m in methods if (sept_host(m) or m) != "zeroshot"}, key=method_order
    )
    out = {}
    for m in methods:
        base = sept_host(m) or m
        if base == "zeroshot":
            out[m] = (_GREY, "")
            continue
        k = families.index(base) % 10
        out[m] = (
            matplotlib.colors.to_hex(tab20[2 * k if sept_host(m) else 2 * k + 1]),
            "///" if sept_host(m) else "",
        )
    return out


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    plt = _pyplot()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    plt.close(fig)
    return out


def grouped_bars(
    values: dict[str, dict[str, Stat | None]],
    metrics: Sequence[str],
    title: str,
    path: str | os.PathLike[str],
    colors: dict[str, tuple[str, str]] | None = None,
    xlabels: Sequence[str] | None = None,
) -> Path:
    """Bars of ``values[method][metric]`` (mean, std as error bar), grouped by metric, as a PNG.

    ``xlabels`` names the groups (default: the metric labels).
    """
    return _save(bars_figure(values, metrics, title, colors, xlabels), path)


def bars_figure(
    values: dict[str, dict[str, Stat | None]],
    metrics: Sequence[str],
    title: str,
    colors: dict[str, tuple[str, str]] | None = None,
    xlabels: Sequence[str] | None = None,
) -> Any:
    """The figure of :func:`grouped_bars`: every value label lies inside the axes, below the title
    (the y axis grows past 100 when a label needs the room; its ticks stop at 100)."""
    plt = _pyplot()
    methods = sorted(values, key=method_order)
    colors = colors or method_colors(methods)
    n, groups = len(methods), len(metrics)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + groups * (0.55 * n + 0.5)), 4.4))
    x = np.arange(groups)
    top = 0.0
    texts = []
    for i, m in enumerate(methods):
        stats = [values[m].get(k) for k in metrics]
        means = [s.mean if s is not None else np.nan for s in stats]
        errs = [s.std if s is not None and s.std is not None else 0.0 for s in stats]
        color, hatch = colors[m]
        pos = x - 0.4 + width * (i + 0.5)
        bars = ax.bar(
            pos,
            means,
            width * 0.92,
            yerr=errs,
            capsize=2.5,
            color=color,
            hatch=hatch,
            edgecolor="#333333",
            linewidth=0.6,
            label=m,
            error_kw={"elinewidth": 0.8},
        )
        for bar, mean, err in zip(bars, means, errs, strict=True):
            if np.isfinite(mean):
                text = ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    mean + err + 0.8,
                    f"{mean:.1f}",
                    ha="center",
                    va="bottom",
                    fontsize=7 if n > 4 else 8,
                    rotation=90 if n > 6 else 0,
                )
                texts.append(text)
                top = max(top, mean + err)
    ax.set_xticks(x, list(xlabels) if xlabels else [LABELS.get(k, k) for k in metrics])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, min(100.0, top + 12) if top > 0 else 100.0)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(ncols=min(n, 5), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False, fontsize=9)
    _fit_texts_below_top(fig, ax, texts)
    return fig


def _fit_texts_below_top(fig: Any, ax: Any, texts: Sequence[Any]) -> None:
    """Raise the y limit until every text ends inside the axes (so none reaches the title)."""
    if not texts:
        return
    renderer = fig.canvas.get_renderer()
    for _ in range(4):  # the text heights in data units shrink as the limit grows: converge
        fig.canvas.draw()
        axes_top = ax.get_window_extent(renderer).y1
        highest = max(t.get_window_extent(renderer).y1 for t in texts)
        if highest <= axes_top - 2:
            break
        low, high = ax.get_ylim()
        data_per_px = (high - low) / max(ax.get_window_extent(renderer).height, 1.0)
        ax.set_ylim(low, high + (highest - axes_top + 6) * data_per_px)
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 100])


def neighbour_heatmaps(geo: TextGeometry, path: str | os.PathLike[str]) -> Path:
    """One heat map per panel: (i, j) = mean cosine of class i to the neighbour phrases of class j."""
    plt = _pyplot()
    panels = list(geo.panels)
    mats = [geo.class_to_class(p).numpy() for p in panels]
    c = len(geo.classes)
    vmin, vmax = min(float(m.min()) for m in mats), max(float(m.max()) for m in mats)
    cell = 0.42 if c <= 12 else max(0.12, 5.0 / c)
    side = max(3.2, cell * c + 1.6)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(side * len(panels) + 1.0, side + 0.9), squeeze=False, layout="constrained"
    )
    labels = [f"{name} (new)" if i >= geo.n_base else name for i, name in enumerate(geo.classes)]
    image = None
    for ax, panel, mat in zip(axes[0], panels, mats, strict=True):
        image = ax.imshow(mat, cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(panel)
        ax.set_xticks(
            range(c), labels if c <= 40 else [""] * c, rotation=60, ha="right", fontsize=8 if c <= 12 else 6
        )
        ax.set_yticks(
            range(c), labels if (c <= 40 and ax is axes[0][0]) else [""] * c, fontsize=8 if c <= 12 else 6
        )
        ax.set_xlabel("neighbour phrases of class")
        if 0 < geo.n_base < c:
            for line in (ax.axhline, ax.axvline):
                line(geo.n_base - 0.5, color="white", linewidth=1.2, linestyle="--")
        if c <= 12:
            mid = (vmin + vmax) / 2
            for i in range(c):
                for j in range(c):
                    ax.text(
                        j,
                        i,
                        f"{mat[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="black" if mat[i, j] > mid else "white",
                    )
        ax.spines[:].set_visible(False)
    axes[0][0].set_ylabel("class")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="mean cosine similarity")
    fig.suptitle(
        f"{geo.dataset}: class vs neighbour-phrase similarity ({len(geo.phrases)} phrases from {geo.neighbor_set}; "
        "dashed: base | new)",
        fontsize=11,
    )
    return _save(fig, path)


def _pca2(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def _align(points: np.ndarray, reference: np.ndarray, idx: slice) -> np.ndarray:
    """Rotate/reflect ``points`` [N, 2] so its rows ``idx`` best match ``reference`` (orthogonal Procrustes)."""
    u, _, vt = np.linalg.svd(points[idx].T @ reference[idx])
    return points @ (u @ vt)


#: label offsets tried around a point (points): rings of growing radius, 8 directions each
_RINGS = (7.0, 16.0, 28.0, 44.0, 64.0)
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def place_labels(
    fig: Any, ax: Any, points: np.ndarray, texts: Sequence[str], fontsize: float, marker_px: float = 9.0
) -> list[tuple[float, float]]:
    """Offsets (in points) for a label at each point such that no two labels, no label and a
    point's marker, and no label and the axes' edge overlap where the rings of candidate offsets
    allow; else the offset that overlaps least. Measured with the renderer on the settled layout."""
    fig.canvas.draw()  # constrained layout decides the axes' final size first
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    scale = fig.dpi / 72.0
    centres = ax.transData.transform(points)
    obstacles = [(x - marker_px, y - marker_px, x + marker_px, y + marker_px) for x, y in centres]
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for (px, py), text in zip(centres, texts, strict=True):
        probe = ax.text(0, 0, text, fontsize=fontsize, fontweight="bold")
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width + 4 * scale, extent.height + 3 * scale
        best, best_cost, chosen = (_RINGS[0], _RINGS[0]), float("inf"), (0.0, 0.0, 0.0, 0.0)
        for radius in _RINGS:
            for dx, dy in _DIRECTIONS:
                ox, oy = dx * radius * scale, dy * radius * scale
                left = px + ox - (w if dx < 0 else w / 2 if dx == 0 else 0.0)
                bottom = py + oy - (h if dy < 0 else h / 2 if dy == 0 else 0.0)
                box = (left, bottom, left + w, bottom + h)
                outside = w * h - _overlap(box, (frame.x0, frame.y0, frame.x1, frame.y1))
                cost = 10 * outside + sum(_overlap(box, b) for b in placed + obstacles)
                if cost < best_cost:
                    best_cost, chosen = cost, box
                    best = ((box[0] - px) / scale, (box[1] - py) / scale)
                if cost == 0:
                    break
            if best_cost == 0:
                break
        placed.append(chosen)
        out.append(best)
    return out


def projection(geo: TextGeometry, path: str | os.PathLike[str]) -> Path:
    """Class features (labelled stars) and neighbour features (dots, coloured by class), per panel."""
    return _save(projection_figure(geo), path)


def projection_figure(geo: TextGeometry) -> Any:
    """The figure of :func:`projection`; class labels placed by :func:`place_labels` (a thin
    leader line joins a label set away from its star)."""
    import matplotlib

    plt = _pyplot()
    panels = list(geo.panels)
    c = len(geo.classes)
    owner = geo.owner.numpy()
    coords = []
    for p in panels:
        classes, phrases = geo.panels[p]
        coords.append(_pca2(np.concatenate([classes.numpy(), phrases.numpy()])))
    coords = [coords[0]] + [_align(pts, coords[0], slice(0, c)) for pts in coords[1:]]
    allpts = np.concatenate(coords)
    lo, hi = allpts.min(0), allpts.max(0)
    pad = 0.06 * (hi - lo) + 1e-6
    lo, hi = lo - pad, hi + pad * np.array([2.5, 1.0])  # room for the labels on the right
    cmap = matplotlib.colormaps["tab10" if c <= 10 else "tab20"]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.2 * len(panels), 6.6), squeeze=False, layout="constrained"
    )
    fontsize = 8 if c <= 12 else 7
    for ax, panel, pts in zip(axes[0], panels, coords, strict=True):
        cls, phr = pts[:c], pts[c:]
        ax.scatter(phr[:, 0], phr[:, 1], c=[cmap(o % cmap.N) for o in owner], s=14, alpha=0.55, linewidths=0)
        ax.scatter(
            cls[:, 0],
            cls[:, 1],
            marker="*",
            s=220,
            color=[cmap(i % cmap.N) for i in range(c)],
            edgecolors="black",
            linewidths=0.8,
            zorder=3,
        )
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_title(panel)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(True)
    fig.suptitle(
        f"{geo.dataset}: 2-D PCA of class features (stars; bold: base, italic: new) and their neighbour phrases (dots)",
        fontsize=11,
    )
    if c > 20:
        return fig
    for ax, pts in zip(axes[0], coords, strict=True):  # labels last, on the final layout
        cls = pts[:c]
        for i, offset in enumerate(place_labels(fig, ax, cls, geo.classes, fontsize)):
            new = i >= geo.n_base
            label = ax.annotate(
                geo.classes[i],
                (cls[i, 0], cls[i, 1]),
                xytext=offset,
                textcoords="offset points",
                ha="left",
                va="bottom",
                fontsize=fontsize,
                fontstyle="italic" if new else "normal",
                fontweight="normal" if new else "bold",
                zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.75, "lw": 0},
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555"}
                if max(abs(v) for v in offset) > _RINGS[1] + 20
                else None,
            )
            label.set_in_layout(False)  # placed on the settled layout: must not move it
    return fig
