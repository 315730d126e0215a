"""The paper's Figure 1 for one run: class-to-neighbour cosine heat maps, frozen vs tuned."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sept.analysis.structure import StructureMatrices, summarize


def class_block_means(m: StructureMatrices, which: str) -> np.ndarray:
    """[C, C] mean cosine of class i to the neighbours of class j (rows: classes)."""
    sims = (m.frozen if which == "frozen" else m.tuned).numpy()
    owner = m.owner.numpy()
    return np.stack([sims[:, owner == j].mean(axis=1) for j in range(len(m.classes))], axis=1)


def plot_heatmaps(m: StructureMatrices, out: str | os.PathLike[str], title: str = "") -> Path:
    """Two heat maps side by side (frozen, tuned) of class-to-neighbour-set mean cosine; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frozen, tuned = class_block_means(m, "frozen"), class_block_means(m, "tuned")
    lo, hi = float(min(frozen.min(), tuned.min())), float(max(frozen.max(), tuned.max()))
    n = len(m.classes)
    size = max(4.0, 0.45 * n + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.2, size), constrained_layout=True)
    summary = summarize(m)
    for ax, mat, name in ((axes[0], frozen, "frozen"), (axes[1], tuned, "tuned")):
        im = ax.imshow(mat, vmin=lo, vmax=hi, cmap="viridis")
        ax.set_xticks(range(n), m.classes, rotation=60, ha="right", fontsize=9)
        ax.set_yticks(range(n), m.classes, fontsize=9)
        ax.set_xlabel("neighbours of class")
        ax.set_ylabel("class prompt")
        gap = summary[f"intra_cos_{name}"] - summary[f"inter_cos_{name}"]
        ax.set_title(f"{name}: own - other neighbours = {gap:+.3f}", fontsize=10)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    color = "white" if mat[i, j] < (lo + hi) / 2 else "black"
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean cosine")
    fig.suptitle(f"{title}  (retention r = {summary['retention']:.3f})".strip(), fontsize=11)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out
