"""Few-shot sampling, base/new split, cross-dataset sets and manifests (reuse, determinism across processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sept.data import (
    Clip,
    TrainTestDataset,
    base_new_split,
    few_shot_manifest,
    manifest_clips,
    manifest_path,
    read_manifest,
    resolve_subset,
    sample_few_shot,
)
from sept.data.manifest import content_hash
from sept.errors import DataError


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("path,classname\n" + "".join(f"{p},{c}\n" for p, c in rows))
    return path


def make_dataset(root: Path, counts: dict[str, int], name: str = "toy", n_test: int = 2) -> TrainTestDataset:
    """A train/test CSV pair (sampling never opens the audio, so no files are needed)."""
    train = [(f"audios/{c}_{i:03d}.wav", c) for c, n in counts.items() for i in range(n)]
    test = [(f"audios/{c}_t{i}.wav", c) for c in counts for i in range(n_test)]
    _write_csv(root / "train.csv", train)
    _write_csv(root / "test.csv", test)
    return TrainTestDataset(name, root, {None: (root / "train.csv", root / "test.csv")})


@pytest.mark.parametrize(
    ("n", "n_base"),
    [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (15, 8), (50, 25)],
)
def test_base_new_odd_and_even(n: int, n_base: int) -> None:
    names = [f"c{i:02d}" for i in range(n)][::-1]  # unsorted input
    base, new = base_new_split(names)
    assert len(base) == n_base and len(new) == n - n_base
    assert base + new == sorted(names)


def test_base_new_tut2017_rule() -> None:
    tut = ["tram", "train", "residential_area", "park", "office", "metro_station", "library", "home"]
    tut += ["grocery_store", "forest_path", "city_center", "car", "cafe/restaurant", "bus", "beach"]
    base, new = base_new_split(tut)
    assert len(base) == 8 and base[-1] == "home" and base[2] == "cafe/restaurant"
    assert new == ["library", "metro_station", "office", "park", "residential_area", "train", "tram"]


def test_resolve_subset() -> None:
    names = ["d", "a", "c", "b", "e"]
    assert resolve_subset(names, "base") == ("base", ["a", "b", "c"])
    assert resolve_subset(names, "new") == ("new", ["d", "e"])
    assert resolve_subset(names, "all")[1] == ["a", "b", "c", "d", "e"]
    assert resolve_subset(names, ["c", "b", "a"]) == ("base", ["a", "b", "c"])  # same set, same tag
    tag, chosen = resolve_subset(names, ["e", "a"])
    assert tag.startswith("classes-") and chosen == ["a", "e"]
    assert resolve_subset(names, ["a", "e"])[0] == tag
    with pytest.raises(DataError, match="'zz'"):
        resolve_subset(names, ["zz"])
    with pytest.raises(DataError, match="unknown class subset"):
        resolve_subset(names, "half")


def _clips(counts: dict[str, int]) -> list[Clip]:
    return [Clip(Path(f"/d/{c}{i}.wav"), f"{c}{i}.wav", c) for c, n in counts.items() for i in range(n)]


def test_sampling_deterministic_seeds_differ_and_nested() -> None:
    clips = _clips({"a": 30, "b": 30, "c": 30})
    one = sample_few_shot(clips, ["a", "b", "c"], 8, seed=0, key=("toy", 1))
    assert len(one) == 24 and [c.classname for c in one] == ["a"] * 8 + ["b"] * 8 + ["c"] * 8
    assert len({c.relpath for c in one}) == 24
    assert one == sample_few_shot(list(reversed(clips)), ["c", "a", "b"], 8, seed=0, key=("toy", 1))
    assert one != sample_few_shot(clips, ["a", "b", "c"], 8, seed=1, key=("toy", 1))
    assert one != sample_few_shot(clips, ["a", "b", "c"], 8, seed=0, key=("toy", 2))
    sixteen = sample_few_shot(clips, ["a", "b", "c"], 16, seed=0, key=("toy", 1))
    assert [c for c in sixteen if c.classname == "a"][:8] == one[:8]  # K shots are the first of K' > K
    only_b = sample_few_shot(clips, ["b"], 8, seed=0, key=("toy", 1))
    assert only_b == one[8:16]  # a class's shots do not depend on the other classes sampled


def test_too_few_clips_error_and_with_replacement() -> None:
    clips = _clips({"a": 10, "rare": 3, "rarer": 2})
    with pytest.raises(
        DataError, match=r"2 class\(es\) have fewer than 4.*'rare' \(3\).*'rarer' \(2\).*--with-replacement"
    ):
        sample_few_shot(clips, ["a", "rare", "rarer"], 4, seed=0)
    got = sample_few_shot(clips, ["a", "rare", "rarer"], 4, seed=0, with_replacement=True)
    rare = [c.relpath for c in got if c.classname == "rare"]
    assert len(rare) == 4 and set(rare) == {"rare0.wav", "rare1.wav", "rare2.wav"}  # every clip at least once
    with pytest.raises(DataError, match="shots must be >= 1"):
        sample_few_shot(clips, ["a"], 0, seed=0)
    with pytest.raises(DataError, match="no train clips"):
        sample_few_shot(clips, ["ghost"], 1, seed=0)


def test_duplicate_rows_never_sampled_twice() -> None:
    clips = _clips({"a": 3}) + _clips({"a": 3})
    got = sample_few_shot(clips, ["a"], 3, seed=5)
    assert sorted(c.relpath for c in got) == ["a0.wav", "a1.wav", "a2.wav"]


def test_manifest_written_once_and_reused(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "data", {"x": 20, "y": 20, "z": 20})
    split = ds.split()
    run = tmp_path / "run"
    m, path = few_shot_manifest(split, shots=4, seed=0, run_root=run, subset="base")
    assert path == run / "manifests" / "toy" / "fold-none" / "k4-seed0-base.json"
    assert path == manifest_path(run, "toy", None, 4, 0, "base")
    assert m.classnames == ("x", "y") and len(m.items) == 8
    data = json.loads(path.read_text())
    assert data["shots"] == 4 and data["seed"] == 0 and data["subset"] == "base" and len(data["items"]) == 8
    # reused, not redrawn: edit the file's items (and its hash, as a consistent file) and the edit comes back
    data["items"][0]["path"] = "audios/x_019.wav"
    data["hash"] = content_hash(data)
    path.write_text(json.dumps(data))
    again, _ = few_shot_manifest(split, shots=4, seed=0, run_root=run, subset="base")
    assert again.items[0] == ("audios/x_019.wav", "x")
    assert read_manifest(path) == again
    clips = manifest_clips(again, split)
    assert [c.relpath for c in clips] == [p for p, _ in again.items]
    other, other_path = few_shot_manifest(split, shots=4, seed=1, run_root=run, subset="base")
    assert other_path != path and other.items != m.items


def test_manifest_detects_changed_dataset(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "data", {"x": 10, "y": 10})
    few_shot_manifest(ds.split(), shots=2, seed=0, run_root=tmp_path / "run")
    ds2 = make_dataset(tmp_path / "data", {"x": 11, "y": 10})  # a clip was added
    with pytest.raises(DataError, match="different train list"):
        few_shot_manifest(ds2.split(), shots=2, seed=0, run_root=tmp_path / "run")


def test_manifest_malformed_and_mismatched(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "data", {"x": 10, "y": 10})
    run = tmp_path / "run"
    _, path = few_shot_manifest(ds.split(), shots=2, seed=0, run_root=run)
    data = json.loads(path.read_text())
    data["seed"] = 3
    data["hash"] = content_hash(data)  # a consistent file with other parameters is not ours to redraw
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="seed: file has 3, asked 0"):
        few_shot_manifest(ds.split(), shots=2, seed=0, run_root=run)
    path.write_text("{not json")  # damaged: never used, drawn again (see test_reliability_state.py)
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(path)


def test_manifest_clips_detects_foreign_items(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "data", {"x": 10, "y": 10})
    m, _ = few_shot_manifest(ds.split(), shots=2, seed=0, run_root=tmp_path / "run")
    bogus = type(m)(**{**m.__dict__, "items": (("audios/nope.wav", "x"),)})
    with pytest.raises(DataError, match="absent"):
        manifest_clips(bogus, ds.split())


_CHILD = """
import json, sys
from sept.data import TrainTestDataset, few_shot_manifest
root, run = sys.argv[1], sys.argv[2]
ds = TrainTestDataset("toy", root, {None: (root + "/train.csv", root + "/test.csv")})
m, _ = few_shot_manifest(ds.split(), shots=5, seed=int(sys.argv[3]), run_root=run, subset="all")
print(json.dumps(m.items))
"""


def _draw_in_subprocess(root: Path, run: Path, seed: int, hashseed: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(run), str(seed)],
        capture_output=True, text=True, check=True, env=env, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_same_seed_same_shots_across_processes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ds = make_dataset(root, {"k": 40, "j": 40, "i": 40})
    here, _ = few_shot_manifest(ds.split(), shots=5, seed=3, run_root=tmp_path / "run0", subset="all")
    a = _draw_in_subprocess(root, tmp_path / "run1", 3, "1")
    b = _draw_in_subprocess(root, tmp_path / "run2", 3, "12345")
    assert a == b == [list(i) for i in here.items]
    c = _draw_in_subprocess(root, tmp_path / "run3", 4, "1")
    assert c != a


def test_cli_sample_writes_then_reuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sept.cli.main import main

    make_dataset(tmp_path / "data", {"a": 5, "b": 5, "c": 2})
    train, test, run = tmp_path / "data" / "train.csv", tmp_path / "data" / "test.csv", tmp_path / "run"
    args = [
        "data",
        "sample",
        str(train),
        "--test",
        str(test),
        "--run-root",
        str(run),
        "--shots",
        "3",
        "--seed",
        "7",
    ]
    assert main([*args, "--subset", "base"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote ") and "3 shots x 2 classes (base), seed 7 -> 6 clips" in out
    assert main([*args, "--subset", "base", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["classnames"] == ["a", "b"] and len(data["items"]) == 6
    assert main([*args, "--subset", "base"]) == 0
    assert capsys.readouterr().out.startswith("reused ")
    assert main([*args, "--subset", "new"]) == 2
    assert "'c' (2)" in capsys.readouterr().err
    assert main([*args, "--classes", "c", "--with-replacement"]) == 0
    assert "-repl.json" in capsys.readouterr().out


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    from sept.cli.main import main

    assert main(["data", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (
        rows["ESC50"]["classes"] == 50
        and rows["UrbanSound8K"]["folds"] == 10
        and rows["fsdd"]["hub_repo"] is None
    )
    assert main(["data", "list"]) == 0
    assert "MahiA/TUT2017" in capsys.readouterr().out
