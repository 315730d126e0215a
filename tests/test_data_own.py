"""A user's own data (issue 16, item 2): train/ and test/ sub-folders, a held-out fraction, absolute CSV paths."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.data import AudioFolderDataset, HeldOutDataset, get_dataset, load_clips, open_dataset
from sept.data.manifest import split_manifest_path
from sept.errors import DataError
from tests.test_data_layouts import make_mahia


def _wav(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(800) / 8000
    sf.write(path, (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000)
    return path


def _class_folders(root: Path, counts: dict[str, int]) -> Path:
    for i, (name, n) in enumerate(counts.items()):
        for j in range(n):
            _wav(root / name / f"{j}.wav", 200 + 100 * i + j)
    return root


def test_audiofolder_layout_is_one_train_test_split(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    _class_folders(root / "train", {"dog": 3, "cat": 2})
    _class_folders(root / "test", {"dog": 1, "cat": 1})
    _class_folders(root / "validation", {"dog": 1})  # not read
    ds = open_dataset(root)
    assert isinstance(ds, AudioFolderDataset) and ds.name == "mine" and ds.folds == ()
    split = ds.split()
    assert split.classnames == ("cat", "dog")
    assert sorted(c.relpath for c in split.test) == ["test/cat/0.wav", "test/dog/0.wav"]
    assert len(split.train) == 5 and all(c.relpath.startswith("train/") for c in split.train)
    # `sept embed --data` / `sept eval --data` read the same clips, with fold train / test
    clips = load_clips(root)
    assert Counter(c.fold for c in clips) == {"train": 5, "test": 2}
    assert {c.classname for c in clips} == {"cat", "dog"}


def test_folder_without_a_split_names_every_way_to_give_one(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "flat", {"dog": 2, "cat": 2})
    with pytest.raises(DataError, match=r"--test-fraction F.*train/ and test/ sub-folders"):
        open_dataset(root)


def test_test_fraction_is_stratified_written_once_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _class_folders(tmp_path / "flat", {"dog": 10, "cat": 5, "owl": 2})
    manifests = tmp_path / "runs" / "manifests"
    ds = open_dataset(root, test_fraction=0.2, split_seed=3, manifest_dir=manifests)
    assert isinstance(ds, HeldOutDataset)
    split = ds.split()
    assert Counter(c.classname for c in split.test) == {"dog": 2, "cat": 1, "owl": 1}
    assert Counter(c.classname for c in split.train) == {"dog": 8, "cat": 4, "owl": 1}
    path = split_manifest_path(manifests, "flat", 0.2, 3)
    record = json.loads(path.read_text())
    assert record["test_fraction"] == 0.2 and record["split_seed"] == 3
    assert sorted(i["path"] for i in record["test"]) == sorted(c.relpath for c in split.test)
    # every later load reads the manifest back (the sampler is not called again)
    import sept.data.sampling as sampling

    monkeypatch.setattr(sampling, "stratified_split", lambda *a, **k: pytest.fail("split drawn again"))
    again = open_dataset(root, test_fraction=0.2, split_seed=3, manifest_dir=manifests).split()
    assert again.test == split.test and again.train == split.train
    monkeypatch.undo()
    # another seed is another split (its own manifest); changed data under the same run root is refused
    other = open_dataset(root, test_fraction=0.2, split_seed=4, manifest_dir=manifests).split()
    assert split_manifest_path(manifests, "flat", 0.2, 4).is_file() and other.test != split.test
    path.write_text(path.read_text().replace('"split_seed": 3', '"split_seed": 5'))
    with pytest.raises(DataError, match="split_seed: file has 5, asked 3"):
        open_dataset(root, test_fraction=0.2, split_seed=3, manifest_dir=manifests).split()
    path.write_text(path.read_text().replace('"split_seed": 5', '"split_seed": 3'))
    _wav(root / "cat" / "new.wav")
    with pytest.raises(DataError, match="different list of clips"):
        open_dataset(root, test_fraction=0.2, split_seed=3, manifest_dir=manifests).split()


def test_test_fraction_depends_on_the_seed_and_needs_two_clips_a_class(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "flat", {"dog": 12, "cat": 12})
    a = open_dataset(root, test_fraction=0.25, split_seed=0).split()
    b = open_dataset(root, test_fraction=0.25, split_seed=1).split()
    assert len(a.test) == len(b.test) == 6 and a.test != b.test
    assert open_dataset(root, test_fraction=0.25, split_seed=0).split().test == a.test
    _wav(root / "owl" / "0.wav")
    with pytest.raises(DataError, match=r"fewer than 2 clips.*'owl' \(1\)"):
        open_dataset(root, test_fraction=0.25).split()


def test_test_fraction_with_a_split_already_given_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "af"
    _class_folders(root / "train", {"dog": 2})
    _class_folders(root / "test", {"dog": 1})
    with pytest.raises(DataError, match="already has train/ and test/ sub-folders"):
        open_dataset(root, test_fraction=0.2)
    with pytest.raises(DataError, match="drop --test-fraction"):
        open_dataset("us8k-mini", tmp_path, test_fraction=0.2)


def test_user_csv_may_name_absolute_paths(tmp_path: Path) -> None:
    audio = _class_folders(tmp_path / "elsewhere", {"dog": 2, "cat": 2})
    lists = tmp_path / "lists"
    lists.mkdir()
    rows = ["path,classname,fold"] + [
        f"{audio / c / f'{j}.wav'},{c},{j + 1}" for c in ("dog", "cat") for j in range(2)
    ]
    (lists / "all.csv").write_text("\n".join(rows) + "\n")
    split = open_dataset(lists / "all.csv").split(1)
    assert split.test[0].path == audio / "dog" / "0.wav"
    assert len(load_clips(lists / "all.csv")) == 4
    from sept.data.check import check_dataset

    assert check_dataset(open_dataset(lists / "all.csv")).ok
    # relative paths still may not climb out of the root, and a downloaded dataset's lists stay inside it
    (lists / "up.csv").write_text("path,classname,fold\n../elsewhere/dog/0.wav,dog,1\n")
    with pytest.raises(DataError, match="escapes the dataset root"):
        open_dataset(lists / "up.csv").split(1)
    root = make_mahia(tmp_path / "SESA", ["siren"], n_folds=0)
    (root / "test.csv").write_text(f"path,classname\n{audio / 'dog' / '0.wav'},siren\n")
    with pytest.raises(DataError, match="escapes the dataset root"):
        get_dataset("SESA", root).split()


def test_sept_run_test_fraction_is_shared_by_every_method(tmp_path: Path) -> None:
    from sept.cli.main import main
    from tests.tiny_models import save_tiny_clap

    clap = save_tiny_clap(tmp_path / "clap")
    root = _class_folders(tmp_path / "flat", {"dog": 5, "cat": 5, "owl": 4})
    runs = tmp_path / "runs"
    argv = ["run", "--protocol", "fewshot", "--dataset", str(root), "--shots", "2", "--seeds", "0"]
    argv += [
        "--test-fraction",
        "0.4",
        "--split-seed",
        "7",
        "--run-root",
        str(runs),
        "--set",
        "optim.epochs=1",
    ]
    argv += ["--backbone", "clap", "--backbone-opt", f"model={clap}", "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--method", "zeroshot", "--no-progress"]) == 0
    manifest = split_manifest_path(runs / "manifests", "flat", 0.4, 7)
    first = manifest.read_text()
    assert main([*argv, "--method", "coop", "--no-progress"]) == 0
    assert manifest.read_text() == first
    tests = [
        json.loads(p.read_text())["test"]["num_clips"]
        for p in sorted(runs.glob("fewshot/flat*/fold-none/*/shots-2/seed-0/results.json"))
    ]
    assert tests == [2 + 2 + 2, 2 + 2 + 2]  # round(0.4 * 5) = 2, round(0.4 * 4) = 2
    assert main([*argv, "--method", "zeroshot", "--split-seed", "8", "--no-progress"]) == 0  # another split
    assert split_manifest_path(runs / "manifests", "flat", 0.4, 8).is_file()
