"""Base / New / H (mean +- std over seeds) and training time per step of the runs under a run root.

    python benchmarks/summarize_runs.py RUN_ROOT [RUN_ROOT ...]

One row per (dataset, variant): the mean and sample standard deviation over its seeds of Base, New
and H, the number of seeds, and the mean training seconds per optimisation step (the trainer's own
timing of each epoch over ceil(clips / batch) steps; wall-clock on whatever machine ran it).
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from sept.runs.store import read_results


def rows(root: Path) -> list[str]:
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for path in sorted(root.rglob("results.json")):
        r = read_results(path)
        groups[(r.data["dataset"], r.data["variant"]["name"])].append(r.data)
    out = []
    for (dataset, variant), runs in sorted(groups.items()):
        cells = []
        for key in ("base", "new", "h"):
            values = [r["summary"][key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.2f} +- {spread:.2f}")
        per_step = []
        for r in runs:
            train, batch = r["train"], r["config"]["optim"]["batch_size"]
            steps = len(train["history"]) * math.ceil(train["clips"] / batch)
            per_step.append(sum(h["seconds"] for h in train["history"]) / steps)
        out.append(
            f"| {dataset} | {variant} | {' | '.join(cells)} | {len(runs)} | {statistics.fmean(per_step):.2f} s |"
        )
    return out


def main(argv: list[str]) -> int:
    print("| dataset | variant | Base | New | H | seeds | train s/step |")
    print("|---|---|---|---|---|---|---|")
    for root in argv:
        print("\n".join(rows(Path(root))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
