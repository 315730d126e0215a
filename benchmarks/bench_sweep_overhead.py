"""A sweep's time outside training and evaluation, and ``sept bench --estimate`` against the real run.

Runs a grid (default: configs/demo.yaml, the offline demo: 42 cells) as ``sept bench`` does, in a
child process, into a fresh run root (``--force``), and prints (fill the feature cache first:
run the grid once; the script warns when the sweep had to compute features):

- the wall time and the CPU time (the child and its worker processes) of the sweep;
- the sum over cells of their training and evaluation time (``phases`` of each cell in the sweep
  record: building and training the method; predictions, metrics and the structure analysis),
  and **wall / (sum / workers)** (target <= 1.2: the time the workers spend on anything else —
  process start, imports, backbone load, feature reads, evaluation set-up — is at most 20 %);
- ``sept bench GRID --estimate``'s projection, timed just before the run, against the measured
  wall time (target: within 25 %).

``--src DIR`` runs the sweep with another copy of the library (e.g. the main branch's ``src``) to
measure before a change; a library without per-cell phases gives wall and CPU time only.

    python benchmarks/bench_sweep_overhead.py [--grid configs/demo.yaml] [--src DIR] [--no-estimate]
        [--set precision=bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

TARGET_OVERHEAD = 1.2
TARGET_ESTIMATE = 0.25


def run_sweep(grid: Path, run_root: Path, env: dict[str, str], sets: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child and its workers, output) of ``sept bench``."""
    cmd = [sys.executable, "-m", "sept", "bench", str(grid), "--run-root", str(run_root), "--force", *sets]
    print("$", " ".join(cmd[1:]))
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=benchlib.REPO)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode != 0:
        raise SystemExit(f"sept bench failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return wall, cpu, proc.stdout


def cell_times(run_root: Path) -> tuple[dict[str, float], int, float, int]:
    """(summed phase seconds, cells with phases, summed train seconds from results.json, workers)."""
    records = sorted((run_root / "bench").glob("sweep-*.json"))
    if not records:
        raise SystemExit(f"no sweep record in {run_root / 'bench'}")
    record = json.loads(records[-1].read_text())
    phases: dict[str, float] = {}
    with_phases = 0
    for cell in record["cells"]:
        if cell.get("phases"):
            with_phases += 1
            for k, v in cell["phases"].items():
                phases[k] = phases.get(k, 0.0) + v
    trained = 0.0
    for path in run_root.rglob("results.json"):
        trained += float(json.loads(path.read_text()).get("train", {}).get("seconds") or 0.0)
    workers = len({c.get("worker") for c in record["cells"] if c.get("worker")}) or 1
    return phases, with_phases, trained, workers


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grid", type=Path, default=benchlib.REPO / "configs" / "demo.yaml")
    parser.add_argument("--src", type=Path, default=None, help="run the sweep with this copy of the library")
    parser.add_argument("--no-estimate", action="store_true", help="skip the --estimate check")
    parser.add_argument("--keep", type=Path, default=None, help="run root to keep (default: a temporary one)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="`sept bench --set` for the estimate and the sweep, e.g. precision=bf16 (as `sept demo` on a bf16 CPU)",
    )  # fmt: skip
    args = parser.parse_args()
    check = benchlib.Check(f"sweep overhead and estimate ({args.grid.name})")
    src = (args.src or benchlib.REPO / "src").resolve()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    sets = [f"--set={o}" for o in args.overrides]
    print(f"library: {src}" + (f"; {' '.join(sets)}" if sets else ""))
    with tempfile.TemporaryDirectory(prefix="sept-bench-sweep-") as tmp:
        run_root = args.keep or Path(tmp) / "runs"
        projection = None
        if not args.no_estimate:
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "sept", "bench", str(args.grid), "--estimate", "--run-root", str(Path(tmp) / "est"),
                 *sets],
                env=env, cwd=benchlib.REPO, capture_output=True, text=True,
            )  # fmt: skip
            print(out.stdout[-3000:])
            if out.returncode != 0:
                raise SystemExit(f"--estimate failed:\n{out.stderr[-3000:]}")
            projection = _projected_seconds(out.stdout)
            print(f"(the estimate took {time.perf_counter() - t0:.0f} s)")
        if run_root.exists():
            shutil.rmtree(run_root)
        wall, cpu, output = run_sweep(args.grid, run_root, env, sets)
        print(output[-2500:])
        if "(0 computed" not in output:
            print("WARNING: the sweep computed features (fill the cache first: run the grid once)")
        phases, with_phases, trained, workers = cell_times(run_root)
    print(f"sweep: wall {wall:.1f} s, CPU {cpu:.1f} s (child and workers), CPU / wall {cpu / wall:.2f}")
    print(f"cells: training {trained:.1f} s summed (results.json)")
    if with_phases:
        busy = phases.get("train", 0.0) + phases.get("eval", 0.0)
        print(
            f"cells: train {phases.get('train', 0.0):.1f} s + eval {phases.get('eval', 0.0):.1f} s = {busy:.1f} s "
            f"summed over {with_phases} cells; {workers} worker(s): {busy / workers:.1f} s per worker"
        )
        check.ratio(
            "wall / (train + eval per worker)", wall / (busy / workers), TARGET_OVERHEAD, at_least=False
        )
    else:
        print("this library records no per-cell phases: wall and CPU time only")
    if projection is not None:
        err = projection / wall - 1.0
        print(f"estimate: projected {projection:.1f} s, measured {wall:.1f} s ({err:+.1%})")
        check.ratio("estimate error |projected / measured - 1|", abs(err), TARGET_ESTIMATE, at_least=False)
    return check.exit_code()


def _projected_seconds(text: str) -> float:
    for line in text.splitlines():
        if "projected wall time" in line:
            value = line.rsplit("projected wall time", 1)[1].strip()
            number, unit = value.split()[:2]
            return float(number) * {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]
    raise SystemExit(f"no projection in the output of --estimate:\n{text[-2000:]}")


if __name__ == "__main__":
    sys.exit(main())
