"""Sweeps on the tiny CLAP: run once, rerun does nothing, failures reported, locks, the report's figures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.bench import sweep as sweep_module
from sept.bench.logs import cell_lock, lock_path
from sept.bench.sweep import run_sweep
from sept.cli.main import main
from sept.errors import SeptError
from sept.report.build import build_report
from tests.test_bench_support import bench_env, make_grid, write_grid

__all__ = ["bench_env"]


def _results(run_root: Path) -> dict[str, int]:
    return {str(p.relative_to(run_root)): p.stat().st_mtime_ns for p in run_root.rglob("results.json")}


def test_grid_runs_once_in_parallel_and_a_rerun_does_nothing(bench_env, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    grid = make_grid(bench_env, runs, folds=[2], executor={"kind": "local", "workers": 2})
    lines: list[str] = []
    first = run_sweep(grid, echo=lines.append)
    assert len(first.cells) == 6 and len(first.ran) == 6 and not first.failed
    assert len({o.worker for o in first.ran}) == 2  # two worker processes shared the cells
    done = _results(runs)
    assert len(done) == 6
    assert all((runs / c.id / "cell.log").read_text().count("====") == 1 for c in first.cells)
    (coop_log,) = runs.glob("base2new/metadata-*/fold-2/coop@*/shots-2/seed-0/cell.log")
    assert "epoch 2/2" in coop_log.read_text()
    record = json.loads(first.record.read_text())
    assert [c["status"] for c in record["cells"]] == ["ok"] * 6

    def must_not_run(*args, **kwargs):
        raise AssertionError("the second sweep did work")

    monkeypatch.setattr(sweep_module, "_pre_embed", must_not_run)
    monkeypatch.setattr("sept.bench.executors.run_cells", must_not_run)
    lines.clear()
    second = run_sweep(grid, echo=lines.append)
    assert second.ran == [] and {o.status for o in second.outcomes.values()} == {"finished"}
    assert lines == ["tiny: 6 cells, 6 finished, 0 to run"]
    assert _results(runs) == done


def test_a_failed_cell_is_reported_and_the_sweep_goes_on(bench_env, tmp_path, capsys, monkeypatch):
    import sept.protocols

    real = sept.protocols.run_protocol

    def fails_for_sept(protocol, backbone, dataset, method, *args, **kwargs):
        if method == "coop+sept":
            raise RuntimeError("out of memory (simulated)")
        return real(protocol, backbone, dataset, method, *args, **kwargs)

    monkeypatch.setattr(sept.protocols, "run_protocol", fails_for_sept)
    runs = tmp_path / "runs"
    config = write_grid(bench_env, runs, tmp_path / "g.yaml", folds=[1], seeds=[0, 1])
    code = main(["bench", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    assert "4 cell(s) ran, 0 were finished already, 2 failed" in out
    (failed_log,) = runs.glob("base2new/metadata-*/fold-1/coop+sept@*/shots-2/seed-1/cell.log")
    cell = failed_log.parent.relative_to(runs).as_posix()
    assert f"failed: {cell}: RuntimeError: out of memory" in out
    assert str(failed_log) in out
    text = failed_log.read_text()
    assert (
        "cell failed: RuntimeError: out of memory (simulated)" in text
        and "Traceback (most recent call last)" in text
    )
    assert len(list(runs.rglob("results.json"))) == 4  # zeroshot and coop, both seeds
    assert "| metadata | coop@" in out  # the table of what finished
    # the rerun retries only the failed cells
    monkeypatch.setattr(sept.protocols, "run_protocol", real)
    assert main(["bench", str(config)]) == 0
    assert "2 cell(s) ran, 4 were finished already, 0 failed" in capsys.readouterr().out


def test_data_problems_stop_the_sweep_before_any_compute(bench_env, tmp_path):
    # classes no shipped neighbour set knows: coop+sept could not be set up
    root = tmp_path / "hums"
    rows = ["path,classname,fold"]
    t = np.arange(8000) / 16000
    for c, name in enumerate(["low_hum", "mid_beep", "high_whistle", "odd_click"]):
        (root / name).mkdir(parents=True)
        for i in range(4):
            wave = (0.3 * np.sin(2 * np.pi * (200 + 400 * c + 7 * i) * t)).astype(np.float32)
            sf.write(root / name / f"{i}.wav", wave, 16000)
            rows.append(f"{name}/{i}.wav,{name},{1 + i % 2}")
    (root / "hums.csv").write_text("\n".join(rows) + "\n")
    runs = tmp_path / "runs"
    grid = make_grid(
        bench_env, runs, datasets=[{"data": str(root / "hums.csv")}], methods=["coop", "coop+sept"]
    )
    with pytest.raises(SeptError, match=r"base2new on hums: .*high whistle"):
        run_sweep(grid, echo=lambda s: None)
    assert not (runs / "base2new").exists()
    too_many = make_grid(
        bench_env, runs, datasets=[{"data": str(root / "hums.csv")}], methods=["coop"], shots=[5]
    )
    with pytest.raises(SeptError, match="hums"):
        run_sweep(too_many, echo=lambda s: None)


def test_a_cell_waits_while_another_process_holds_its_lock(tmp_path):
    cell = "base2new/x/fold-1/coop/shots-2/seed-0"
    path = lock_path(tmp_path, cell)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import filelock, time\nwith filelock.FileLock({str(path)!r}):\n print('held', flush=True)\n time.sleep(1.5)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    start = time.perf_counter()
    with cell_lock(tmp_path, cell, poll_seconds=0.05):
        waited = time.perf_counter() - start
    holder.wait(timeout=10)
    assert waited > 1.0
    with cell_lock(tmp_path, cell):  # free again: no wait
        pass


def test_dry_run_lists_cells(bench_env, tmp_path, capsys):
    config = write_grid(bench_env, tmp_path / "runs", tmp_path / "g.yaml", folds=[1], seeds=[0])
    assert main(["bench", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        sum(line.startswith("to run ") for line in out.splitlines()) == 3
        and "3 cells: 0 finished, 3 to run" in out
    )
    assert not (tmp_path / "runs" / "base2new").exists()


def test_set_adds_an_option_for_every_method_that_has_it(bench_env, tmp_path, capsys):
    config = write_grid(bench_env, tmp_path / "runs", tmp_path / "g.yaml", folds=[1], seeds=[0])
    assert (
        main(["bench", str(config), "--dry-run", "--set", "optim.epochs=3", "--set", "precision=bf16"]) == 0
    )
    listed = [line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.startswith("to run ")]
    coop = [c for c in listed if "/coop@" in c]
    assert len(listed) == 3 and coop and all("optim.epochs=3" in c for c in coop)
    assert any("/zeroshot/" in c for c in listed)  # zero-shot has no optimiser; precision names no variant
    assert main(["bench", str(config), "--dry-run", "--set", "nonsense.key=1"]) != 0
    assert "unknown key 'nonsense.key'" in capsys.readouterr().err


def test_report_of_a_sweep_has_readable_figures(bench_env, tmp_path):
    runs = tmp_path / "runs"
    result = run_sweep(make_grid(bench_env, runs, folds=[1]), echo=lambda s: None)
    assert not result.failed
    report = build_report(runs, echo=print)
    names = sorted(p.name for p in report.figures)
    assert len(names) == 3 and names[0] == "base2new-metadata.png"
    assert names[1].startswith("neighbours-metadata-coop") and names[2].startswith("projection-metadata-coop")
    for png in report.figures:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    page = report.html.read_text()
    for png in report.figures:
        assert f"figures/{png.name}" in page
    assert "Semantic structure" in page and "coop+sept" in page


def test_on_bad_audio_skip_counts_files_and_fail_stops_before_any_run(bench_env, tmp_path):
    from sept.errors import AudioDecodeError
    from tests.test_methods_support import make_tone_dataset

    csv = make_tone_dataset(tmp_path / "tones", per_class=6, folds=2)
    broken = next((tmp_path / "tones" / "audio").glob("*/0.wav"))  # in fold 1: a test clip of the run
    broken.write_bytes(b"RIFF not really a wav")
    extra = {"datasets": [{"data": str(csv)}], "methods": ["zeroshot"], "folds": [1], "seeds": [0]}
    runs = tmp_path / "runs"
    with pytest.raises(AudioDecodeError, match=broken.name):
        run_sweep(make_grid(bench_env, runs, on_bad_audio="fail", **extra), echo=lambda s: None)
    assert not list(runs.rglob("results.json"))

    lines: list[str] = []
    result = run_sweep(make_grid(bench_env, runs, **extra), echo=lines.append)
    assert not result.failed and any("1 undecodable" in line for line in lines)
    (path,) = runs.rglob("results.json")
    results = json.loads(path.read_text())
    skipped = results["base"]["num_skipped"] + results["new"]["num_skipped"]
    assert skipped == 1 and broken.name in json.dumps(results)
    said: list[str] = []
    build_report(runs, plots=False, echo=said.append)
    assert any("1 run(s) left 1 undecodable audio file(s)" in s for s in said)
