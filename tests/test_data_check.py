"""``check_dataset`` / ``sept data check``: each problem is reported, and the data folder is left untouched."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.cli.main import main
from sept.data import get_dataset, load_dataset
from sept.data.check import check_dataset


def _wav(path: Path, n: int = 800, value: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.sin(np.arange(n) / 3.0) if value is None else np.full(n, value)
    sf.write(path, wave.astype(np.float32), 8000, subtype="FLOAT")


def _csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "classname"])
        w.writerows(rows)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
    }


def _clean_folds(
    root: Path, classes: list[str], n_folds: int, per: int = 2
) -> dict[int, list[tuple[str, str]]]:
    """Files of a k-fold set: group g holds ``per`` clips per class; returns group -> rows."""
    groups: dict[int, list[tuple[str, str]]] = {}
    for g in range(1, n_folds + 1):
        for c in classes:
            for j in range(per):
                rel = f"audios/{c}_{g}_{j}.wav"
                _wav(root / rel)
                groups.setdefault(g, []).append((rel, c))
    return groups


def _write_folds(root: Path, groups: dict[int, list[tuple[str, str]]]) -> None:
    for k in groups:
        _csv(root / "csv_files" / f"train_{k}.csv", [r for g, rows in groups.items() if g != k for r in rows])
        _csv(root / "csv_files" / f"test_{k}.csv", groups[k])


def _by_kind(report, fold=None) -> dict[str, list]:
    out: dict[str, list] = {}
    for issue in report.all_issues():
        if fold is None or issue.fold == fold:
            out.setdefault(issue.kind, []).append(issue)
    return out


def test_clean_dataset_has_no_issues(tmp_path: Path) -> None:
    root = tmp_path / "Beijing-Opera"
    _write_folds(root, _clean_folds(root, ["bangu", "daluo", "naobo", "xiaoluo"], 5))
    report = check_dataset(get_dataset("Beijing-Opera", root))
    assert report.ok and report.all_issues() == []
    assert [f.fold for f in report.folds] == [1, 2, 3, 4, 5]
    assert report.folds[0].train_counts == {"bangu": 8, "daluo": 8, "naobo": 8, "xiaoluo": 8}
    assert report.folds[0].test_counts == {"bangu": 2, "daluo": 2, "naobo": 2, "xiaoluo": 2}
    assert report.files_checked == 40


def test_every_problem_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "TUT2017"
    classes = ["beach", "bus", "city_center"]
    groups = _clean_folds(root, classes, 4)
    # fold 1: a missing file, an undecodable one, an empty one, a duplicate, an overlap, a test-only class,
    # a path escaping the root (the outside file exists and is valid: it must be rejected, not opened)
    (root / "audios" / "garbage.wav").write_bytes(b"this is not audio at all" * 10)
    _wav(root / "audios" / "empty.wav", n=0)
    _wav(tmp_path / "outside.wav")
    train1 = [r for g, rows in groups.items() if g != 1 for r in rows]
    train1 += [("audios/gone.wav", "beach"), ("audios/garbage.wav", "bus"), ("audios/empty.wav", "bus")]
    train1 += [train1[0], groups[1][0], ("../outside.wav", "bus")]
    test1 = [*groups[1], ("audios/ghost_class.wav", "ghost")]
    _wav(root / "audios" / "ghost_class.wav")
    _write_folds(root, groups)
    _csv(root / "csv_files" / "train_1.csv", train1)
    _csv(root / "csv_files" / "test_1.csv", test1)
    # fold 2: train and test swapped, as in PALM's TUT2017 CSVs of folds 2-4
    _csv(root / "csv_files" / "train_2.csv", groups[2])
    _csv(root / "csv_files" / "test_2.csv", [r for g, rows in groups.items() if g != 2 for r in rows])
    before = _snapshot(tmp_path)

    report = check_dataset(get_dataset("TUT2017", root), workers=2)

    assert _snapshot(tmp_path) == before  # nothing written, touched or created
    f1 = _by_kind(report, 1)
    assert f1["missing"][0].items == ["audios/gone.wav"] and f1["missing"][0].split == "train"
    undecodable = f1["undecodable"][0].items
    assert len(undecodable) == 2
    assert any(i.startswith("audios/garbage.wav: ") for i in undecodable)
    assert any(i.startswith("audios/empty.wav: ") and "zero samples" in i for i in undecodable)
    assert f1["escaping"][0].items == ["../outside.wav"]
    assert f1["duplicate"][0].items == [f"{train1[0][0]} (x2)"]
    assert f1["overlap"][0].items == [groups[1][0][0]]
    assert f1["test-only-class"][0].items == ["ghost"]
    assert "suspicious-fold" not in f1
    f2 = _by_kind(report, 2)
    assert "suspicious-fold" in f2 and "larger than the train list" in f2["suspicious-fold"][0].message
    assert "75%" in f2["suspicious-fold"][0].message
    assert set(_by_kind(report)) >= {"fold-overlap", "registry-classes"}
    assert all(i.fold is None for i in report.issues)
    registry = _by_kind(report)["registry-classes"][0]
    assert "cafe or restaurant" in registry.items and "ghost" not in registry.items  # train classes only
    assert not report.ok
    assert all(f.fold in (3, 4) for f in report.folds if not _by_kind(report, f.fold))
    json.dumps(report.to_dict())  # plain data


def test_decode_catches_what_headers_do_not(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for c in ("a", "b"):
        _wav(root / c / "ok.wav")
    _wav(root / "a" / "nan.wav", value=float("nan"))
    _wav(tmp_path / "test" / "a" / "t.wav")
    _wav(tmp_path / "test" / "b" / "t.wav")
    ds = load_dataset(root, test=tmp_path / "test")
    assert check_dataset(ds).ok
    decoded = check_dataset(ds, decode=True)
    (issue,) = decoded.errors
    assert issue.kind == "undecodable" and "NaN" in issue.items[0] and issue.items[0].startswith("a/nan.wav")


def test_load_error_is_reported_per_fold(tmp_path: Path) -> None:
    root = tmp_path / "ESC50-Actions"
    groups = _clean_folds(root, ["clapping", "snoring"], 5, per=1)
    _write_folds(root, groups)
    os.remove(root / "csv_files" / "test_4.csv")
    report = check_dataset(get_dataset("ESC50-Actions", root))
    (issue,) = report.errors
    assert issue.kind == "load" and issue.fold == 4 and "test_4.csv" in issue.message
    assert report.folds[0].n_train == 8 and report.folds[0].n_test == 2


def _make_us8k_like(root: Path) -> dict[tuple[int, str], int]:
    counts = {(1, "dog_bark"): 3, (1, "car_horn"): 3, (2, "dog_bark"): 4, (2, "car_horn"): 2}
    rows = []
    for (fold, c), n in counts.items():
        for j in range(n):
            rel = f"audio/fold{fold}/{c}-{j}.wav"
            _wav(root / rel)
            rows.append({"path": rel, "fold": fold, "classname": c, "fsID": j})
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "fold", "classname", "fsID"])
        w.writeheader()
        w.writerows(rows)
    return counts


def _row(out: str, section: str, classname: str) -> tuple[int, int]:
    block = out.split(section, 1)[1]
    m = re.search(rf"{classname}\s*│[^│]*│\s*(\d+)\s*│\s*(\d+)\s*│", block)
    assert m, f"no row for {classname} after {section!r} in:\n{out}"
    return int(m.group(1)), int(m.group(2))


def test_cli_check_prints_per_class_per_fold_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "us8k-mini"
    counts = _make_us8k_like(root)
    assert main(["data", "check", "us8k-mini", "--root", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "12 files checked" in out and "OK: no errors" in out
    for fold, other in ((1, 2), (2, 1)):
        for c in ("dog_bark", "car_horn"):
            assert _row(out, f"fold {fold}:", c) == (counts[(other, c)], counts[(fold, c)])
    assert "dog bark" in out  # readable column

    assert main(["data", "check", "us8k-mini", "--root", str(root), "--json", "--fold", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["fold"] for f in data["folds"]] == [2]
    assert data["folds"][0]["test_counts"] == {"car_horn": 2, "dog_bark": 4}


def test_cli_check_exit_status_and_issue_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "SESA"
    _wav(root / "audios" / "a.wav")
    _csv(root / "train.csv", [("audios/a.wav", "siren"), ("audios/missing.wav", "siren")])
    _csv(root / "test.csv", [("audios/a.wav", "siren"), ("[odd]/b.wav", "gunshot")])
    assert main(["data", "check", "SESA", "--root", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "ERROR [missing] 1 train file(s) listed but missing: audios/missing.wav" in out
    assert "[odd]/b.wav" in out  # printed literally, not taken as markup
    assert "[overlap]" in out and "[test-only-class]" in out and "error(s)" in out


@pytest.mark.parametrize("sizes", [(2, 4), (1, 1, 4)])
def test_a_fold_column_with_a_big_test_fold_is_not_suspicious(tmp_path: Path, sizes: tuple[int, ...]) -> None:
    """A fold column's train list is every other fold: bigger test folds cannot mean a swap."""
    rows = ["path,classname,fold"]
    for fold, per in enumerate(sizes, start=1):
        for c in ("a", "b"):
            for j in range(per):
                _wav(tmp_path / f"audio/{c}_{fold}_{j}.wav")
                rows.append(f"audio/{c}_{fold}_{j}.wav,{c},{fold}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    report = check_dataset(load_dataset(tmp_path / "metadata.csv"))
    assert "suspicious-fold" not in _by_kind(report), [i.message for i in report.all_issues()]
    assert report.ok


def test_explicit_lists_whose_folds_differ_in_size_are_still_checked(tmp_path: Path) -> None:
    """Per-fold train/test CSVs that are complements: no warning; a swapped fold: a warning."""
    root = tmp_path / "TUT2017"
    groups = _clean_folds(root, ["beach", "bus"], 4)
    for j in range(6):  # fold 4 is much bigger than the others
        for c in ("beach", "bus"):
            _wav(root / f"audios/{c}_extra_{j}.wav")
            groups[4].append((f"audios/{c}_extra_{j}.wav", c))
    _write_folds(root, groups)
    report = check_dataset(get_dataset("TUT2017", root))
    assert "suspicious-fold" not in _by_kind(report)
    _csv(root / "csv_files" / "train_2.csv", groups[2])  # fold 2 swapped, as in PALM's CSVs
    _csv(root / "csv_files" / "test_2.csv", [r for g, rows in groups.items() if g != 2 for r in rows])
    report = check_dataset(get_dataset("TUT2017", root))
    assert list(_by_kind(report, 2)) == ["suspicious-fold"]
