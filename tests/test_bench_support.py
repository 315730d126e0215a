"""Helpers shared by the sweep tests (no tests here): tiny CLAP grids on generated tones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sept.bench.grid import GridSpec, parse_grid
from tests.test_methods_support import make_tone_dataset
from tests.tiny_models import save_tiny_clap

#: short training, so a cell takes well under a second with the tiny CLAP
FAST = ["optim.epochs=2", "optim.batch_size=4", "optim.warmup_epochs=0", "optim.lr=0.01"]


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny CLAP folder, a tone dataset (us8k class names, 2 folds) and a feature cache."""
    base = tmp_path_factory.mktemp("bench")
    return {
        "model": save_tiny_clap(base / "tiny_clap"),
        "tones": make_tone_dataset(base / "tones", per_class=6, folds=2),
        "cache": base / "cache",
    }


def grid_dict(env: dict[str, Path], run_root: Path, **extra: Any) -> dict[str, Any]:
    """A grid of the tone dataset on the tiny CLAP (``extra`` overrides keys)."""
    return {
        "name": "tiny",
        "run_root": str(run_root),
        "backbone": {"name": "clap", "options": {"model": str(env["model"]), "device": "cpu"}},
        "cache_dir": str(env["cache"]),
        "datasets": [{"data": str(env["tones"])}],
        "methods": ["zeroshot", "coop", "coop+sept"],
        "shots": [2],
        "seeds": [0, 1],
        "overrides": FAST,
        "executor": {"kind": "serial"},
        **extra,
    }


def make_grid(env: dict[str, Path], run_root: Path, **extra: Any) -> GridSpec:
    return parse_grid(grid_dict(env, run_root, **extra), "test grid")


def write_grid(env: dict[str, Path], run_root: Path, path: Path, **extra: Any) -> Path:
    path.write_text(yaml.safe_dump(grid_dict(env, run_root, **extra)))
    return path


def table_numbers(run_root: Path) -> list[str]:
    """The report tables of a run root as Markdown, without the measured Time/run column
    (two sweeps of the same grid give the same numbers, not the same timings)."""
    from dataclasses import replace

    from sept.report.aggregate import group_runs
    from sept.report.collect import collect_run_root
    from sept.report.tables import build_tables

    out = []
    records = collect_run_root(run_root)
    for t in build_tables(group_runs(records), records):
        keep = [j for j, c in enumerate(t.columns) if c != "Time/run"]
        out.append(
            replace(
                t, columns=[t.columns[j] for j in keep], rows=[[r[j] for j in keep] for r in t.rows]
            ).to_markdown()
        )
    return out
