"""Loading datasets in each layout (generated audio), readable names, folds and the registry."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.data import (
    BENCHMARK_DATASETS,
    FoldColumnDataset,
    GroupHoldoutDataset,
    TrainTestDataset,
    dataset_info,
    get_dataset,
    list_datasets,
    load_clips,
    load_dataset,
    open_dataset,
    readable_name,
)
from sept.errors import DataError, UnknownNameError


def _wav(path: Path, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(800) / 8000
    sf.write(path, (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000)


def _csv(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_mahia(root: Path, classes: list[str], n_folds: int, per_class_fold: int = 3) -> Path:
    """The MahiA layout: audios/, train.csv/test.csv, csv_files/{train,test}_{k}.csv (fold k tests on group k)."""
    rows = []
    for c_i, c in enumerate(classes):
        for g in range(1, max(n_folds, 2) + 1):
            for j in range(per_class_fold):
                rel = f"audios/{c_i}_{g}_{j}.wav"
                _wav(root / rel, 200 + 50 * c_i)
                rows.append({"path": rel, "classname": c, "group": g})
    for k in range(1, n_folds + 1):
        _csv(
            root / "csv_files" / f"train_{k}.csv",
            [{"path": r["path"], "classname": r["classname"]} for r in rows if r["group"] != k],
        )
        _csv(
            root / "csv_files" / f"test_{k}.csv",
            [{"path": r["path"], "classname": r["classname"]} for r in rows if r["group"] == k],
        )
    _csv(
        root / "train.csv",
        [{"path": r["path"], "classname": r["classname"]} for r in rows if r["group"] != 1],
    )
    _csv(
        root / "test.csv", [{"path": r["path"], "classname": r["classname"]} for r in rows if r["group"] == 1]
    )
    return root


@pytest.mark.parametrize(
    ("raw", "readable"),
    [
        ("city_center", "city center"),
        ("cafe/restaurant", "cafe or restaurant"),
        ("Throat clearing", "throat clearing"),
        ("Cough", "cough"),
        ("air_conditioner", "air conditioner"),
        ("brushing teeth", "brushing teeth"),
        ("  dog__bark ", "dog bark"),
        ("rock&roll", "rock and roll"),
        ("TV_noise", "TV noise"),
    ],
)
def test_readable_name(raw: str, readable: str) -> None:
    assert readable_name(raw) == readable


def test_readable_name_overrides_and_empty() -> None:
    assert readable_name("3", {"3": "three"}) == "three"
    assert readable_name("hiphop", dataset_info("GT-Music-Genre").readable_overrides) == "hip hop"
    with pytest.raises(ValueError, match="empty"):
        readable_name(" _ ")


def test_registry_lists_the_11_benchmark_datasets() -> None:
    bench = list_datasets(benchmark=True)
    assert len(bench) == 11 == len(BENCHMARK_DATASETS)
    assert set(bench) == set(BENCHMARK_DATASETS)
    assert {"us8k-mini", "fsdd"} <= set(list_datasets())
    assert set(list_datasets(benchmark=False)) == {"us8k-mini", "fsdd"}
    assert list_datasets("esc50*") == ["ESC50", "ESC50-Actions"]
    folds = {n: dataset_info(n).folds for n in bench}
    assert folds == {
        "Beijing-Opera": 5, "CREMA-D": 0, "ESC50": 5, "ESC50-Actions": 5, "GT-Music-Genre": 0,
        "NS-Instruments": 0, "RAVDESS": 0, "SESA": 0, "TUT2017": 4, "UrbanSound8K": 10, "VocalSound": 0,
    }  # fmt: skip
    sizes = {n: len(dataset_info(n).classnames) for n in bench}
    assert sizes["ESC50"] == 50 and sizes["TUT2017"] == 15 and sizes["VocalSound"] == 6
    for n in bench:
        info = dataset_info(n)
        assert list(info.classnames) == sorted(info.classnames), n
        assert info.hub_repo == f"MahiA/{n}"
    assert {n for n in bench if dataset_info(n).zipped} == {"NS-Instruments", "VocalSound"}
    assert dataset_info("esc50").name == "ESC50"  # case-insensitive lookup
    with pytest.raises(UnknownNameError, match="ESC50"):
        dataset_info("nope")


def test_mahia_fold_layout(tmp_path: Path) -> None:
    root = make_mahia(tmp_path / "TUT2017", ["city_center", "cafe/restaurant", "beach"], n_folds=4)
    ds = get_dataset("TUT2017", root)
    assert isinstance(ds, TrainTestDataset)
    assert ds.folds == (1, 2, 3, 4) and ds.default_fold == 1
    split = ds.split(3)
    assert split.fold == 3
    assert split.classnames == ("beach", "cafe/restaurant", "city_center")
    assert split.readable == ("beach", "cafe or restaurant", "city center")
    assert ds.readable_names(3) == ["beach", "cafe or restaurant", "city center"]
    assert len(split.test) == 3 * 3 and len(split.train) == 3 * 3 * 3
    assert all("_3_" in c.relpath for c in split.test)
    assert not {c.relpath for c in split.train} & {c.relpath for c in split.test}
    assert all(c.path == root / c.relpath for c in split.train)
    assert split.train_source.endswith("csv_files/train_3.csv")
    assert split.labels(split.test[:1]) == [split.classnames.index(split.test[0].classname)]
    assert ds.split(None).fold == 1
    with pytest.raises(DataError, match="no fold 5"):
        ds.split(5)


def test_mahia_single_split_layout(tmp_path: Path) -> None:
    root = make_mahia(tmp_path / "VocalSound", ["Throat clearing", "Cough", "Sigh"], n_folds=0)
    ds = get_dataset("VocalSound", root)
    assert ds.folds == () and ds.default_fold is None
    split = ds.split()
    assert split.fold is None
    assert split.classnames == ("Cough", "Sigh", "Throat clearing")
    assert split.readable == ("cough", "sigh", "throat clearing")
    assert split.train_source.endswith("train.csv") and split.test_source.endswith("test.csv")
    with pytest.raises(DataError, match="single train/test split"):
        ds.split(1)


def test_default_root_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mahia(tmp_path / "SESA", ["siren", "gunshot"], n_folds=0)
    monkeypatch.setenv("SEPT_DATA_ROOT", str(tmp_path))
    assert get_dataset("SESA").root == tmp_path / "SESA"
    assert get_dataset("SESA").split().classnames == ("gunshot", "siren")
    monkeypatch.delenv("SEPT_DATA_ROOT")
    with pytest.raises(DataError, match="SEPT_DATA_ROOT"):
        get_dataset("SESA")


def test_missing_folder_names_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sept data download ESC50"):
        get_dataset("ESC50", tmp_path / "absent").split(1)


def make_us8k_like(root: Path) -> Path:
    rows = []
    for fold in (1, 2):
        for c in ("dog_bark", "car_horn", "siren"):
            for j in range(2 + fold):
                rel = f"audio/fold{fold}/{c}-{j}.flac"
                _wav(root / rel.replace(".flac", ".wav"))
                rows.append(
                    {"path": rel.replace(".flac", ".wav"), "fold": fold, "class_id": 0, "classname": c}
                )
    _csv(root / "metadata.csv", rows)
    return root


def test_us8k_mini_fold_column(tmp_path: Path) -> None:
    root = make_us8k_like(tmp_path / "us8k-mini")
    ds = get_dataset("us8k-mini", root)
    assert isinstance(ds, FoldColumnDataset)
    assert ds.folds == (1, 2)
    assert ds.default_fold == 2  # benchmark default: train fold 1, test fold 2
    split = ds.split()
    assert {c.fold for c in split.train} == {"1"} and {c.fold for c in split.test} == {"2"}
    assert len(split.train) == 3 * 3 and len(split.test) == 3 * 4
    assert split.readable == ("car horn", "dog bark", "siren")
    other = ds.split(1)
    assert {c.fold for c in other.test} == {"1"}


def make_fsdd_like(root: Path, speakers: list[str]) -> Path:
    words = ["zero", "one", "two"]
    rows = []
    for s in speakers:
        for d in range(3):
            for take in range(2):
                rel = f"audio/{d}_{s}_{take}.wav"
                _wav(root / rel)
                rows.append({"path": rel, "digit": d, "classname": words[d], "speaker": s, "take": take})
    _csv(root / "metadata.csv", rows)
    return root


def test_fsdd_speaker_disjoint(tmp_path: Path) -> None:
    root = make_fsdd_like(tmp_path / "fsdd", ["theo", "george", "yweweler", "jackson", "nicolas", "lucas"])
    ds = get_dataset("fsdd", root)
    assert isinstance(ds, GroupHoldoutDataset)
    split = ds.split()
    assert {c.fold for c in split.test} == {"theo", "yweweler"}  # last 2 speakers in sorted order
    assert {c.fold for c in split.train} == {"george", "jackson", "lucas", "nicolas"}
    assert split.classnames == ("0", "1", "2")
    assert split.readable == ("zero", "one", "two")
    assert len(split.train) == 4 * 3 * 2 and len(split.test) == 2 * 3 * 2


def test_generic_csv_with_fold_column_and_train_test_values(tmp_path: Path) -> None:
    rows = []
    for fold in (1, 2, 3):
        for c in ("a", "b"):
            rel = f"clips/{c}{fold}.wav"
            _wav(tmp_path / rel)
            rows.append({"path": rel, "classname": c, "fold": fold})
    ds = load_dataset(_csv(tmp_path / "mine.csv", rows))
    assert ds.name == "mine" and ds.folds == (1, 2, 3)
    assert {c.relpath for c in ds.split(2).test} == {"clips/a2.wav", "clips/b2.wav"}
    tt = [{**r, "fold": "test" if r["fold"] == 3 else "train"} for r in rows]
    single = load_dataset(_csv(tmp_path / "tt.csv", tt))
    assert single.folds == ()
    assert len(single.split().train) == 4 and len(single.split().test) == 2
    bad = [{**r, "fold": "x"} for r in rows]
    with pytest.raises(DataError, match="'x'"):
        load_dataset(_csv(tmp_path / "bad.csv", bad)).split(1)
    nofold = [{"path": r["path"], "classname": r["classname"]} for r in rows]
    with pytest.raises(DataError, match="no 'fold' column"):
        load_dataset(_csv(tmp_path / "nofold.csv", nofold))


def test_generic_folder_per_class_with_test_folder(tmp_path: Path) -> None:
    for side, n in (("train", 3), ("test", 2)):
        for c in ("Dog", "cat_purr"):
            for j in range(n):
                _wav(tmp_path / side / c / f"{j}.wav")
    ds = open_dataset(tmp_path / "train", test=tmp_path / "test")
    split = ds.split()
    assert split.classnames == ("Dog", "cat_purr")
    assert split.readable == ("dog", "cat purr")
    assert len(split.train) == 6 and len(split.test) == 4
    assert split.train_root == tmp_path / "train" and split.test_root == tmp_path / "test"
    # the embed path (another module's API) still works on the same folder
    assert len(load_clips(tmp_path / "train")) == 6


def test_generic_csv_with_test_csv(tmp_path: Path) -> None:
    for c in ("x", "y"):
        for j in range(3):
            _wav(tmp_path / "a" / f"{c}{j}.wav")
    train = _csv(
        tmp_path / "train.csv", [{"path": f"a/{c}{j}.wav", "classname": c} for c in "xy" for j in (0, 1)]
    )
    test = _csv(tmp_path / "test.csv", [{"path": f"a/{c}2.wav", "classname": c} for c in "xy"])
    split = open_dataset(train, test=test).split()
    assert [c.relpath for c in split.test] == ["a/x2.wav", "a/y2.wav"]


def test_escaping_path_rejected_on_load(tmp_path: Path) -> None:
    make_mahia(tmp_path / "SESA", ["siren"], n_folds=0)
    _csv(tmp_path / "SESA" / "test.csv", [{"path": "../outside.wav", "classname": "siren"}])
    with pytest.raises(DataError, match="escapes the dataset root"):
        get_dataset("SESA", tmp_path / "SESA").split()


def test_open_dataset_unknown(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="us8k-mini"):
        open_dataset("no-such-set")
    with pytest.raises(DataError, match="drop --test"):
        open_dataset("SESA", tmp_path, test=tmp_path / "t.csv")


def test_restrict_and_unknown_label(tmp_path: Path) -> None:
    root = make_mahia(tmp_path / "CREMA-D", ["anger", "fear", "sad"], n_folds=0)
    split = get_dataset("CREMA-D", root).split()
    sub = split.restrict(["sad", "anger"])
    assert sub.classnames == ("anger", "sad")
    assert {c.classname for c in sub.train} == {"anger", "sad"}
    assert sub.labels(sub.test) == [0 if c.classname == "anger" else 1 for c in sub.test]
    with pytest.raises(DataError, match="'fear' is not among the train classes"):
        sub.label("fear")


def test_symlinked_audio_folder_is_allowed(tmp_path: Path) -> None:
    """A link the owner put inside the root (audio on another disk) is fine; ``..`` in a CSV is not."""
    store = tmp_path / "big-disk" / "audios"
    _wav(store / "a.wav")
    _wav(store / "b.wav")
    root = tmp_path / "SESA"
    root.mkdir()
    (root / "audios").symlink_to(store, target_is_directory=True)
    _csv(root / "train.csv", [{"path": "audios/a.wav", "classname": "siren"}])
    _csv(root / "test.csv", [{"path": "audios/b.wav", "classname": "siren"}])
    assert get_dataset("SESA", root).split().train[0].path.is_file()
    _csv(root / "test.csv", [{"path": "audios/../../big-disk/audios/b.wav", "classname": "siren"}])
    with pytest.raises(
        DataError, match=re.escape("line 2: path 'audios/../../big-disk/audios/b.wav' escapes")
    ):
        get_dataset("SESA", root).split()


def test_cli_data_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    from sept.cli.main import main

    assert main(["data"]) == 2
    assert "download" in capsys.readouterr().out
