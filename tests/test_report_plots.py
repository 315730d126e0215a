"""Report figures: labels that do not overlap each other or the title."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sept.report.aggregate import Stat
from sept.report.geometry import BEFORE, TextGeometry
from sept.report.plots import bars_figure, projection_figure

pytest.importorskip("matplotlib")


def _boxes(fig, artists):
    """Text boxes in pixels (an annotation's own box: without its leader line)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(a, renderer) for a in artists]


def _crowded_geometry(c: int = 10, per_class: int = 3, seed: int = 0) -> TextGeometry:
    """Class features in one tight cluster but two far classes: the labels compete for room."""
    gen = torch.Generator().manual_seed(seed)
    dim = 16
    centre = torch.zeros(dim)
    classes = centre + 0.02 * torch.randn(c, dim, generator=gen)
    classes[-1, 0], classes[-2, 1] = 3.0, 3.0
    owner = torch.arange(c).repeat_interleave(per_class)
    phrases = classes[owner] + 0.05 * torch.randn(len(owner), dim, generator=gen)
    names = [f"class name {i}" for i in range(c)]
    geo = TextGeometry("tones", names, c // 2, [f"p{i}" for i in range(len(owner))], owner, "set")
    geo.panels[BEFORE] = (classes, phrases)
    geo.panels["coop"] = (classes + 0.01, phrases)
    return geo


def test_projection_labels_do_not_overlap():
    import matplotlib.pyplot as plt

    fig = projection_figure(_crowded_geometry())
    try:
        for ax in fig.axes:
            labels = [t for t in ax.texts if t.get_text().startswith("class name")]
            assert len(labels) == 10
            boxes = _boxes(fig, labels)
            frame = ax.get_window_extent(fig.canvas.get_renderer())
            overlapping = [
                (a.get_text(), b.get_text())
                for (a, ba), (b, bb) in itertools.combinations(zip(labels, boxes, strict=True), 2)
                if ba.overlaps(bb)
            ]
            assert overlapping == []
            assert all(frame.x0 - 1 <= b.x0 and b.x1 <= frame.x1 + 1 for b in boxes)  # inside the panel
    finally:
        plt.close(fig)


def test_bar_labels_stay_below_the_title():
    """Seven methods near 100% (rotated value labels) used to run into the title."""
    import matplotlib.pyplot as plt

    methods = ["zeroshot", "coop", "coop+sept", "kgcoop", "kgcoop+sept", "cocoop", "cocoop+sept"]
    values = {
        m: {k: Stat(97.0 + i * 0.3, 1.5, 3) for k in ("base", "new", "h")} for i, m in enumerate(methods)
    }
    fig = bars_figure(values, ["base", "new", "h"], "us8k-mini: base-to-new")
    try:
        ax = fig.axes[0]
        labels = [t for t in ax.texts if t.get_text()]
        title = _boxes(fig, [ax.title])[0]
        frame = ax.get_window_extent(fig.canvas.get_renderer())
        for box in _boxes(fig, labels):
            assert box.y1 <= frame.y1 and not box.overlaps(title)
        assert max(ax.get_yticks()) <= 100  # the axis grew for the labels, not the scale
    finally:
        plt.close(fig)


def test_bar_values_are_drawn():
    import matplotlib.pyplot as plt

    fig = bars_figure({"coop": {"h": Stat(50.0, None, 1)}}, ["h"], "t")
    try:
        assert [t.get_text() for t in fig.axes[0].texts] == ["50.0"]
        assert np.isclose(fig.axes[0].patches[0].get_height(), 50.0)
    finally:
        plt.close(fig)
