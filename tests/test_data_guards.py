"""Guard rails (issue 16, item 3): inputs that used to give a silently wrong number now stop with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sept.cli.main import main
from sept.data import open_dataset
from sept.data.guards import check_base_new, check_evaluated
from sept.errors import DataError
from tests.tiny_models import save_tiny_clap


@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny")


def _eval_args(data: Path, clap: Path, tmp: Path) -> list[str]:
    args = ["eval", "--data", str(data), "--backbone", "clap", "--backbone-opt", f"model={clap}"]
    return [*args, "--cache-dir", str(tmp / "cache"), "--no-progress"]


def test_test_list_equal_to_train_list_is_refused(tone_dataset: Path) -> None:
    with pytest.raises(DataError, match=r"12 of 12 test file\(s\) are also train files"):
        open_dataset(tone_dataset, test=tone_dataset).split()


def test_partial_train_test_leak_is_refused(tone_dataset: Path, tmp_path: Path) -> None:
    rows = (tone_dataset / "meta.csv").read_text().splitlines()
    train = tmp_path / "train.csv"
    train.write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    test = tmp_path / "test.csv"
    test.write_text("path,classname\n" + rows[1].rsplit(",", 1)[0] + "\n")
    with pytest.raises(DataError, match=r"1 of 1 test file\(s\) are also train files: 'low_hum/clip_0.wav'"):
        open_dataset(train, test=test, root=tone_dataset).split()


@pytest.mark.parametrize("second_label", ["low_hum", "mid_beep"], ids=["same-label", "two-labels"])
def test_eval_refuses_a_file_listed_twice(
    tone_dataset: Path,
    tiny_clap_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    second_label: str,
) -> None:
    csv = tone_dataset / "dups.csv"
    lines = (tone_dataset / "meta.csv").read_text().splitlines()
    csv.write_text("\n".join([*lines, f"low_hum/clip_0.wav,{second_label},1"]) + "\n")
    assert main(_eval_args(csv, tiny_clap_dir, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "1 path(s) listed more than once" in err and "'low_hum/clip_0.wav' x2" in err
    assert ("under two or more classes" in err) == (second_label != "low_hum")


def test_eval_with_every_file_skipped_fails(
    tmp_path: Path, tiny_clap_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        (tmp_path / "bad" / name).mkdir(parents=True)
        (tmp_path / "bad" / name / "x.wav").write_bytes(b"not audio at all")
    out = tmp_path / "res.json"
    assert main([*_eval_args(tmp_path / "bad", tiny_clap_dir, tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "every one of the 2 file(s) was skipped as undecodable" in err
    assert not out.exists()


def test_eval_with_some_files_skipped_still_reports(
    tone_dataset: Path, tiny_clap_dir: Path, tmp_path: Path
) -> None:
    (tone_dataset / "low_hum" / "broken.wav").write_bytes(b"garbage")
    out = tmp_path / "res.json"
    assert main([*_eval_args(tone_dataset, tiny_clap_dir, tmp_path), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["num_clips"] == 12 and res["num_skipped"] == 1


@pytest.mark.parametrize(
    ("base", "new"), [(["a"], ["b"]), (["a", "b"], ["c"]), (["a", "b"], [])], ids=["2", "3", "2+0"]
)
def test_base_new_needs_two_classes_a_side(base: list[str], new: list[str]) -> None:
    with pytest.raises(DataError, match="at least 2 classes on each side"):
        check_base_new(base, new, "d")
    check_base_new(["a", "b"], ["c", "d"], "d")


def test_check_evaluated_without_any_clip() -> None:
    with pytest.raises(DataError, match="no clip to evaluate"):
        check_evaluated(0, [], "x")
    check_evaluated(1, [], "x")


def test_base2new_python_api_refuses_three_classes(tmp_path: Path) -> None:
    """run_protocol (no preflight) refuses too, before any training."""
    from sept.protocols import ProtocolSettings, run_protocol
    from tests.fake_backbone import BandEnergyBackbone
    from tests.test_methods_support import make_tone_dataset

    csv = make_tone_dataset(tmp_path / "t", per_class=2, folds=2)
    keep = [
        r for r in csv.read_text().splitlines() if r.startswith("path") or "/dog_bark/" in r or "/siren/" in r
    ]
    keep += [r for r in csv.read_text().splitlines() if "/jackhammer/" in r]
    (tmp_path / "t" / "three.csv").write_text("\n".join(keep) + "\n")
    dataset = open_dataset(tmp_path / "t" / "three.csv")
    settings = ProtocolSettings(run_root=tmp_path / "runs", shots=1, seeds=[0], folds=[1])
    with pytest.raises(DataError, match="at least 2 classes on each side"):
        run_protocol("base2new", BandEnergyBackbone(), dataset, "zeroshot", settings)
